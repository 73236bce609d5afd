package layouts

import (
	"image"
	"math"
	"testing"

	"paliprompt/grounding"
)

// ellipseMask is a segmentation mask shaped like the ellipse inscribed in
// a pixel box, with raw values -1..1 as the mask decoder gives.
func ellipseMask(b grounding.Box) *grounding.Mask {
	r := image.Rect(int(b.X0), int(b.Y0), int(b.X1), int(b.Y1))
	m := &grounding.Mask{Rect: r, Values: make([]float32, r.Dx()*r.Dy())}
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

func detection(label string, x0, y0, x1, y1 float64) grounding.Object {
	return grounding.Object{Label: label, Box: grounding.Box{X0: x0, Y0: y0, X1: x1, Y1: y1}, Source: "detect"}
}

func segmentation(label string, x0, y0, x1, y1 float64) grounding.Object {
	o := detection(label, x0, y0, x1, y1)
	o.Source, o.Mask = "segment", ellipseMask(o.Box)
	return o
}

// livingRoom is a 1280x960 scene: a segmented cat on a sofa, a lamp.
func livingRoom() grounding.Result {
	return grounding.Result{
		Width: 1280, Height: 960, Caption: "a black cat sitting on a red sofa in a living room",
		Answers: []grounding.Answer{{Prefix: "answer en what is the art style of this image?", Text: "photograph"}},
		Objects: []grounding.Object{
			segmentation("cat", 100, 150, 500, 450),
			detection("sofa", 50, 300, 1200, 900),
			detection("lamp", 1000, 50, 1200, 400),
		},
	}
}

func newPlanner(t testing.TB) *Planner {
	t.Helper()
	p, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func build(t testing.TB, res grounding.Result, place Placement) Layout {
	t.Helper()
	l, err := newPlanner(t).Build(res, place)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
