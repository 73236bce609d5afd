package layouts

import (
	"encoding/json"
	"errors"
	"image"
	"math"
	"strings"
	"testing"

	"paliprompt/core"
)

func TestParsePlacement(t *testing.T) {
	box := func(x0, y0, x1, y1 float64) *core.Box { return &core.Box{X0: x0, Y0: y0, X1: x1, Y1: y1} }
	tests := []struct {
		in   string
		want Placement
		err  string
	}{
		{"", Placement{}, ""},
		{"character=top-left; dog=on the right",
			Placement{Moves: Moves{{Key: "character", Place: TopLeft}, {Key: "dog", Place: "on the right"}}}, ""},
		{"  teddy   bear = Upper Right quadrant ;; mirror ;",
			Placement{Mirror: true, Moves: Moves{{Key: "teddy bear", Place: TopRight}}}, ""},
		{"2=[0.1, 0.5, 0.4, 1]; cat=0,0,0.5,0.5",
			Placement{Moves: Moves{{Key: "2", Box: box(0.1, 0.5, 0.4, 1)}, {Key: "cat", Box: box(0, 0, 0.5, 0.5)}}}, ""},
		{"cat=centre; dog=in the lower-left quadrant; owl=LEFT",
			Placement{Moves: Moves{{Key: "cat", Place: "in the center"}, {Key: "dog", Place: BottomLeft}, {Key: "owl", Place: "on the left"}}}, ""},
		{"cat=somewhere", Placement{}, `place "somewhere" for "cat" is not a place name`},
		{"cat", Placement{}, `placement item "cat" is not`},
		{"=top-left", Placement{}, "has no label or index"},
		{"cat=0.5,0.5,0.2,0.9", Placement{}, "has no area"},
		{"cat=0,0,1.5,1", Placement{}, "outside 0..1"},
		{"cat=0,0,1", Placement{}, "needs 4 numbers"},
		{"cat=0,0,x,1", Placement{}, `"x" is not a number`},
		{"cat=NaN,0,1,1", Placement{}, "not a finite number"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePlacement(tt.in)
			if tt.err != "" {
				if !errors.Is(err, core.ErrBadRequest) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want core.ErrBadRequest with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(tt.want)
			if string(gj) != string(wj) {
				t.Errorf("got %s, want %s", gj, wj)
			}
		})
	}
}

func TestPlacementJSON(t *testing.T) {
	var req struct {
		Place  Moves `json:"place"`
		Mirror bool  `json:"mirror"`
	}
	in := `{"place": {"dog": "on the right", "0": [0, 0.5, 0.5, 1], "cat": "Top Left"}, "mirror": true}`
	if err := json.Unmarshal([]byte(in), &req); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(req.Place)
	if want := `{"dog":"on the right","0":[0,0.5,0.5,1],"cat":"top-left"}`; string(out) != want {
		t.Errorf("round trip %s, want %s (order kept, names canonical)", out, want)
	}
	for _, bad := range []string{`{"place": ["cat"]}`, `{"place": {"cat": 3}}`, `{"place": {"cat": [0, 0, 2, 1]}}`, `{"place": {"": "left"}}`} {
		if err := json.Unmarshal([]byte(bad), &req); !errors.Is(err, core.ErrBadRequest) {
			t.Errorf("%s: error %v, want core.ErrBadRequest", bad, err)
		}
	}
}

func near(a, b core.Box) bool {
	return math.Abs(a.X0-b.X0)+math.Abs(a.Y0-b.Y0)+math.Abs(a.X1-b.X1)+math.Abs(a.Y1-b.Y1) < 1e-9
}

func TestPlacementMoves(t *testing.T) {
	res := core.Result{Width: 1000, Height: 1000, Objects: []core.Object{
		detection("character", 600, 600, 800, 1000), // 0.2 x 0.4
		detection("dog", 100, 700, 300, 800),        // 0.2 x 0.1
		detection("tree", 0, 0, 100, 300),
	}}
	tests := []struct {
		name  string
		place string
		want  map[int]core.Box
	}{
		{"quadrant fits, aspect kept", "character=top-left", map[int]core.Box{0: {X0: 0.125, Y0: 0, X1: 0.375, Y1: 0.5}}},
		{"omost location keeps size", "dog=on the right", map[int]core.Box{1: {X0: 0.7333333333, Y0: 0.45, X1: 0.9333333333, Y1: 0.55}}},
		{"omost location stays in frame", "character=on the top-right", map[int]core.Box{0: {X0: 0.7333333333, Y0: 0, X1: 0.9333333333, Y1: 0.4}}},
		{"box fits, centred", "1=[0, 0, 1, 1]", map[int]core.Box{1: {X0: 0, Y0: 0.25, X1: 1, Y1: 0.75}}},
		{"mirror", "mirror", map[int]core.Box{0: {X0: 0.2, Y0: 0.6, X1: 0.4, Y1: 1}, 1: {X0: 0.7, Y0: 0.7, X1: 0.9, Y1: 0.8}, 2: {X0: 0.9, Y0: 0, X1: 1, Y1: 0.3}}},
		{"mirror then move", "mirror; tree=bottom-right", map[int]core.Box{2: {X0: 0.6666666667, Y0: 0.5, X1: 0.8333333333, Y1: 1}, 1: {X0: 0.7, Y0: 0.7, X1: 0.9, Y1: 0.8}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			place, err := ParsePlacement(tt.place)
			if err != nil {
				t.Fatal(err)
			}
			l := build(t, res, place)
			for i, want := range tt.want {
				if got := l.Objects[i].Placed; !near(got, want) {
					t.Errorf("object %d placed at %v, want %v", i, got, want)
				}
			}
			if len(l.Conflicts) != 0 {
				t.Errorf("conflicts %+v", l.Conflicts)
			}
		})
	}
}

