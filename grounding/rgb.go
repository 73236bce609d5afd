package grounding

import (
	"image"
	"image/color"
	"paliprompt/internal/par"

	"paliprompt/core"
)

// ToRGB converts any image to RGB the way Hugging Face's image processors
// do it with PIL (transformers image_transforms.convert_to_rgb): images
// with transparency are composited onto white with PIL's alpha_composite
// arithmetic, everything else goes through PIL's convert("RGB"):
//
//   - 16-bit RGB(A) keeps the high byte of each sample (PIL's "RGB;16B").
//   - 16-bit grayscale is clipped to 255, not scaled: PIL opens it as mode
//     "I;16" and its conversion to RGB saturates. Matching that keeps parity
//     with the reference, at the price of 16-bit grey photos turning white.
//   - CMYK uses PIL's cmyk2rgb: r = (255-k) - c*(255-k)/255, rounded as PIL.
//   - Y'CbCr (JPEG) is upsampled and converted with libjpeg-turbo's
//     arithmetic (ycbcr.go). DecodeImage already converts lossy WebP,
//     whose planes are limited-range, with libwebp's.
//
// The result's bounds start at (0, 0). An *core.RGB input is returned as is.
func ToRGB(img image.Image) *core.RGB {
	switch m := img.(type) {
	case *core.RGB:
		return m
	case *image.YCbCr:
		return jpegToRGB(m)
	}
	b := img.Bounds()
	out := core.NewRGB(image.Rect(0, 0, b.Dx(), b.Dy()))
	par.Rows(b.Dy(), func(y0, y1 int) {
		for y := y0; y < y1; y++ {
			convertRow(out.Pix[y*out.Stride:(y+1)*out.Stride], img, b.Min.Y+y)
		}
	})
	return out
}

// convertRow converts row y of img into dst (3 bytes per pixel).
func convertRow(dst []uint8, img image.Image, y int) {
	b := img.Bounds()
	switch m := img.(type) {
	case *image.Gray:
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for i := range b.Dx() {
			put(dst, i, row[i], row[i], row[i])
		}
	case *image.Gray16:
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for i := range b.Dx() {
			v := min(uint16(row[2*i])<<8|uint16(row[2*i+1]), 255)
			put(dst, i, uint8(v), uint8(v), uint8(v))
		}
	case *image.RGBA:
		// Decoders return *image.RGBA only for opaque images.
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for i := range b.Dx() {
			put(dst, i, row[4*i], row[4*i+1], row[4*i+2])
		}
	case *image.NRGBA:
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for i := range b.Dx() {
			p := row[4*i:]
			putOnWhite(dst, i, p[0], p[1], p[2], p[3])
		}
	case *image.RGBA64:
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for i := range b.Dx() {
			put(dst, i, row[8*i], row[8*i+2], row[8*i+4])
		}
	case *image.NRGBA64:
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for i := range b.Dx() {
			p := row[8*i:]
			putOnWhite(dst, i, p[0], p[2], p[4], p[6])
		}
	case *image.CMYK:
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for i := range b.Dx() {
			p := row[4*i:]
			put(dst, i, cmykChannel(p[0], p[3]), cmykChannel(p[1], p[3]), cmykChannel(p[2], p[3]))
		}
	case *image.Paletted:
		pal := paletteNRGBA(m.Palette)
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for i := range b.Dx() {
			c := color.NRGBA{} // out-of-range index: PIL reads black, transparent here
			if int(row[i]) < len(pal) {
				c = pal[row[i]]
			}
			putOnWhite(dst, i, c.R, c.G, c.B, c.A)
		}
	default:
		for x := b.Min.X; x < b.Max.X; x++ {
			c := toNRGBA(img.At(x, y))
			putOnWhite(dst, x-b.Min.X, c.R, c.G, c.B, c.A)
		}
	}
}

func put(dst []uint8, i int, r, g, b uint8) {
	dst[3*i], dst[3*i+1], dst[3*i+2] = r, g, b
}

func putOnWhite(dst []uint8, i int, r, g, b, a uint8) {
	if a == 255 {
		put(dst, i, r, g, b)
		return
	}
	put(dst, i, onWhite(r, a), onWhite(g, a), onWhite(b, a))
}

// alphaPrecision is PRECISION_BITS of Pillow's AlphaComposite.c.
const alphaPrecision = 7

// onWhite composites one channel of a non-premultiplied pixel onto opaque
// white with the integer arithmetic of Pillow's ImagingAlphaComposite.
func onWhite(v, a uint8) uint8 {
	if a == 0 {
		return 255
	}
	sa := uint32(a)
	blend := 255 * (255 - sa)
	outa255 := sa*255 + blend
	coef1 := sa * 255 * 255 * (1 << alphaPrecision) / outa255
	coef2 := 255*(1<<alphaPrecision) - coef1
	t := uint32(v)*coef1 + 255*coef2 + (0x80 << alphaPrecision)
	return uint8(((t>>8 + t) >> 8) >> alphaPrecision)
}

// cmykChannel is one channel of Pillow's cmyk2rgb: nk - c*nk/255 with
// MULDIV255 rounding, nk = 255-k.
func cmykChannel(c, k uint8) uint8 {
	nk := 255 - uint32(k)
	t := uint32(c)*nk + 128
	return uint8(nk - ((t>>8)+t)>>8)
}

func paletteNRGBA(p color.Palette) []color.NRGBA {
	out := make([]color.NRGBA, len(p))
	for i, c := range p {
		out[i] = toNRGBA(c)
	}
	return out
}

// toNRGBA returns c as non-premultiplied 8-bit RGBA, keeping the colour of
// fully transparent pixels where the colour type stores it.
func toNRGBA(c color.Color) color.NRGBA {
	switch c := c.(type) {
	case color.NRGBA:
		return c
	case color.NRGBA64:
		return color.NRGBA{uint8(c.R >> 8), uint8(c.G >> 8), uint8(c.B >> 8), uint8(c.A >> 8)}
	case color.Gray16:
		v := uint8(min(c.Y, 255))
		return color.NRGBA{v, v, v, 255}
	case color.CMYK:
		return color.NRGBA{cmykChannel(c.C, c.K), cmykChannel(c.M, c.K), cmykChannel(c.Y, c.K), 255}
	}
	return color.NRGBAModel.Convert(c).(color.NRGBA)
}
