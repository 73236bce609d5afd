package layouts

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"paliprompt/grounding"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// scenes are the layouts kept as golden files.
var scenes = []struct {
	name  string
	res   func() grounding.Result
	place string
}{
	{"living-room", livingRoom, ""},
	{"living-room-placed", livingRoom, "mirror; cat=top-right; lamp=on the left; unicorn=center"},
	{"street", street, ""},
}

// street is a busier scene: repeated labels, a duplicate detection, a
// degenerate box and one sticking out of the image.
func street() grounding.Result {
	return grounding.Result{
		Width: 1600, Height: 900, Caption: "two people walking a dog down a city street at night",
		Objects: []grounding.Object{
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
			checkGolden(t, filepath.Join("testdata", "golden", sc.name+".json"), append(got, '\n'))
		})
	}
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; run go test -update and review the diff", path)
	}
}

// sceneImage paints a stand-in reference photo: a gradient with a shape
// in each object's box, so the preview has something to overlay.
func sceneImage(res grounding.Result) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, res.Width, res.Height))
	for y := 0; y < res.Height; y++ {
		for x := 0; x < res.Width; x++ {
			img.Set(x, y, color.RGBA{uint8(90 + 100*y/res.Height), uint8(120 + 60*x/res.Width), 170, 255})
		}
	}
	for i, o := range res.Objects {
		c := color.RGBA{uint8(60 + 40*i%200), uint8(40 + 70*i%180), uint8(30 + 50*i%160), 255}
		for y := max(0, int(o.Box.Y0)); y < min(res.Height, int(o.Box.Y1)); y++ {
			for x := max(0, int(o.Box.X0)); x < min(res.Width, int(o.Box.X1)); x++ {
				if o.Mask == nil || o.Mask.Inside(x, y) {
					img.Set(x, y, c)
				}
			}
		}
	}
	return img
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
			img := newPlanner(t).Preview(sceneImage(res), l, testCanvas(l, 1152, 896))
			checkGoldenPNG(t, filepath.Join("testdata", "golden", sc.name+".png"), img)
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

// Golden PNGs may differ by a little anti-aliasing across platforms: a
// pixel counts as different when a channel is off by more than
// pixelTolerance, and at most maxDiffShare of the pixels may differ.
const (
	pixelTolerance = 24
	maxDiffShare   = 0.002
)

func checkGoldenPNG(t *testing.T, path string, got *image.RGBA) {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, got); err != nil {
		t.Fatal(err)
	}
	if *update {
		checkGolden(t, path, buf.Bytes())
		return
	}
	f, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	want, err := png.Decode(bytes.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	if diff := pixelDiff(got, want); diff != "" {
		out := filepath.Join(t.TempDir(), filepath.Base(path))
		_ = os.WriteFile(out, buf.Bytes(), 0o644)
		t.Errorf("%s: %s (got written to %s)", path, diff, out)
	}
}

func pixelDiff(got *image.RGBA, want image.Image) string {
	if got.Bounds() != want.Bounds() {
		return fmt.Sprintf("size %v, golden %v", got.Bounds(), want.Bounds())
	}
	b, bad := got.Bounds(), 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r1, g1, b1, _ := got.At(x, y).RGBA()
			r2, g2, b2, _ := want.At(x, y).RGBA()
			if far(r1, r2) || far(g1, g2) || far(b1, b2) {
				bad++
			}
		}
	}
	if share := float64(bad) / float64(b.Dx()*b.Dy()); share > maxDiffShare {
		return fmt.Sprintf("%d pixels (%.2f%%) differ", bad, 100*share)
	}
	return ""
}

func far(a, b uint32) bool {
	d := int(a>>8) - int(b>>8)
	return d > pixelTolerance || d < -pixelTolerance
}
