package grounding

import (
	"image"
	"paliprompt/internal/par"

	"paliprompt/core"
)

// The JPEG and WebP decoders of Go return Y'CbCr planes with subsampled
// chroma. PIL gets its pixels from libjpeg-turbo and libwebp, which
// upsample chroma with a triangle ("fancy") filter and convert with their
// own fixed-point tables; image/color replicates chroma and rounds
// differently. This file reproduces the two libraries' arithmetic, so that
// the RGB pixels match PIL wherever the decoded planes do (the inverse DCT
// of image/jpeg still differs from libjpeg's by at most a level or two on
// some pixels).

// libjpeg's YCbCr->RGB tables (jdcolor.c, SCALEBITS 16).
var jpegCrR, jpegCbB, jpegCrG, jpegCbG [256]int32

func init() {
	const scale = 16
	const half = 1 << (scale - 1)
	fix := func(x float64) int32 { return int32(x*(1<<scale) + 0.5) }
	for i := range 256 {
		x := int32(i) - 128
		jpegCrR[i] = (fix(1.40200)*x + half) >> scale
		jpegCbB[i] = (fix(1.77200)*x + half) >> scale
		jpegCrG[i] = -fix(0.71414) * x
		jpegCbG[i] = -fix(0.34414)*x + half
	}
}

func clamp8(v int32) uint8 {
	return uint8(max(0, min(v, 255)))
}

// jpegPixel converts one Y'CbCr sample with libjpeg's tables.
func jpegPixel(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy := int32(y)
	return clamp8(yy + jpegCrR[cr]), clamp8(yy + (jpegCbG[cb]+jpegCrG[cr])>>16), clamp8(yy + jpegCbB[cb])
}

// chromaPlane is one subsampled chroma plane of an image.YCbCr.
type chromaPlane struct {
	pix    []uint8
	stride int
	w, h   int // the plane's real size (downsampled_width/height in libjpeg)
}

// row returns chroma row y, clamped to the plane (libjpeg replicates the
// edge rows).
func (c chromaPlane) row(y int) []uint8 {
	y = max(0, min(y, c.h-1))
	return c.pix[y*c.stride : y*c.stride+c.w]
}

func (c chromaPlane) at(x, y int) int32 {
	x = max(0, min(x, c.w-1))
	y = max(0, min(y, c.h-1))
	return int32(c.pix[y*c.stride+x])
}

// chromaPlanes returns the Cb and Cr planes of m with their real sizes.
func chromaPlanes(m *image.YCbCr) (cb, cr chromaPlane) {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	cw, ch := w, h
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		cw = (w + 1) / 2
	case image.YCbCrSubsampleRatio420:
		cw, ch = (w+1)/2, (h+1)/2
	case image.YCbCrSubsampleRatio440:
		ch = (h + 1) / 2
	case image.YCbCrSubsampleRatio411:
		cw = (w + 3) / 4
	case image.YCbCrSubsampleRatio410:
		cw, ch = (w+3)/4, (h+1)/2
	}
	off := m.COffset(m.Rect.Min.X, m.Rect.Min.Y)
	return chromaPlane{m.Cb[off:], m.CStride, cw, ch}, chromaPlane{m.Cr[off:], m.CStride, cw, ch}
}

// jpegChromaRow fills dst with the chroma of output row y (0-based) of a
// w-pixel row, upsampled the way libjpeg-turbo's jdsample.c does with
// do_fancy_upsampling (PIL's setting).
func jpegChromaRow(dst []int32, c chromaPlane, ratio image.YCbCrSubsampleRatio, y, w int) {
	switch {
	case ratio == image.YCbCrSubsampleRatio444:
		for x := range w {
			dst[x] = c.at(x, y)
		}
	case ratio == image.YCbCrSubsampleRatio422 && c.w > 2: // h2v1_fancy_upsample
		for x := range w {
			j := x / 2
			if x%2 == 0 {
				dst[x] = (3*c.at(j, y) + c.at(j-1, y) + 1) >> 2
			} else {
				dst[x] = (3*c.at(j, y) + c.at(j+1, y) + 2) >> 2
			}
		}
	case ratio == image.YCbCrSubsampleRatio420 && c.w > 2: // h2v2_fancy_upsample
		near, far := c.row(y/2), c.row(y/2-1)
		if y%2 == 1 {
			far = c.row(y/2 + 1)
		}
		colsum := func(j int) int32 {
			j = max(0, min(j, c.w-1))
			return 3*int32(near[j]) + int32(far[j])
		}
		last, this := colsum(0), colsum(0)
		for j := 0; 2*j < w; j++ {
			next := colsum(j + 1)
			dst[2*j] = (3*this + last + 8) >> 4
			if 2*j+1 < w {
				dst[2*j+1] = (3*this + next + 7) >> 4
			}
			last, this = this, next
		}
	case ratio == image.YCbCrSubsampleRatio440: // h1v2_fancy_upsample
		near, far, bias := y/2, y/2-1, int32(1)
		if y%2 == 1 {
			far, bias = y/2+1, 2
		}
		for x := range w {
			dst[x] = (3*c.at(x, near) + c.at(x, far) + bias) >> 2
		}
	default: // plain replication (libjpeg's int_upsample, and narrow images)
		sx, sy := subsampleFactors(ratio)
		for x := range w {
			dst[x] = c.at(x/sx, y/sy)
		}
	}
}