func TestPlacementGeometryFollows(t *testing.T) {
	place, _ := ParsePlacement("cat=bottom-right")
	l := build(t, livingRoom(), place)
	cat := l.Objects[0]
	if !cat.Moved || cat.Quadrant != BottomRight || !strings.Contains(cat.Sentence, "lower-right quadrant") {
		t.Errorf("moved cat: %+v", cat)
	}
	if cat.Box != (core.Box{X0: 100.0 / 1280, Y0: 150.0 / 960, X1: 500.0 / 1280, Y1: 450.0 / 960}) {
		t.Errorf("the reference box changed: %v", cat.Box)
	}
	for _, r := range l.Relations {
		if r.Subject == 0 && r.Object == 2 && r.Relation != Below {
			t.Errorf("cat vs lamp: %s", r.Text)
		}
	}
}

func TestPlacementConflicts(t *testing.T) {
	res := core.Result{Width: 100, Height: 100, Objects: []core.Object{
		detection("person", 0, 0, 20, 50), detection("person", 70, 0, 90, 50), detection("dog", 40, 60, 60, 90),
	}}
	place, err := ParsePlacement("unicorn=left; 7=right; person=bottom-right; dog=top-left; 2=bottom-right")
	if err != nil {
		t.Fatal(err)
	}
	l := build(t, res, place)
	want := []string{
		`no object labelled "unicorn" (labels: person, person, dog)`,
		"no object with index 7 (the layout has 3 objects)",
		`label "person" matches objects 0, 1; moved object 0`,
		"object 2 (dog) is placed twice (top-left, then bottom-right); the later place wins",
		"objects 0 (person) and 2 (dog) are forced into one place",
	}
	if len(l.Conflicts) != len(want) {
		t.Fatalf("conflicts %+v", l.Conflicts)
	}
	for i, w := range want {
		if !strings.Contains(l.Conflicts[i].Reason, w) {
			t.Errorf("conflict %d: %q, want %q", i, l.Conflicts[i].Reason, w)
		}
	}
	if !l.Objects[0].Moved || l.Objects[1].Moved || l.Objects[2].Quadrant != BottomRight {
		t.Errorf("objects %+v", l.Objects)
	}
}

func TestMaskKeepsShapeWhenMoved(t *testing.T) {
	res := core.Result{Width: 400, Height: 200, Objects: []core.Object{segmentation("ball", 20, 20, 120, 120)}}
	place, _ := ParsePlacement("ball=[0.5, 0, 1, 1]; mirror")
	l := build(t, res, place)
	o := l.Objects[0]
	ref := o.MaskRaster(400, 200, OnReference)
	can := o.MaskRaster(800, 400, OnCanvas)
	// The 100x100 px ball (0.25 x 0.5 of the frame) fills the half-width,
	// full-height box: 400x400 px of the 800x400 canvas, still round.
	if want := (core.Box{X0: 0.5, Y0: 0, X1: 1, Y1: 1}); !near(o.Placed, want) {
		t.Fatalf("placed %v, want %v", o.Placed, want)
	}
	coverage := func(g []uint8) (n int) {
		for _, v := range g {
			if v >= 128 {
				n++
			}
		}
		return n
	}
	refN, canN := coverage(ref.Pix), coverage(can.Pix)
	if ratio := float64(canN) / float64(refN); math.Abs(ratio-16) > 0.5 {
		t.Errorf("mask grew %vx, want 16x (4x per side)", ratio)
	}
	if v := can.GrayAt(600, 200).Y; v != 255 {
		t.Errorf("centre of the moved mask %d, want 255", v)
	}
	if v := can.GrayAt(410, 10).Y; v != 0 {
		t.Errorf("outside the ellipse %d, want 0", v)
	}
	if math.Abs(o.Area-math.Pi/4*0.5) > 0.005 {
		t.Errorf("area %v, want pi/8", o.Area)
	}
}

func TestMirrorFlipsMask(t *testing.T) {
	o := detection("flag", 0, 0, 100, 100)
	o.Mask = &core.Mask{Rect: image.Rect(0, 0, 100, 100), Values: make([]float32, 100*100)}
	for y := 0; y < 100; y++ {
		for x := 0; x < 100; x++ {
			o.Mask.Values[y*100+x] = -1
			if x < 30 { // only the left 30% is inside
				o.Mask.Values[y*100+x] = 1
			}
		}
	}
	l := build(t, core.Result{Width: 200, Height: 100, Objects: []core.Object{o}}, Placement{Mirror: true})
	m := l.Objects[0].MaskRaster(200, 100, OnCanvas)
	// The object moves from the left half to the right half, and its
	// inside (the flag's left 30%) to the right 30% of its new box.
	for _, c := range []struct {
		x    int
		want uint8
	}{{10, 0}, {110, 0}, {160, 0}, {175, 255}, {195, 255}} {
		if got := m.GrayAt(c.x, 50).Y; got != c.want {
			t.Errorf("mirrored mask at x=%d: %d, want %d", c.x, got, c.want)
		}
	}
}
