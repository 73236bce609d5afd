// Package layoutstest holds what the tests of layouts and sdxl share:
// synthetic grounding results (masks included), a stand-in reference
// image, and golden file checks with a pixel tolerance for PNGs.
package layoutstest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"paliprompt/core"
)

// EllipseMask is a segmentation mask shaped like the ellipse inscribed in
// a pixel box, with raw values -1..1 as the mask decoder gives.
func EllipseMask(b core.Box) *core.Mask {
	r := image.Rect(int(b.X0), int(b.Y0), int(b.X1), int(b.Y1))
	m := &core.Mask{Rect: r, Values: make([]float32, r.Dx()*r.Dy())}
	cx, cy := float64(r.Min.X+r.Max.X)/2, float64(r.Min.Y+r.Max.Y)/2
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			dx := (float64(x) + 0.5 - cx) / (float64(r.Dx()) / 2)
			dy := (float64(y) + 0.5 - cy) / (float64(r.Dy()) / 2)
			v := (1 - math.Sqrt(dx*dx+dy*dy)) * 4
			m.Values[(y-r.Min.Y)*r.Dx()+x-r.Min.X] = float32(math.Max(-1, math.Min(1, v)))
		}
	}
	return m
}

// Detection is a detected object with a pixel box.
func Detection(label string, x0, y0, x1, y1 float64) core.Object {
	return core.Object{Label: label, Box: core.Box{X0: x0, Y0: y0, X1: x1, Y1: y1}, Source: "detect"}
}

// Segmentation is a segmented object: its box and an ellipse mask.
func Segmentation(label string, x0, y0, x1, y1 float64) core.Object {
	o := Detection(label, x0, y0, x1, y1)
	o.Source, o.Mask = "segment", EllipseMask(o.Box)
	return o
}

// LivingRoom is a 1280x960 scene: a segmented cat on a sofa, a lamp, and
// the answer to one style question.
func LivingRoom() core.Result {
	return core.Result{
		Width: 1280, Height: 960, Caption: "a black cat sitting on a red sofa in a living room",
		Answers: []core.Answer{
			{Prefix: "answer en what is the art style of this image?", Text: "photograph."},
			{Prefix: "answer en what is the lighting in this image?", Text: "unanswerable"},
		},
		Objects: []core.Object{
			Segmentation("cat", 100, 150, 500, 450),
			Detection("sofa", 50, 300, 1200, 900),
			Detection("lamp", 1000, 50, 1200, 400),
		},
	}
}

// SceneImage paints a stand-in reference photo: a gradient with a shape
// in each object's box (its mask where it has one), larger ones first so
// that smaller objects sit on top.
func SceneImage(res core.Result) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, res.Width, res.Height))
	for y := 0; y < res.Height; y++ {
		for x := 0; x < res.Width; x++ {
			img.Set(x, y, color.RGBA{uint8(200 - 80*y/res.Height), uint8(190 - 40*x/res.Width), 160, 255})
		}
	}
	order := make([]int, len(res.Objects))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return res.Objects[order[a]].Box.Area() > res.Objects[order[b]].Box.Area()
	})
	for _, i := range order {
		o := res.Objects[i]
		c := color.RGBA{uint8(50 + 37*i%180), uint8(90 + 53*i%150), uint8(40 + 29*i%170), 255}
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

// CheckGolden compares got with the golden file at path, or writes it
// when update is set (go test -update).
func CheckGolden(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
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

// Golden PNGs may differ by a little anti-aliasing across platforms: a
// pixel differs when a channel is off by more than PixelTolerance, and at
// most MaxDiffShare of the pixels may differ.
const (
	PixelTolerance = 24
	MaxDiffShare   = 0.002
)

// CheckGoldenPNG compares an image with a golden PNG within the pixel
// tolerance, or writes it when update is set. On a mismatch the image is
// written to a temporary file to look at.
func CheckGoldenPNG(t testing.TB, path string, got *image.RGBA, update bool) {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, got); err != nil {
		t.Fatal(err)
	}
	if update {
		CheckGolden(t, path, buf.Bytes(), true)
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	want, err := png.Decode(bytes.NewReader(data))
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
	if share := float64(bad) / float64(b.Dx()*b.Dy()); share > MaxDiffShare {
		return fmt.Sprintf("%d pixels (%.2f%%) differ", bad, 100*share)
	}
	return ""
}

func far(a, b uint32) bool {
	d := int(a>>8) - int(b>>8)
	return d > PixelTolerance || d < -PixelTolerance
}

// FuzzResult decodes fuzz bytes into a grounding result: a uint16 width
// and height, then per object a label byte, four float32 box coordinates
// (any bits: NaN, infinities, negative) and a mask flag.
func FuzzResult(data []byte) core.Result {
	if len(data) < 4 {
		return core.Result{}
	}
	res := core.Result{Width: int(binary.LittleEndian.Uint16(data)) % 3000, Height: int(binary.LittleEndian.Uint16(data[2:])) % 3000}
	labels := []string{"cat", "dog", "Cat", "person", "a b", "", " ", "owl"}
	for rest := data[4:]; len(rest) >= 18 && len(res.Objects) < 64; rest = rest[18:] {
		f := func(i int) float64 { return float64(math.Float32frombits(binary.LittleEndian.Uint32(rest[1+4*i:]))) }
		o := core.Object{Label: labels[int(rest[0])%len(labels)], Box: core.Box{X0: f(0), Y0: f(1), X1: f(2), Y1: f(3)}, Source: "detect"}
		small := func(a, b float64) bool { return a > -1000 && b < 4000 && b-a > 0 && b-a < 400 }
		if rest[17]%3 == 1 && small(o.Box.X0, o.Box.X1) && small(o.Box.Y0, o.Box.Y1) {
			o.Mask = EllipseMask(o.Box)
		} else if rest[17]%3 == 2 {
			o.Mask = &core.Mask{Rect: image.Rect(0, 0, 3, 3), Values: make([]float32, int(rest[17])%12)}
		}
		res.Objects = append(res.Objects, o)
	}
	return res
}
