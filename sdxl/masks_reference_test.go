package sdxl

import (
	"bytes"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"paliprompt/core"
	"paliprompt/layouts"
	"paliprompt/layouts/layoutstest"
)

// The mask rasters are the plan's contract with every consumer: the fast
// paths must give the pixels the straightforward loops below gave (they
// are the implementation before the speed-up, kept as the reference).
func TestMasksMatchReference(t *testing.T) {
	scenes := map[string]core.Result{"ten objects": tenObjects(), "living room": layoutstest.LivingRoom()}
	rng := rand.New(rand.NewPCG(7, 9))
	for k := range 6 {
		scenes[fmt.Sprintf("random %d", k)] = randomScene(rng)
	}
	for name, res := range scenes {
		for _, place := range []string{"", "mirror", "0=top-left; 1=[0.1, 0.5, 0.9, 0.95]"} {
			for _, policy := range []string{OverlapDepth, OverlapAverage} {
				t.Run(fmt.Sprintf("%s/%q/%s", name, place, policy), func(t *testing.T) {
					l := layoutOf(t, res, place)
					c := newComposer(t, func(c *Config) { c.Overlap = policy }, nil)
					w, h := 640, 448
					own := make([]*image.Gray, len(l.Objects))
					bounds := make([]image.Rectangle, len(l.Objects))
					for i := range l.Objects {
						o := &l.Objects[i]
						own[i], bounds[i] = c.objectRaster(o, w, h)
						for p, v := range own[i].Pix {
							if v != 0 && !(image.Point{p % w, p / w}).In(bounds[i]) {
								t.Fatalf("object %d: pixel %d outside its bounds %v", i, p, bounds[i])
							}
						}
						if !o.HasMask {
							want := featheredBoxReference(o.Placed, w, h, float64(c.cfg.FeatherPx))
							if !bytes.Equal(own[i].Pix, want.Pix) {
								t.Fatalf("object %d: feathered box differs", i)
							}
						}
					}
					got, gotBG := c.resolveMasks(l.Objects, own, bounds, w, h)
					want, wantBG := c.resolveMasksReference(l.Objects, own, w, h)
					for i := range got {
						if !bytes.Equal(got[i].Pix, want[i].Pix) {
							t.Fatalf("region %d differs", i)
						}
					}
					if !bytes.Equal(gotBG.Pix, wantBG.Pix) {
						t.Fatal("background differs")
					}
					p := compose(t, c, l, Request{})
					tieOrder := append(append([]int(nil), p.depthOrder...), len(p.Regions)-1)
					gotOwner, gotWins := owners(p.Regions, tieOrder, p.Width, p.Height)
					wantOwner, wantWins := ownersReference(p.Regions, tieOrder, p.Width, p.Height)
					if !slices.Equal(gotOwner, wantOwner) || !slices.Equal(gotWins, wantWins) {
						t.Fatalf("colour mask owners differ: wins %v, want %v", gotWins, wantWins)
					}
					for _, r := range p.Regions {
						if got, want := coverage(r.image, r.bounds), coverage(r.image, r.image.Rect); got != want {
							t.Fatalf("region %d coverage %v, want %v", r.Index, got, want)
						}
					}
				})
			}
		}
	}
}

// randomScene has overlapping boxes, some segmented, in random depth.
func randomScene(rng *rand.Rand) core.Result {
	res := core.Result{Width: 800, Height: 600}
	for i := range 2 + rng.IntN(6) {
		x0, y0 := rng.Float64()*600, rng.Float64()*450
		x1, y1 := x0+40+rng.Float64()*300, y0+40+rng.Float64()*250
		label := fmt.Sprintf("thing %d", i%3)
		if rng.IntN(2) == 0 {
			res.Objects = append(res.Objects, layoutstest.Segmentation(label, x0, y0, min(x1, 800), min(y1, 600)))
		} else {
			res.Objects = append(res.Objects, layoutstest.Detection(label, x0, y0, min(x1, 800), min(y1, 600)))
		}
	}
	return res
}

func featheredBoxReference(b core.Box, w, h int, feather float64) *image.Gray {
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

func (c *Composer) resolveMasksReference(objs []layouts.Object, own []*image.Gray, w, h int) (regions []*image.Gray, background *image.Gray) {
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
			averageSharesReference(vals)
		} else {
			depthSharesReference(vals, order)
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

func depthSharesReference(vals []float64, order []int) {
	left := 1.0
	for _, i := range order {
		vals[i] *= left
		left -= vals[i]
	}
}

func averageSharesReference(vals []float64) {
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

// ownersReference is the Regional Prompter's pixel owners before the
// speed-up: every region looked at every pixel.
func ownersReference(regions []Region, order []int, w, h int) ([]int, []int) {
	bg := order[len(order)-1]
	owner := make([]int, w*h)
	wins := make([]int, len(regions))
	for px := range owner {
		best, bestV := bg, -1
		for _, ri := range order {
			if v := int(regions[ri].image.Pix[px]); v > bestV {
				best, bestV = ri, v
			}
		}
		owner[px] = best
		wins[best]++
	}
	return owner, wins
}
