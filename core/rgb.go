package core

import (
	"image"
	"image/color"
)

// RGB is an opaque 8-bit RGB image, three bytes per pixel, row-major: the
// form a decoded reference takes (JPEGs decode straight into it) and that
// every image takes before it is resized for the model; later stages
// (the preview) read its pixels directly.
type RGB struct {
	Pix    []uint8
	Stride int // bytes per row: 3*width
	Rect   image.Rectangle
}

// NewRGB allocates a black RGB image of the given bounds.
func NewRGB(r image.Rectangle) *RGB {
	return &RGB{Pix: make([]uint8, 3*r.Dx()*r.Dy()), Stride: 3 * r.Dx(), Rect: r}
}

// ColorModel implements image.Image.
func (p *RGB) ColorModel() color.Model { return color.RGBAModel }

// Bounds implements image.Image.
func (p *RGB) Bounds() image.Rectangle { return p.Rect }

// At implements image.Image.
func (p *RGB) At(x, y int) color.Color {
	if !(image.Point{x, y}).In(p.Rect) {
		return color.RGBA{}
	}
	i := p.Offset(x, y)
	return color.RGBA{p.Pix[i], p.Pix[i+1], p.Pix[i+2], 255}
}

// Offset is the index in Pix of pixel (x, y)'s red byte.
func (p *RGB) Offset(x, y int) int {
	return (y-p.Rect.Min.Y)*p.Stride + 3*(x-p.Rect.Min.X)
}
