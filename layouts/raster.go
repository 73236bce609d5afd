package layouts

import (
	"image"
	"math"
	"paliprompt/internal/par"
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
	span := o.RasterBounds(w, h, frame)
	x0, x1, y0, y1 := span.Min.X, span.Max.X, span.Min.Y, span.Max.Y
	// The frame maps each axis on its own (a move scales, a mirror flips),
	// so the sample positions are worked out once per column and per row.
	cols := o.taps(x0, x1, w, frame, true)
	rows := o.taps(y0, y1, h, frame, false)
	par.Rows(len(rows), func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			ty := rows[r]
			line := g.Pix[(y0+r)*g.Stride+x0:]
			for c, tx := range cols {
				line[c] = uint8(softValue(o.sample(tx, ty))*255 + 0.5)
			}
		}
	})
	return g
}

// RasterBounds is the rectangle of a w x h raster that MaskRaster may
// set: the pixels whose centres lie in the object's box in the frame.
func (o *Object) RasterBounds(w, h int, frame Frame) image.Rectangle {
	box := o.Box
	if frame == OnCanvas {
		box = o.Placed
	}
	x0, x1 := pixelSpan(box.X0, box.X1, w)
	y0, y1 := pixelSpan(box.Y0, box.Y1, h)
	return image.Rect(x0, y0, x1, y1)
}

// tap is where one raster column (or row) samples the mask: between
// reference pixels i and i+1, at fraction f.
type tap struct {
	i int
	f float32
}

// taps are the sample positions of raster pixels lo..hi of an n-pixel
// axis (x when horizontal), in reference pixels.
func (o *Object) taps(lo, hi, n int, frame Frame, horizontal bool) []tap {
	out := make([]tap, 0, max(hi-lo, 0))
	size := float64(o.refH)
	if horizontal {
		size = float64(o.refW)
	}
	for p := lo; p < hi; p++ {
		u := (float64(p) + 0.5) / float64(n)
		if frame == OnCanvas {
			if horizontal {
				u, _ = o.toCanvas.invert(u, 0)
			} else {
				_, u = o.toCanvas.invert(0, u)
			}
		}
		out = append(out, tapAt(u*size-0.5))
	}
	return out
}

// tapAt is the tap of a position in reference pixels (pixel centres at
// integers).
func tapAt(x float64) tap {
	fx := math.Floor(x)
	return tap{int(fx), float32(x - fx)}
}

// sample is the mask's raw value interpolated bilinearly at a tap pair.
func (o *Object) sample(tx, ty tap) float32 {
	v00, v10 := o.rawAt(tx.i, ty.i), o.rawAt(tx.i+1, ty.i)
	v01, v11 := o.rawAt(tx.i, ty.i+1), o.rawAt(tx.i+1, ty.i+1)
	top := v00 + (v10-v00)*tx.f
	bottom := v01 + (v11-v01)*tx.f
	return top + (bottom-top)*ty.f
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
