package sdxl

import (
	"image"
	"math"
	"sort"

	"paliprompt/core"
	"paliprompt/layouts"
)

// objectRaster is an object's own mask on the canvas, before overlaps are
// resolved: its soft segmentation mask scaled into its placed box when it
// has one, else its placed box with a feathered edge.
func (c *Composer) objectRaster(o *layouts.Object, w, h int) *image.Gray {
	if m := o.MaskRaster(w, h, layouts.OnCanvas); m != nil {
		return m
	}
	return featheredBox(o.Placed, w, h, float64(c.cfg.FeatherPx))
}

// featheredBox rasterizes a normalized box on a w x h canvas with a
// linear ramp `feather` pixels wide centred on its edge (0: hard edge).
// Edges on the frame's border are not feathered: the object goes on
// beyond the frame.
func featheredBox(b core.Box, w, h int, feather float64) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	x0, x1 := b.X0*float64(w), b.X1*float64(w)
	y0, y1 := b.Y0*float64(h), b.Y1*float64(h)
	open := func(v *float64, border, beyond float64) {
		if math.Abs(*v-border) < 0.5 {
			*v = beyond
		}
	}
	open(&x0, 0, -feather)
	open(&y0, 0, -feather)
	open(&x1, float64(w), float64(w)+feather)
	open(&y1, float64(h), float64(h)+feather)
	ramp := func(d float64) float64 {
		if feather == 0 {
			if d > 0 {
				return 1
			}
			return 0
		}
		return math.Min(math.Max(d/feather+0.5, 0), 1)
	}
	lo := func(v float64) int { return max(0, int(math.Floor(v-feather/2))) }
	hiX, hiY := min(w, int(math.Ceil(x1+feather/2))), min(h, int(math.Ceil(y1+feather/2)))
	for y := lo(y0); y < hiY; y++ {
		py := float64(y) + 0.5
		vy := ramp(math.Min(py-y0, y1-py))
		if vy == 0 {
			continue
		}
		for x := lo(x0); x < hiX; x++ {
			px := float64(x) + 0.5
			v := math.Min(vy, ramp(math.Min(px-x0, x1-px)))
			g.Pix[y*g.Stride+x] = uint8(v*255 + 0.5)
		}
	}
	return g
}

// resolveMasks turns the objects' own masks into the region masks of the
// canvas, so that at every pixel the objects and the background sum to
// 255 (to rounding):
//
//   - depth: objects are composited front to back (Layout depth 1 first);
//     each takes its mask's share of what nearer objects left, so a nearer
//     object hides a farther one and soft edges blend;
//   - average: where the masks sum above 1 they are scaled down to sum to
//     1, so overlapping objects share the pixel in proportion.
//
// The background takes what is left: the complement of all objects.
func (c *Composer) resolveMasks(objs []layouts.Object, own []*image.Gray, w, h int) (regions []*image.Gray, background *image.Gray) {
	order := make([]int, len(objs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return objs[order[a]].Depth < objs[order[b]].Depth })
	regions = make([]*image.Gray, len(objs))
	for i := range regions {
		regions[i] = image.NewGray(image.Rect(0, 0, w, h))
	}
	background = image.NewGray(image.Rect(0, 0, w, h))
	vals := make([]float64, len(objs))
	for p := 0; p < w*h; p++ {
		covered := false
		for i, m := range own {
			vals[i] = float64(m.Pix[p]) / 255
			covered = covered || m.Pix[p] != 0
		}
		if !covered {
			background.Pix[p] = 255
			continue
		}
		if c.cfg.Overlap == OverlapAverage {
			averageShares(vals)
		} else {
			depthShares(vals, order)
		}
		left := 255
		for i, v := range vals {
			q := min(int(v*255+0.5), left)
			regions[i].Pix[p] = uint8(q)
			left -= q
		}
		background.Pix[p] = uint8(left)
	}
	return regions, background
}

// depthShares composites front to back, in order (nearest first).
func depthShares(vals []float64, order []int) {
	left := 1.0
	for _, i := range order {
		vals[i] *= left
		left -= vals[i]
	}
}

// averageShares scales the values down to sum to at most 1.
func averageShares(vals []float64) {
	sum := 0.0
	for _, v := range vals {
		sum += v
	}
	if sum <= 1 {
		return
	}
	for i := range vals {
		vals[i] /= sum
	}
}

// coverage is the mean value of a mask, 0..1.
func coverage(m *image.Gray) float64 {
	sum := 0
	for _, v := range m.Pix {
		sum += int(v)
	}
	return float64(sum) / float64(255*len(m.Pix))
}
