package grounding

import (
	"image"
	"math"
	"os"
	"reflect"
	"testing"

	"paliprompt/core"
	"paliprompt/grounding/groundingtest"
)

func readGolden(t *testing.T, name string, v any) { groundingtest.ReadGolden(t, name, v) }

func readNPYFile(t *testing.T, rel string) []float32 {
	t.Helper()
	b, err := os.ReadFile(fixturePath(rel))
	if err != nil {
		t.Fatal(err)
	}
	a, err := readNPY(b)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	v, err := a.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readGray(t *testing.T, rel string) []uint8 {
	t.Helper()
	data, err := os.ReadFile(fixturePath(rel))
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := DecodeImage(data, DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, ok := img.(*image.Gray)
	if !ok {
		t.Fatalf("%s is %T, want 8-bit grey", rel, img)
	}
	return g.Pix
}

// within returns the largest absolute difference, failing on length.
func maxAbsDiff(t *testing.T, got, want []float32) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d values, want %d", len(got), len(want))
	}
	worst := 0.0
	for i := range got {
		worst = math.Max(worst, math.Abs(float64(got[i])-float64(want[i])))
	}
	return worst
}

func TestMaskDecoderGolden(t *testing.T) {
	var g groundingtest.MaskGolden
	readGolden(t, "maskdecoder.json", &g)
	d, err := LoadMaskDecoder(fixturePath(g.Decoder))
	if err != nil {
		t.Fatal(err)
	}
	codesByName := map[string][]int{}
	for _, c := range g.Decode {
		codesByName[c.Name] = c.Codes
		t.Run(c.Name, func(t *testing.T) {
			out, err := d.Decode(c.Codes)
			if err != nil {
				t.Fatal(err)
			}
			if diff := maxAbsDiff(t, out, readNPYFile(t, c.Output)); diff > 1e-5 {
				t.Errorf("decoder output differs from the NumPy reference by %g", diff)
			}
			positive := 0
			for _, v := range out {
				if v > 0 {
					positive++
				}
			}
			if positive != c.Positive {
				t.Errorf("%d positive values, want %d", positive, c.Positive)
			}
		})
	}
	for _, p := range g.Placements {
		t.Run(p.Codes+"-placed", func(t *testing.T) {
			det := Detection{Locs: p.Locs}
			m, err := d.Mask(codesByName[p.Codes], det.Box(p.Width, p.Height), p.Width, p.Height)
			if err != nil {
				t.Fatal(err)
			}
			if p.Empty {
				if len(m.Values) != 0 {
					t.Errorf("mask %v, want empty", m.Rect)
				}
				return
			}
			if want := image.Rect(p.Box.X0, p.Box.Y0, p.Box.X1, p.Box.Y1); m.Rect != want {
				t.Fatalf("rect %v, want %v", m.Rect, want)
			}
			if diff := maxAbsDiff(t, m.Values, readNPYFile(t, p.Values)); diff > 1e-5 {
				t.Errorf("resized values differ by %g", diff)
			}
			if m.Area() != p.Area {
				t.Errorf("area %d, want %d", m.Area(), p.Area)
			}
			if got, want := m.Binary().Pix, readGray(t, p.Binary); !reflect.DeepEqual(got, want) {
				t.Errorf("binary mask differs from %s", p.Binary)
			}
			if got, want := m.Gray().Pix, readGray(t, p.Soft); !reflect.DeepEqual(got, want) {
				t.Errorf("soft mask differs from %s", p.Soft)
			}
		})
	}
}

func TestParserGolden(t *testing.T) {
	var g struct {
		Cases []struct {
			Task  string `json:"task"`
			Text  string `json:"text"`
			Found []struct {
				Label   string `json:"label"`
				Locs    [4]int `json:"locs"`
				Codes   []int  `json:"codes"`
				BoxNorm struct {
					X0, Y0, X1, Y1 float64
				} `json:"box_norm"`
			} `json:"found"`
			Skipped []core.Skipped `json:"skipped"`
		} `json:"cases"`
	}
	readGolden(t, "parser.json", &g)
	for _, c := range g.Cases {
		found, skipped := ParseDetections(core.TaskName(c.Task), c.Text)
		if len(found) != len(c.Found) || len(skipped) != len(c.Skipped) {
			t.Errorf("%q: %d found, %d skipped; want %d, %d", c.Text, len(found), len(skipped), len(c.Found), len(c.Skipped))
			continue
		}
		for i, f := range c.Found {
			got := found[i]
			b := got.BoxNorm()
			if got.Label != f.Label || got.Locs != f.Locs || !reflect.DeepEqual(got.Codes, f.Codes) ||
				b != (core.Box{X0: f.BoxNorm.X0, Y0: f.BoxNorm.Y0, X1: f.BoxNorm.X1, Y1: f.BoxNorm.Y1}) {
				t.Errorf("%q object %d: %+v (box %+v), want %+v", c.Text, i, got, b, f)
			}
		}
		for i, s := range c.Skipped {
			if skipped[i] != s {
				t.Errorf("%q skipped %d: %+v, want %+v", c.Text, i, skipped[i], s)
			}
		}
	}
}
