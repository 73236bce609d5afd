package sdxl

import (
	"image"
	"math"
	"paliprompt/internal/par"
	"sort"
	"sync"

	"paliprompt/core"
	"paliprompt/layouts"
)

// objectRaster is an object's own mask on the canvas, before overlaps are
// resolved: its soft segmentation mask scaled into its placed box when it
// has one, else its placed box with a feathered edge; and a rectangle
// holding every non-zero pixel.
func (c *Composer) objectRaster(o *layouts.Object, w, h int) (*image.Gray, image.Rectangle) {
	if m := o.MaskRaster(w, h, layouts.OnCanvas); m != nil {
		return m, o.RasterBounds(w, h, layouts.OnCanvas)
	}
	return featheredBox(o.Placed, w, h, float64(c.cfg.FeatherPx))
}

// featheredBox rasterizes a normalized box on a w x h canvas with a
// linear ramp `feather` pixels wide centred on its edge (0: hard edge).
// Edges on the frame's border are not feathered: the object goes on
// beyond the frame. The ramp is separable: min of a column's and a row's.
func featheredBox(b core.Box, w, h int, feather float64) (*image.Gray, image.Rectangle) {
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
	loX, hiX := lo(x0), min(w, int(math.Ceil(x1+feather/2)))
	loY, hiY := lo(y0), min(h, int(math.Ceil(y1+feather/2)))
	if loX >= hiX || loY >= hiY {
		return g, image.Rectangle{}
	}
	cols := make([]float64, hiX-loX)
	for x := loX; x < hiX; x++ {
		px := float64(x) + 0.5
		cols[x-loX] = ramp(math.Min(px-x0, x1-px))
	}
	for y := loY; y < hiY; y++ {
		py := float64(y) + 0.5
		vy := ramp(math.Min(py-y0, y1-py))
		if vy == 0 {
			continue
		}
		row := g.Pix[y*g.Stride+loX : y*g.Stride+hiX]
		for i, vx := range cols {
			row[i] = uint8(math.Min(vy, vx)*255 + 0.5)
		}
	}
	return g, image.Rect(loX, loY, hiX, hiY)
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
// The background takes what is left: the complement of all objects. Only
// the objects whose masks are non-zero at a pixel take part in it (the
// others would add zeros), so the work is the objects' areas (bounds hold
// each own mask's non-zero pixels), not their number times the canvas;
// the result is the same.
func (c *Composer) resolveMasks(objs []layouts.Object, own []*image.Gray, bounds []image.Rectangle, w, h int) (regions []*image.Gray, background *image.Gray) {
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
	for i := range background.Pix {
		background.Pix[i] = 255
	}
	average := c.cfg.Overlap == OverlapAverage
	par.Rows(h, func(y0, y1 int) {
		vals := make([]float64, len(objs))
		// cover[x] lists the objects (in depth order) non-zero at column x
		// of the row; touched lists the columns any object covers.
		cover := make([][]int, w)
		var touched []int
		for y := y0; y < y1; y++ {
			touched = touched[:0]
			for _, i := range order {
				b := bounds[i]
				if y < b.Min.Y || y >= b.Max.Y {
					continue
				}
				row := own[i].Pix[y*w:]
				for x := b.Min.X; x < b.Max.X; x++ {
					if row[x] == 0 {
						continue
					}
					if len(cover[x]) == 0 {
						touched = append(touched, x)
					}
					cover[x] = append(cover[x], i)
				}
			}
			for _, x := range touched {
				resolvePixel(y*w+x, cover[x], own, regions, background, vals, average)
				cover[x] = cover[x][:0]
			}
		}
	})
	return regions, background
}

// resolvePixel shares pixel p among the objects at (in depth order) whose
// masks cover it, writing their region values and the background's.
func resolvePixel(p int, at []int, own, regions []*image.Gray, background *image.Gray, vals []float64, average bool) {
	if len(at) == 1 { // alone, an object keeps its value (the shares below give the same)
		v := own[at[0]].Pix[p]
		regions[at[0]].Pix[p], background.Pix[p] = v, 255-v
		return
	}
	for _, k := range at {
		vals[k] = float64(own[k].Pix[p]) / 255
	}
	if average {
		sortSmall(at) // summed in object index order, as shares are
		sum := 0.0
		for _, k := range at {
			sum += vals[k]
		}
		if sum > 1 {
			for _, k := range at {
				vals[k] /= sum
			}
		}
	} else {
		left := 1.0
		for _, k := range at {
			vals[k] *= left
			left -= vals[k]
		}
	}
	sortSmall(at) // rounded in object index order
	left := 255
	for _, k := range at {
		q := min(int(vals[k]*255+0.5), left)
		regions[k].Pix[p] = uint8(q)
		left -= q
	}
	background.Pix[p] = uint8(left)
}

// sortSmall sorts a few indexes in place (insertion sort: a pixel has a
// handful of objects, and this runs for every shared pixel).
func sortSmall(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// coverage is the mean value of a mask, 0..1; bounds hold every
// non-zero pixel.
func coverage(m *image.Gray, bounds image.Rectangle) float64 {
	sum := 0
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for _, v := range m.Pix[y*m.Stride+bounds.Min.X : y*m.Stride+bounds.Max.X] {
			sum += int(v)
		}
	}
	return float64(sum) / float64(255*len(m.Pix))
}

// regionOwners is the region owning each pixel and each region's count
// of them (owners, ties to the nearer object, the background last), made
// on first use: Regional Prompter's colour mask and the segmentation hint
// share it.
func (p *Plan) regionOwners() (owner, wins []int) {
	if p.owner == nil {
		bg := len(p.Regions) - 1
		order := append(append([]int(nil), p.depthOrder...), bg)
		p.owner, p.wins = owners(p.Regions, order, p.Width, p.Height)
	}
	return p.owner, p.wins
}

// owners gives every pixel to the region with the largest mask value
// there, ties to the earlier in order; wins counts each region's pixels.
// A region is looked at only inside its bounds (it is zero elsewhere),
// and the last of order (the background) owns what no other bound holds.
func owners(regions []Region, order []int, w, h int) (owner []int, wins []int) {
	owner = make([]int, w*h)
	bg := order[len(order)-1]
	for i := range owner {
		owner[i] = bg
	}
	var mu sync.Mutex
	wins = make([]int, len(regions))
	par.Rows(h, func(y0, y1 int) {
		count := make([]int, len(regions))
		var active []int
		for y := y0; y < y1; y++ {
			active = active[:0]
			lo, hi := w, 0
			for _, ri := range order[:len(order)-1] {
				if b := regions[ri].bounds; y >= b.Min.Y && y < b.Max.Y {
					active = append(active, ri)
					lo, hi = min(lo, b.Min.X), max(hi, b.Max.X)
				}
			}
			active = append(active, bg)
			for x := lo; x < hi; x++ {
				p := y*w + x
				best, bestV := bg, -1
				for _, ri := range active {
					if v := int(regions[ri].image.Pix[p]); v > bestV {
						best, bestV = ri, v
					}
				}
				owner[p] = best
				count[best]++
			}
			count[bg] += w - max(hi-lo, 0)
		}
		mu.Lock()
		for i, n := range count {
			wins[i] += n
		}
		mu.Unlock()
	})
	return owner, wins
}
