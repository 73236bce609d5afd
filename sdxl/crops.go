package sdxl

import (
	"fmt"
	"image"
	"math"

	"github.com/disintegration/imaging"

	"paliprompt/internal/par"
	"paliprompt/layouts"
)

// cropBackground is the colour of a crop's fully transparent pixels: a
// neutral grey, for tools that drop the alpha channel (ComfyUI's
// LoadImage gives the image and the alpha as a separate mask).
const cropBackground = 128

// crops cuts each object out of the reference: at its placed size on the
// canvas, each pixel taken (bilinearly) from the point of the reference
// its placement maps it to, so a moved, resized or mirrored object's crop
// is moved, resized and mirrored too; alpha is the object's soft mask
// there (its box for objects without a mask).
func (c *Composer) crops(ref image.Image, l layouts.Layout, p *Plan) []Crop {
	src := imaging.Clone(ref)
	var out []Crop
	for i := range l.Objects {
		o := &l.Objects[i]
		cw := max(1, int(math.Round(o.Placed.W()*float64(p.Width))))
		ch := max(1, int(math.Round(o.Placed.H()*float64(p.Height))))
		img := image.NewNRGBA(image.Rect(0, 0, cw, ch))
		par.Rows(ch, func(y0, y1 int) { cropRows(img, src, o, y0, y1) })
		out = append(out, Crop{Region: i, Label: o.Label, Width: cw, Height: ch, image: img,
			File: contentFileName(c.cfg.MaskPrefix, p.id, fmt.Sprintf("crop-%02d-%s", i, slug(o.Label)), img)})
	}
	return out
}

// cropRows fills rows y0..y1 of an object's crop from the reference.
func cropRows(img, src *image.NRGBA, o *layouts.Object, y0, y1 int) {
	cw, ch := img.Bounds().Dx(), img.Bounds().Dy()
	for y := y0; y < y1; y++ {
		for x := 0; x < cw; x++ {
			u := o.Placed.X0 + (float64(x)+0.5)/float64(cw)*o.Placed.W()
			v := o.Placed.Y0 + (float64(y)+0.5)/float64(ch)*o.Placed.H()
			ru, rv := o.ReferencePoint(u, v)
			px := img.Pix[y*img.Stride+x*4:]
			a := o.SoftMaskAt(ru, rv)
			if a <= 0 {
				copy(px, []uint8{cropBackground, cropBackground, cropBackground, 0})
				continue
			}
			r, g, b := bilinear(src, ru, rv)
			copy(px, []uint8{r, g, b, uint8(a*255 + 0.5)})
		}
	}
}

// bilinear samples an image at a normalized point (pixel centres at
// (i+0.5)/n), clamping at the border.
func bilinear(img *image.NRGBA, u, v float64) (uint8, uint8, uint8) {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	x, y := u*float64(w)-0.5, v*float64(h)-0.5
	x0, y0 := math.Floor(x), math.Floor(y)
	fx, fy := x-x0, y-y0
	at := func(ix, iy int) []uint8 {
		ix, iy = min(max(ix, 0), w-1), min(max(iy, 0), h-1)
		return img.Pix[iy*img.Stride+ix*4:]
	}
	a, b := at(int(x0), int(y0)), at(int(x0)+1, int(y0))
	c, d := at(int(x0), int(y0)+1), at(int(x0)+1, int(y0)+1)
	mix := func(k int) uint8 {
		top := float64(a[k]) + (float64(b[k])-float64(a[k]))*fx
		bottom := float64(c[k]) + (float64(d[k])-float64(c[k]))*fx
		return uint8(top + (bottom-top)*fy + 0.5)
	}
	return mix(0), mix(1), mix(2)
}
