package sdxl

import (
	"image"
	"image/color"
	"math"

	"github.com/disintegration/imaging"

	"paliprompt/layouts"
)

// startScale is how much smaller than the canvas the start canvas is
// painted and blurred before it is scaled up: it is a soft colour field,
// so the small raster loses nothing and the blur costs 64 times less.
const startScale = 8

// startCanvas paints the img2img start image: the background in the
// median colour of the reference pixels no object covers, then each
// object from the farthest to the nearest in the median colour under its
// soft mask, blended by its own soft mask on the canvas, blurred with
// Gaussian sigma start_blur.
func (c *Composer) startCanvas(refC *image.NRGBA, l layouts.Layout, p *Plan) (*image.NRGBA, []RegionColor) {
	w, h := p.Width, p.Height
	weights := make([][]uint8, len(l.Objects))
	for i := range l.Objects {
		weights[i] = referenceWeights(&l.Objects[i], w, h)
	}
	bgWeight := make([]uint8, w*h)
	for px := range bgWeight {
		bgWeight[px] = 255
		for _, m := range weights {
			if m[px] > 12 { // covered by an object (soft mask above 5%)
				bgWeight[px] = 0
				break
			}
		}
	}
	colors := make([]color.NRGBA, len(p.Regions))
	for i := range l.Objects {
		colors[i] = weightedMedian(refC, weights[i])
	}
	bg := len(p.Regions) - 1
	colors[bg] = weightedMedian(refC, bgWeight)

	lw, lh := (w+startScale-1)/startScale, (h+startScale-1)/startScale
	low := image.NewNRGBA(image.Rect(0, 0, lw, lh))
	acc := make([]float64, lw*lh*3)
	for k := range lw * lh {
		acc[k*3], acc[k*3+1], acc[k*3+2] = float64(colors[bg].R), float64(colors[bg].G), float64(colors[bg].B)
	}
	for k := len(p.depthOrder) - 1; k >= 0; k-- { // farthest first
		i := p.depthOrder[k]
		cov := blockMeans(p.own[i], lw, lh)
		col := colors[i]
		for j, a := range cov {
			acc[j*3] += (float64(col.R) - acc[j*3]) * a
			acc[j*3+1] += (float64(col.G) - acc[j*3+1]) * a
			acc[j*3+2] += (float64(col.B) - acc[j*3+2]) * a
		}
	}
	for j := range lw * lh {
		copy(low.Pix[j*4:], []uint8{uint8(acc[j*3] + 0.5), uint8(acc[j*3+1] + 0.5), uint8(acc[j*3+2] + 0.5), 255})
	}
	blurred := low
	if sigma := c.cfg.Hints.StartBlur / startScale; sigma > 0 {
		blurred = imaging.Blur(low, sigma)
	}
	out := imaging.Resize(blurred, w, h, imaging.Linear)
	var named []RegionColor
	for i, r := range p.Regions {
		named = append(named, RegionColor{Region: i, Label: r.Label, Color: hexColor(color.RGBA(colors[i]))})
	}
	return out, named
}

// referenceWeights is an object's soft mask on the reference at w x h
// (0..255): its segmentation mask, else its box.
func referenceWeights(o *layouts.Object, w, h int) []uint8 {
	if m := o.MaskRaster(w, h, layouts.OnReference); m != nil {
		return m.Pix
	}
	out := make([]uint8, w*h)
	for px, in := range referenceRegion(o, w, h) {
		if in {
			out[px] = 255
		}
	}
	return out
}

// medianSamples bounds the pixels a median looks at: larger images are
// sampled on a regular grid.
const medianSamples = 1 << 16

// weightedMedian is the per-channel median of img's pixels, each counted
// with its weight (0..255); grey when every weight is 0.
func weightedMedian(img *image.NRGBA, weight []uint8) color.NRGBA {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	stride := max(1, int(math.Sqrt(float64(w*h)/medianSamples)))
	var hist [3][256]int
	total := 0
	for y := 0; y < h; y += stride {
		for x := 0; x < w; x += stride {
			wt := int(weight[y*w+x])
			if wt == 0 {
				continue
			}
			px := img.Pix[y*img.Stride+x*4:]
			hist[0][px[0]] += wt
			hist[1][px[1]] += wt
			hist[2][px[2]] += wt
			total += wt
		}
	}
	if total == 0 {
		return color.NRGBA{128, 128, 128, 255}
	}
	out := color.NRGBA{A: 255}
	for ch, dst := range []*uint8{&out.R, &out.G, &out.B} {
		sum := 0
		for v, n := range hist[ch] {
			if sum += n; 2*sum >= total {
				*dst = uint8(v)
				break
			}
		}
	}
	return out
}

// blockMeans averages a mask over startScale x startScale blocks into a
// lw x lh raster of coverage 0..1.
func blockMeans(m *image.Gray, lw, lh int) []float64 {
	sum := make([]float64, lw*lh)
	count := make([]float64, lw*lh)
	b := m.Bounds()
	for y := 0; y < b.Dy(); y++ {
		row := (y / startScale) * lw
		for x := 0; x < b.Dx(); x++ {
			k := row + x/startScale
			sum[k] += float64(m.Pix[y*m.Stride+x])
			count[k]++
		}
	}
	for k := range sum {
		if count[k] > 0 {
			sum[k] /= 255 * count[k]
		}
	}
	return sum
}
