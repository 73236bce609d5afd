package core

import (
	"image"
	"image/color"
)

// Mask is a segmentation mask placed in the original image's pixel grid.
//
// Values holds the mask decoder's raw output (about -1..1) resized into
// Rect, row-major, Rect.Dx()*Rect.Dy() values; outside Rect the mask is
// empty. Keeping the raw values lets both readings of big_vision be exact:
// the evaluator's binary mask (value > 0) and the demo's soft mask
// (clip(value*0.5+0.5, 0, 1)). The two do not agree at tiny positive
// values in float32, so neither is derived from the other.
type Mask struct {
	Rect   image.Rectangle
	Values []float32
}

// value returns the raw value at (x, y), and false outside the mask.
func (m *Mask) value(x, y int) (float32, bool) {
	if !(image.Point{x, y}).In(m.Rect) {
		return 0, false
	}
	return m.Values[(y-m.Rect.Min.Y)*m.Rect.Dx()+(x-m.Rect.Min.X)], true
}

// Inside reports whether (x, y) belongs to the binary mask (value > 0).
func (m *Mask) Inside(x, y int) bool {
	v, ok := m.value(x, y)
	return ok && v > 0
}

// Soft returns the soft mask value at (x, y) in 0..1.
func (m *Mask) Soft(x, y int) float32 {
	v, ok := m.value(x, y)
	if !ok {
		return 0
	}
	return softValue(v)
}

func softValue(v float32) float32 {
	s := v*0.5 + 0.5
	switch {
	case s < 0:
		return 0
	case s > 1:
		return 1
	}
	return s
}

// Area is the number of pixels in the binary mask.
func (m *Mask) Area() int {
	n := 0
	for _, v := range m.Values {
		if v > 0 {
			n++
		}
	}
	return n
}

// Binary renders the binary mask over Rect: 255 inside, 0 outside.
func (m *Mask) Binary() *image.Gray {
	g := image.NewGray(m.Rect)
	for i, v := range m.Values {
		if v > 0 {
			g.Pix[i] = 255
		}
	}
	return g
}

// Gray renders the soft mask over Rect as 8-bit grey (0..255).
func (m *Mask) Gray() *image.Gray {
	g := image.NewGray(m.Rect)
	for i, v := range m.Values {
		g.Pix[i] = color.Gray{Y: uint8(softValue(v)*255 + 0.5)}.Y
	}
	return g
}