func subsampleFactors(r image.YCbCrSubsampleRatio) (int, int) {
	switch r {
	case image.YCbCrSubsampleRatio422:
		return 2, 1
	case image.YCbCrSubsampleRatio420:
		return 2, 2
	case image.YCbCrSubsampleRatio440:
		return 1, 2
	case image.YCbCrSubsampleRatio411:
		return 4, 1
	case image.YCbCrSubsampleRatio410:
		return 4, 2
	}
	return 1, 1
}

// jpegToRGB converts a decoded JPEG's Y'CbCr planes as libjpeg-turbo does.
func jpegToRGB(m *image.YCbCr) *core.RGB {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	out := core.NewRGB(image.Rect(0, 0, w, h))
	cb, cr := chromaPlanes(m)
	par.Rows(h, func(y0, y1 int) {
		cbRow, crRow := make([]int32, w), make([]int32, w)
		for y := y0; y < y1; y++ {
			jpegChromaRow(cbRow, cb, m.SubsampleRatio, y, w)
			jpegChromaRow(crRow, cr, m.SubsampleRatio, y, w)
			yRow := m.Y[m.YOffset(m.Rect.Min.X, m.Rect.Min.Y+y):]
			dst := out.Pix[y*out.Stride:]
			for x := range w {
				r, g, b := jpegPixel(yRow[x], uint8(cbRow[x]), uint8(crRow[x]))
				put(dst, x, r, g, b)
			}
		}
	})
	return out
}

// webpPixel converts one VP8 (limited-range BT.601) sample with libwebp's
// fixed-point arithmetic (src/dsp/yuv.h).
func webpPixel(y, u, v int32) (uint8, uint8, uint8) {
	mult := func(v, c int32) int32 { return (v * c) >> 8 }
	clip := func(v int32) uint8 {
		const mask = (256 << 6) - 1
		if v&^mask == 0 {
			return uint8(v >> 6)
		}
		if v < 0 {
			return 0
		}
		return 255
	}
	yy := mult(y, 19077)
	return clip(yy + mult(v, 26149) - 14234),
		clip(yy - mult(u, 6419) - mult(v, 13320) + 8708),
		clip(yy + mult(u, 33050) - 17685)
}

// webpChromaRow fills dst with output row y's chroma, upsampled as
// libwebp's fancy upsampler (src/dsp/upsampling.c) does: the nearer chroma
// row weighs 3, the farther 1, combined in two rounding steps.
func webpChromaRow(dst []int32, c chromaPlane, y, w int) {
	near, far := y/2, y/2-1
	if y%2 == 1 {
		far = y/2 + 1
	}
	n := func(j int) int32 { return c.at(j, near) }
	f := func(j int) int32 { return c.at(j, far) }
	dst[0] = (3*n(0) + f(0) + 2) >> 2
	for x := 1; x <= (w-1)/2; x++ {
		n0, n1, f0, f1 := n(x-1), n(x), f(x-1), f(x)
		da := (3*n0 + n1 + f0 + 3*f1 + 8) >> 3
		db := (n0 + 3*n1 + 3*f0 + f1 + 8) >> 3
		dst[2*x-1] = (db + n0) >> 1
		dst[2*x] = (da + n1) >> 1
	}
	if w%2 == 0 {
		j := w/2 - 1
		dst[w-1] = (3*n(j) + f(j) + 2) >> 2
	}
}

// webpToRGB converts a lossy WebP's 4:2:0 planes as libwebp does. Alpha,
// when the file has it, is composited onto white like every other format.
func webpToRGB(m *image.YCbCr, alpha []uint8, alphaStride int) *core.RGB {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	out := core.NewRGB(image.Rect(0, 0, w, h))
	cb, cr := chromaPlanes(m)
	par.Rows(h, func(y0, y1 int) {
		u, v := make([]int32, w), make([]int32, w)
		for y := y0; y < y1; y++ {
			webpChromaRow(u, cb, y, w)
			webpChromaRow(v, cr, y, w)
			yRow := m.Y[m.YOffset(m.Rect.Min.X, m.Rect.Min.Y+y):]
			dst := out.Pix[y*out.Stride:]
			for x := range w {
				r, g, b := webpPixel(int32(yRow[x]), u[x], v[x])
				if alpha != nil {
					putOnWhite(dst, x, r, g, b, alpha[y*alphaStride+x])
				} else {
					put(dst, x, r, g, b)
				}
			}
		}
	})
	return out
}
