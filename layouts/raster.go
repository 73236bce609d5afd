package layouts

import (
	"image"
	"math"
)

// Frame selects the frame a raster is drawn in.
type Frame int

const (
	// OnReference is the reference image's frame (Object.Box).
	OnReference Frame = iota
	// OnCanvas is the target canvas (Object.Placed: after moves and mirroring).
	OnCanvas
)

// MaskRaster renders the object's soft segmentation mask, clip(v*0.5+0.5),
// on a w x h raster of the frame: in its box on the reference, or scaled
// (and mirrored) into its placed box on the canvas, keeping its shape.
// The mask decoder's raw values are sampled bilinearly. It returns nil
// when the object has no mask.
func (o *Object) MaskRaster(w, h int, frame Frame) *image.Gray {
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
			raw := o.sampleRaw(u*rw-0.5, v*rh-0.5)
			g.Pix[y*g.Stride+x] = uint8(softValue(raw)*255 + 0.5)
		}
	}
	return g
}

// pixelSpan is the range of pixel indexes whose centres lie in [a, b) of
// a normalized axis n pixels long.
func pixelSpan(a, b float64, n int) (int, int) {
	lo := int(math.Ceil(a*float64(n) - 0.5))
	hi := int(math.Ceil(b*float64(n) - 0.5))
	return min(max(lo, 0), n), min(max(hi, 0), n)
}

// outsideMask is the raw value taken outside the mask's rectangle: fully
// outside (soft value 0).
const outsideMask = -1

// sampleRaw samples the mask's raw values bilinearly at a pixel position
// of the reference image (pixel centres at integer + 0.5 - 0.5 = integer).
func (o *Object) sampleRaw(x, y float64) float32 {
	fx, fy := math.Floor(x), math.Floor(y)
	ax, ay := float32(x-fx), float32(y-fy)
	ix, iy := int(fx), int(fy)
	v00, v10 := o.rawAt(ix, iy), o.rawAt(ix+1, iy)
	v01, v11 := o.rawAt(ix, iy+1), o.rawAt(ix+1, iy+1)
	top := v00 + (v10-v00)*ax
	bottom := v01 + (v11-v01)*ax
	return top + (bottom-top)*ay
}

// rawAt is the raw mask value at a reference pixel.
func (o *Object) rawAt(x, y int) float32 {
	r := o.mask.Rect
	if x < r.Min.X || y < r.Min.Y || x >= r.Max.X || y >= r.Max.Y {
		return outsideMask
	}
	return o.mask.Values[(y-r.Min.Y)*r.Dx()+(x-r.Min.X)]
}

// softValue is big_vision's soft mask reading of a raw value.
func softValue(v float32) float32 {
	return min(max(v*0.5+0.5, 0), 1)
}
