package layouts

import (
	"encoding/json"
	"flag"
	"image"
	"path/filepath"
	"testing"

	"paliprompt/core"
	"paliprompt/layouts/layoutstest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// scenes are the layouts kept as golden files.
var scenes = []struct {
	name  string
	res   func() core.Result
	place string
}{
	{"living-room", livingRoom, ""},
	{"living-room-placed", livingRoom, "mirror; cat=top-right; lamp=on the left; unicorn=center"},
	{"street", street, ""},
}

// street is a busier scene: repeated labels, a duplicate detection, a
// degenerate box and one sticking out of the image.
func street() core.Result {
	return core.Result{
		Width: 1600, Height: 900, Caption: "two people walking a dog down a city street at night",
		Objects: []core.Object{
			segmentation("person", 300, 200, 520, 880),
			segmentation("person", 700, 180, 900, 890),
			detection("person", 705, 185, 905, 885),
			segmentation("dog", 520, 650, 720, 880),
			detection("street lamp", 1350, -40, 1450, 700),
			detection("car", 1000, 500, 1650, 820),
			detection("sign", 200, 100, 200, 300),
		},
	}
}

func TestGoldenLayouts(t *testing.T) {
	for _, sc := range scenes {
		t.Run(sc.name, func(t *testing.T) {
			place, err := ParsePlacement(sc.place)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(build(t, sc.res(), place), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			layoutstest.CheckGolden(t, filepath.Join("testdata", "golden", sc.name+".json"), append(got, '\n'), *update)
		})
	}
}

// testCanvas builds a canvas as the sdxl stage would, simplified: each
// object's mask (or filled box) on the canvas, nearest first, and the
// background as what is left.
func testCanvas(l Layout, w, h int) Canvas {
	c := Canvas{Width: w, Height: h}
	taken := make([]int, w*h)
	order := make([]int, len(l.Objects))
	for _, o := range l.Objects {
		order[o.Depth-1] = o.Index
	}
	masks := make([]*image.Gray, len(l.Objects))
	for _, i := range order {
		o := &l.Objects[i]
		m := o.MaskRaster(w, h, OnCanvas)
		if m == nil {
			m = image.NewGray(image.Rect(0, 0, w, h))
			x0, x1 := pixelSpan(o.Placed.X0, o.Placed.X1, w)
			y0, y1 := pixelSpan(o.Placed.Y0, o.Placed.Y1, h)
			for y := y0; y < y1; y++ {
				for x := x0; x < x1; x++ {
					m.Pix[y*w+x] = 255
				}
			}
		}
		for p, v := range m.Pix {
			v = uint8(min(int(v), 255-taken[p]))
			m.Pix[p], taken[p] = v, taken[p]+int(v)
		}
		masks[i] = m
	}
	for i, o := range l.Objects {
		c.Regions = append(c.Regions, CanvasRegion{Label: o.Label, Color: i, Prompt: o.Label + " " + o.Location, Mask: masks[i]})
	}
	bg := image.NewGray(image.Rect(0, 0, w, h))
	for p := range bg.Pix {
		bg.Pix[p] = uint8(255 - taken[p])
	}
	return Canvas{Width: w, Height: h, Regions: append(c.Regions, CanvasRegion{Label: "background", Color: -1, Prompt: "background", Mask: bg})}
}

func TestGoldenPreviews(t *testing.T) {
	for _, sc := range scenes {
		t.Run(sc.name, func(t *testing.T) {
			place, _ := ParsePlacement(sc.place)
			res := sc.res()
			l := build(t, res, place)
			img := newPlanner(t).Preview(layoutstest.SceneImage(res), l, testCanvas(l, 1152, 896))
			layoutstest.CheckGoldenPNG(t, filepath.Join("testdata", "golden", sc.name+".png"), img, *update)
		})
	}
}

func TestPreviewWithoutImage(t *testing.T) {
	l := build(t, livingRoom(), Placement{})
	img := newPlanner(t).Preview(nil, l, Canvas{Width: 1024, Height: 1024})
	if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 640 {
		t.Errorf("preview %v", b)
	}
}
