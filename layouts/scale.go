package layouts

import (
	"image"
	"paliprompt/internal/par"

	"golang.org/x/image/draw"

	"paliprompt/core"
)

// scaleReference draws src scaled to fill dst (opaque). It is the
// preview's cost on a large photo, so the image types the pipeline
// decodes to are read directly: each destination pixel averages the
// source pixels under it when shrinking, and interpolates bilinearly when
// enlarging. Other types go through x/image/draw's approximate bilinear.
func scaleReference(dst *image.RGBA, src image.Image) {
	row, ok := rowReader(src)
	if !ok {
		draw.ApproxBiLinear.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)
		return
	}
	sb, db := src.Bounds(), dst.Bounds()
	sw, sh, dw, dh := sb.Dx(), sb.Dy(), db.Dx(), db.Dy()
	if sw >= dw && sh >= dh {
		par.Rows(dh, func(y0, y1 int) { shrinkRows(dst, row, sw, sh, y0, y1) })
		return
	}
	par.Rows(dh, func(y0, y1 int) { enlargeRows(dst, row, sw, sh, y0, y1) })
}

// rowReader returns a function writing row y (0-based) of src as RGB
// bytes into buf, for the types read directly.
func rowReader(src image.Image) (func(y int, buf []byte), bool) {
	b := src.Bounds()
	w := b.Dx()
	switch m := src.(type) {
	case *core.RGB:
		return func(y int, buf []byte) { copy(buf, m.Pix[y*m.Stride:y*m.Stride+3*w]) }, true
	case *image.RGBA:
		return func(y int, buf []byte) {
			row := m.Pix[y*m.Stride:]
			for x := range w {
				buf[3*x], buf[3*x+1], buf[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}, true
	case *image.NRGBA:
		return func(y int, buf []byte) {
			row := m.Pix[y*m.Stride:]
			for x := range w {
				buf[3*x], buf[3*x+1], buf[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}, true
	case *image.Gray:
		return func(y int, buf []byte) {
			row := m.Pix[y*m.Stride:]
			for x := range w {
				buf[3*x], buf[3*x+1], buf[3*x+2] = row[x], row[x], row[x]
			}
		}, true
	}
	return nil, false
}

// shrinkRows fills destination rows y0..y1 with the mean of the source
// pixels under each of them.
func shrinkRows(dst *image.RGBA, row func(int, []byte), sw, sh, y0, y1 int) {
	dw, dh := dst.Rect.Dx(), dst.Rect.Dy()
	xs := make([]int, dw+1) // source columns xs[i]..xs[i+1] feed destination column i
	for i := range xs {
		xs[i] = i * sw / dw
	}
	buf := make([]byte, 3*sw)
	acc := make([]uint32, 3*dw)
	for oy := y0; oy < y1; oy++ {
		clear(acc)
		ya, yb := oy*sh/dh, max((oy+1)*sh/dh, oy*sh/dh+1)
		for y := ya; y < yb; y++ {
			row(y, buf)
			for ox := range dw {
				var r, g, b uint32
				for x := xs[ox]; x < xs[ox+1]; x++ {
					r += uint32(buf[3*x])
					g += uint32(buf[3*x+1])
					b += uint32(buf[3*x+2])
				}
				acc[3*ox] += r
				acc[3*ox+1] += g
				acc[3*ox+2] += b
			}
		}
		out := dst.Pix[oy*dst.Stride:]
		rows := uint32(yb - ya)
		for ox := range dw {
			n := rows * uint32(xs[ox+1]-xs[ox])
			for c := range 3 {
				out[4*ox+c] = uint8((acc[3*ox+c] + n/2) / n)
			}
			out[4*ox+3] = 255
		}
	}
}

// enlargeRows fills destination rows y0..y1 by bilinear interpolation
// between the source pixels around each one's centre.
func enlargeRows(dst *image.RGBA, row func(int, []byte), sw, sh, y0, y1 int) {
	dw, dh := dst.Rect.Dx(), dst.Rect.Dy()
	type tap struct {
		i0, i1 int
		f      uint32 // weight of i1, of 256
	}
	taps := func(n, sn int) []tap {
		out := make([]tap, n)
		for i := range out {
			p := (float64(i)+0.5)*float64(sn)/float64(n) - 0.5
			p = min(max(p, 0), float64(sn-1))
			i0 := int(p)
			out[i] = tap{i0, min(i0+1, sn-1), uint32((p - float64(i0)) * 256)}
		}
		return out
	}
	xt, yt := taps(dw, sw), taps(dh, sh)
	a, b := make([]byte, 3*sw), make([]byte, 3*sw)
	loaded := [2]int{-1, -1}
	for oy := y0; oy < y1; oy++ {
		t := yt[oy]
		if loaded[0] != t.i0 {
			row(t.i0, a)
			loaded[0] = t.i0
		}
		if loaded[1] != t.i1 {
			row(t.i1, b)
			loaded[1] = t.i1
		}
		out := dst.Pix[oy*dst.Stride:]
		for ox, u := range xt {
			for c := range 3 {
				top := uint32(a[3*u.i0+c])*(256-u.f) + uint32(a[3*u.i1+c])*u.f
				bottom := uint32(b[3*u.i0+c])*(256-u.f) + uint32(b[3*u.i1+c])*u.f
				out[4*ox+c] = uint8((top*(256-t.f) + bottom*t.f + 1<<15) >> 16)
			}
			out[4*ox+3] = 255
		}
	}
}
