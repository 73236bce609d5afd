package layouts

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"paliprompt/core"
)

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no objects", func(c *Config) { c.MaxObjects = 0 }, "layout.max_objects: 0 is too small"},
		{"iou over 1", func(c *Config) { c.MergeIoU = 1.5 }, "layout.merge_iou: 1.5 is out of range: use 0..1"},
		{"nan margin", func(c *Config) { c.RelationMargin = math.NaN() }, "layout.relation_margin: NaN"},
		{"negative size", func(c *Config) { c.MinSizePx = -1 }, "layout.min_size_px: -1"},
		{"tiny preview", func(c *Config) { c.PreviewHeight = 10 }, "layout.preview_height: 10 is out of range: use 64..4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.change(&cfg)
			_, err := New(cfg)
			if !errors.Is(err, core.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want ErrConfig naming %s", err, tt.want)
			}
		})
	}
}

// TestConfigReportsEveryProblem: one run names every bad field.
func TestConfigReportsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxObjects, cfg.MergeIoU, cfg.PreviewHeight = 0, -1, 1
	err := cfg.Validate()
	for _, key := range []string{"layout.max_objects: ", "layout.merge_iou: ", "layout.preview_height: "} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate: %v\nwant it to name %s", err, key)
		}
	}
}

func TestBuildRejectsMissingSize(t *testing.T) {
	_, err := newPlanner(t).Build(core.Result{Width: 0, Height: 10}, Placement{})
	if !errors.Is(err, core.ErrBadRequest) {
		t.Fatalf("Build: %v, want core.ErrBadRequest", err)
	}
}

func TestCleanUp(t *testing.T) {
	res := core.Result{Width: 1000, Height: 500, Objects: []core.Object{
		detection("cat", 100, 100, 300, 300),
		detection("zero", 400, 100, 400, 300),
		detection("nan", math.NaN(), 0, 10, 10),
		detection("outside", -50, -20, 200, 200),
		detection("Cat", 110, 105, 305, 300),
		segmentation("cat", 105, 100, 300, 295),
		detection("", 10, 10, 50, 50),
		detection("gone", 1200, 100, 1300, 200),
	}}
	l := build(t, res, Placement{})
	var got []string
	for _, o := range l.Objects {
		got = append(got, fmt.Sprintf("%d:%s:%v", o.SourceIndex, o.Label, o.HasMask))
	}
	want := []string{"5:cat:true", "3:outside:false"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("kept %v, want %v", got, want)
	}
	reasons := map[int]string{}
	for _, d := range l.Dropped {
		reasons[d.SourceIndex] = d.Reason
	}
	for idx, frag := range map[int]string{
		0: "merged into source object 5", 1: "degenerate box", 2: "not a finite number",
		4: "merged into source object 5", 6: "missing label", 7: "degenerate box",
	} {
		if !strings.Contains(reasons[idx], frag) {
			t.Errorf("source object %d dropped for %q, want %q", idx, reasons[idx], frag)
		}
	}
	if o := l.Objects[1]; !o.Clamped || o.BoxPx != (core.Box{X0: 0, Y0: 0, X1: 200, Y1: 200}) || o.Box != (core.Box{X0: 0, Y0: 0, X1: 0.2, Y1: 0.4}) {
		t.Errorf("clamped object: %+v", o)
	}
}

func TestCleanUpCapsLargestFirst(t *testing.T) {
	res := core.Result{Width: 2000, Height: 1000}
	for i := 0; i < 50; i++ { // 50 objects, object i is (i+1)*10 px wide
		x := float64(i * 19)
		res.Objects = append(res.Objects, detection(fmt.Sprintf("thing %d", i), x, 0, x+float64((i+1)*10)/5+3, 400))
	}
	l := build(t, res, Placement{})
	if len(l.Objects) != 16 || len(l.Dropped) != 34 {
		t.Fatalf("kept %d, dropped %d; want 16 and 34", len(l.Objects), len(l.Dropped))
	}
	for i, o := range l.Objects {
		if o.SourceIndex != 34+i || o.Index != i {
			t.Errorf("object %d is source %d, want the largest (source %d) in order", i, o.SourceIndex, 34+i)
		}
	}
	if !strings.Contains(l.Dropped[0].Reason, "max_objects 16") {
		t.Errorf("reason %q", l.Dropped[0].Reason)
	}
	if n := len(l.Relations); n == 0 {
		t.Error("no relations among 16 objects")
	}
}

func TestBadMaskIsReported(t *testing.T) {
	o := segmentation("cat", 10, 10, 50, 50)
	o.Mask.Values = o.Mask.Values[:10]
	l := build(t, core.Result{Width: 100, Height: 100, Objects: []core.Object{o}}, Placement{})
	if len(l.Objects) != 1 || l.Objects[0].HasMask {
		t.Fatalf("objects %+v", l.Objects)
	}
	if len(l.Dropped) != 1 || l.Dropped[0].What != "mask" || !strings.Contains(l.Dropped[0].Reason, "10 values") {
		t.Errorf("dropped %+v", l.Dropped)
	}
}

func TestSentences(t *testing.T) {
	tests := []struct {
		name string
		obj  core.Object
		want string
	}{
		{"quadrant", detection("cat", 0, 0, 640, 480), "a cat in the upper-left quadrant, taking about a quarter of the frame"},
		{"vowel", detection("owl", 1000, 700, 1200, 900), "an owl in the lower-right quadrant, taking about a twentieth of the frame"},
		{"grid cell", detection("dog", 300, 300, 980, 660), "a dog in the center, taking about a fifth of the frame"},
		{"full frame", detection("beach", 0, 0, 1280, 960), "a beach filling the frame"},
		{"determiner kept", detection("two dogs", 780, 0, 1280, 300), "two dogs in the upper-right quadrant, taking about a tenth of the frame"},
		{"on the quadrant line", detection("tree", 540, 0, 740, 500), "a tree at the top, taking about a tenth of the frame"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := build(t, core.Result{Width: 1280, Height: 960, Objects: []core.Object{tt.obj}}, Placement{})
			if got := l.Objects[0].Sentence; got != tt.want {
				t.Errorf("sentence %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDepth(t *testing.T) {
	l := build(t, livingRoom(), Placement{})
	got := [3]int{l.Objects[0].Depth, l.Objects[1].Depth, l.Objects[2].Depth}
	// The cat sits on the sofa (half its box inside the sofa's): in front.
	// The sofa is larger and lower than the lamp: nearer.
	if got != [3]int{1, 2, 3} {
		t.Errorf("depths cat, sofa, lamp = %v, want [1 2 3]", got)
	}
	backdrop := core.Result{Width: 100, Height: 100, Objects: []core.Object{
		detection("sky", 0, 0, 100, 95), detection("bird", 10, 10, 20, 20), detection("rock", 60, 70, 90, 95),
	}}
	l = build(t, backdrop, Placement{})
	if d := l.Objects[0].Depth; d != 3 {
		t.Errorf("backdrop depth %d, want 3 (farthest)", d)
	}
}

func TestMaskGeometry(t *testing.T) {
	l := build(t, livingRoom(), Placement{})
	cat := l.Objects[0]
	boxArea := cat.Box.Area()
	// An ellipse covers pi/4 of its box.
	if want := boxArea * math.Pi / 4; math.Abs(cat.Area-want) > 0.01*boxArea {
		t.Errorf("cat area %v, want about %v", cat.Area, want)
	}
	if cat.QuadrantShares.Of(TopLeft) != 1 {
		t.Errorf("cat shares %+v", cat.QuadrantShares)
	}
}
