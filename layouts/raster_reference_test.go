package layouts

import (
	"bytes"
	"fmt"
	"image"
	"math"
	"testing"

	"paliprompt/core"
	"paliprompt/layouts/layoutstest"
)

// TestMaskRasterMatchesReference: the per-axis sample positions give the
// pixels the per-pixel loop below gave (the implementation before the
// speed-up, kept as the reference), on both frames and every placement.
func TestMaskRasterMatchesReference(t *testing.T) {
	res := core.Result{Width: 1280, Height: 960, Objects: []core.Object{
		layoutstest.Segmentation("cat", 100, 150, 500, 450),
		layoutstest.Segmentation("dog", 700, 300, 1270, 950),
		layoutstest.Segmentation("bird", 0, 0, 90, 40),
	}}
	for _, place := range []string{"", "mirror", "cat=bottom-right; dog=[0.05, 0.1, 0.35, 0.9]", "bird=in the center; mirror"} {
		p, err := ParsePlacement(place)
		if err != nil {
			t.Fatal(err)
		}
		l, err := newPlanner(t).Build(res, p)
		if err != nil {
			t.Fatal(err)
		}
		for i := range l.Objects {
			o := &l.Objects[i]
			for _, size := range [][2]int{{1152, 896}, {640, 427}, {97, 61}} {
				for _, frame := range []Frame{OnReference, OnCanvas} {
					name := fmt.Sprintf("%q object %d %dx%d frame %d", place, i, size[0], size[1], frame)
					got, want := o.MaskRaster(size[0], size[1], frame), o.maskRasterReference(size[0], size[1], frame)
					if !bytes.Equal(got.Pix, want.Pix) {
						t.Errorf("%s: pixels differ", name)
					}
				}
			}
		}
	}
}

func (o *Object) maskRasterReference(w, h int, frame Frame) *image.Gray {
	if o.mask == nil || w <= 0 || h <= 0 {
		return nil
	}
	g := image.NewGray(image.Rect(0, 0, w, h))
	box := o.Box
	if frame == OnCanvas {
		box = o.Placed
	}
	x0, x1 := pixelSpan(box.X0, box.X1, w)
	y0, y1 := pixelSpan(box.Y0, box.Y1, h)
	rw, rh := float64(o.refW), float64(o.refH)
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			u, v := (float64(x)+0.5)/float64(w), (float64(y)+0.5)/float64(h)
			if frame == OnCanvas {
				u, v = o.toCanvas.invert(u, v)
			}
			raw := o.sampleRawReference(u*rw-0.5, v*rh-0.5)
			g.Pix[y*g.Stride+x] = uint8(softValue(raw)*255 + 0.5)
		}
	}
	return g
}
func (o *Object) sampleRawReference(x, y float64) float32 {
	fx, fy := math.Floor(x), math.Floor(y)
	ax, ay := float32(x-fx), float32(y-fy)
	ix, iy := int(fx), int(fy)
	v00, v10 := o.rawAt(ix, iy), o.rawAt(ix+1, iy)
	v01, v11 := o.rawAt(ix, iy+1), o.rawAt(ix+1, iy+1)
	top := v00 + (v10-v00)*ax
	bottom := v01 + (v11-v01)*ax
	return top + (bottom-top)*ay
}
