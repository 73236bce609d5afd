package sdxl

import (
	"image"
	"math"
	"sync"

	"github.com/disintegration/imaging"

	"paliprompt/core"
	"paliprompt/internal/par"
	"paliprompt/layouts"
)

// resizeTo scales an image to w x h (bilinear), as 8-bit NRGBA.
func resizeTo(img image.Image, w, h int) *image.NRGBA {
	return imaging.Resize(img, w, h, imaging.Linear)
}

// canny is the Canny edge detector as OpenCV's Canny runs on a colour
// image (ControlNet's canny preprocessor calls it on RGB): after a
// Gaussian blur, 3x3 Sobel gradients per channel, the channel with the
// largest L1 magnitude |gx|+|gy| at each pixel giving magnitude and
// direction; non-maximum suppression along the direction; then
// hysteresis: pixels at or above high are edges, and pixels above low
// are edges when 8-connected to one. 255 on edges, 0 elsewhere.
func canny(img *image.NRGBA, sigma, low, high float64) *image.Gray {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	src := img
	if sigma > 0 {
		src = imaging.Blur(img, sigma)
	}
	mag := make([]int32, w*h)
	dir := make([]uint8, w*h) // 0: horizontal gradient, 1: 45°, 2: vertical, 3: 135°
	par.Rows(h, func(y0, y1 int) { gradients(src, mag, dir, y0, y1) })
	out := image.NewGray(image.Rect(0, 0, w, h))
	weak := make([]bool, w*h)
	var stack []int
	var mu sync.Mutex
	par.Rows(h, func(y0, y1 int) {
		strong := suppress(mag, dir, w, h, low, high, out, weak, y0, y1)
		mu.Lock()
		stack = append(stack, strong...)
		mu.Unlock()
	})
	hysteresis(out, weak, stack)
	return out
}

// gradients writes the Sobel magnitude and direction of rows y0..y1 (the
// channel with the largest L1 magnitude at each pixel).
func gradients(src *image.NRGBA, mag []int32, dir []uint8, y0, y1 int) {
	w, h := src.Bounds().Dx(), src.Bounds().Dy()
	const tan22, tan67 = 0.41421356, 2.41421356
	pix, stride := src.Pix, src.Stride
	for y := y0; y < y1; y++ {
		up, mid, down := max(y-1, 0)*stride, y*stride, min(y+1, h-1)*stride // replicate the border
		for x := 0; x < w; x++ {
			l, c, r := max(x-1, 0)*4, x*4, min(x+1, w-1)*4
			best, bgx, bgy := -1, 0, 0
			for ch := 0; ch < 3; ch++ {
				ul, um, ur := int(pix[up+l+ch]), int(pix[up+c+ch]), int(pix[up+r+ch])
				ml, mr := int(pix[mid+l+ch]), int(pix[mid+r+ch])
				dl, dm, dr := int(pix[down+l+ch]), int(pix[down+c+ch]), int(pix[down+r+ch])
				gx := ur + 2*mr + dr - ul - 2*ml - dl
				gy := dl + 2*dm + dr - ul - 2*um - ur
				if m := abs(gx) + abs(gy); m > best {
					best, bgx, bgy = m, gx, gy
				}
			}
			ax, ay := float64(abs(bgx)), float64(abs(bgy))
			mag[y*w+x] = int32(best)
			switch {
			case ay <= ax*tan22:
				dir[y*w+x] = 0
			case ay >= ax*tan67:
				dir[y*w+x] = 2
			case (bgx > 0) == (bgy > 0):
				dir[y*w+x] = 1
			default:
				dir[y*w+x] = 3
			}
		}
	}
}

// suppress keeps the ridges of rows y0..y1 (non-maximum suppression along
// the gradient): those at or above high are edges in out, and returned as
// the seeds of hysteresis; those above low are weak.
func suppress(mag []int32, dir []uint8, w, h int, low, high float64, out *image.Gray, weak []bool, y0, y1 int) []int {
	at := func(x, y int) int32 {
		if x < 0 || y < 0 || x >= w || y >= h {
			return 0
		}
		return mag[y*w+x]
	}
	// neighbours along the gradient, per direction
	steps := [4][2]int{{1, 0}, {1, 1}, {0, 1}, {-1, 1}}
	var strong []int
	for y := y0; y < y1; y++ {
		for x := 0; x < w; x++ {
			i := y*w + x
			m := mag[i]
			if float64(m) <= low {
				continue
			}
			s := steps[dir[i]]
			// OpenCV keeps a ridge's first pixel (> on one side, >= on the other).
			if m <= at(x-s[0], y-s[1]) || m < at(x+s[0], y+s[1]) {
				continue
			}
			if float64(m) >= high {
				out.Pix[i] = 255
				strong = append(strong, i)
			} else {
				weak[i] = true
			}
		}
	}
	return strong
}

// hysteresis makes every weak pixel 8-connected to an edge an edge, from
// the seeds out (the result does not depend on their order).
func hysteresis(out *image.Gray, weak []bool, stack []int) {
	w, h := out.Bounds().Dx(), out.Bounds().Dy()
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		x, y := i%w, i/w
		for dy := -1; dy <= 1; dy++ {
			for dx := -1; dx <= 1; dx++ {
				nx, ny := x+dx, y+dy
				if nx < 0 || ny < 0 || nx >= w || ny >= h {
					continue
				}
				if j := ny*w + nx; weak[j] {
					weak[j], out.Pix[j] = false, 255
					stack = append(stack, j)
				}
			}
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// edgeReach is how far (pixels of the edge map) around an object's mask its edges
// count as its own: its outline lies on the mask's border, partly outside.
const edgeReach = 3

// edgeMap is the reference's Canny edges laid out like the plan: the
// background's edges where no object is (the layout mirrored with it),
// without the edges of the objects' old places; then each object, from
// the farthest to the nearest, clears what it hides and paints its own
// edges (those within edgeReach of its reference mask, or in its box)
// moved, resized and mirrored into its placed box.
func (c *Composer) edgeMap(ref image.Image, l layouts.Layout, p *Plan) *image.Gray {
	w, h := p.Width, p.Height
	refE := edgeSource(ref, w, h)
	ew, eh := refE.Bounds().Dx(), refE.Bounds().Dy()
	edges := canny(refE, c.cfg.Hints.EdgeSigma, c.cfg.Hints.EdgeLow, c.cfg.Hints.EdgeHigh)
	regions := make([][]bool, len(l.Objects)) // each object's part of the reference, at ew x eh
	taken := make([]bool, ew*eh)
	for i := range l.Objects {
		box := boxRect(l.Objects[i].Box, ew, eh)
		regions[i] = dilate(referenceRegion(&l.Objects[i], ew, eh), ew, eh, edgeReach, box)
		area := box.Inset(-edgeReach).Intersect(image.Rect(0, 0, ew, eh))
		for y := area.Min.Y; y < area.Max.Y; y++ {
			for x := area.Min.X; x < area.Max.X; x++ {
				taken[y*ew+x] = taken[y*ew+x] || regions[i][y*ew+x]
			}
		}
	}
	out := image.NewGray(image.Rect(0, 0, w, h))
	par.Rows(h, func(y0, y1 int) {
		for y := y0; y < y1; y++ {
			for x := 0; x < w; x++ {
				u, v := l.BackgroundPoint((float64(x)+0.5)/float64(w), (float64(y)+0.5)/float64(h))
				if q := pixelAt(u, v, ew, eh); q >= 0 && !taken[q] {
					out.Pix[y*w+x] = edges.Pix[q]
				}
			}
		}
	})
	for k := len(p.depthOrder) - 1; k >= 0; k-- { // farthest first
		i := p.depthOrder[k]
		paintObjectEdges(out, edges, regions[i], &l.Objects[i], p.own[i])
	}
	return out
}

// edgeSource is the reference at the resolution edges are found at: the
// canvas size, or the reference's own when it is smaller (upscaling
// first would soften every step and weaken its gradient below the
// thresholds, which are meant for sharp 8-bit images).
func edgeSource(ref image.Image, w, h int) *image.NRGBA {
	b := ref.Bounds()
	if b.Dx() <= w && b.Dy() <= h {
		return imaging.Clone(ref)
	}
	return resizeTo(ref, w, h)
}

// paintObjectEdges paints one object's edges (an edge map with its
// region, at the reference's edge resolution) into out at its placed box.
func paintObjectEdges(out, edges *image.Gray, region []bool, o *layouts.Object, own *image.Gray) {
	w, h := out.Bounds().Dx(), out.Bounds().Dy()
	ew, eh := edges.Bounds().Dx(), edges.Bounds().Dy()
	x0, x1 := spanPx(o.Placed.X0, o.Placed.X1, w, edgeReach)
	y0, y1 := spanPx(o.Placed.Y0, o.Placed.Y1, h, edgeReach)
	par.Rows(y1-y0, func(r0, r1 int) {
		for y := y0 + r0; y < y0+r1; y++ {
			for x := x0; x < x1; x++ {
				u, v := o.ReferencePoint((float64(x)+0.5)/float64(w), (float64(y)+0.5)/float64(h))
				q := pixelAt(u, v, ew, eh)
				mine := q >= 0 && region[q]
				i := y*w + x
				switch {
				case own.Pix[i] >= 128 && mine:
					out.Pix[i] = edges.Pix[q]
				case own.Pix[i] >= 128:
					out.Pix[i] = 0 // hidden behind this object
				case mine && edges.Pix[q] != 0:
					out.Pix[i] = edges.Pix[q]
				}
			}
		}
	})
}

// referenceRegion is an object's part of the reference at w x h: its
// soft mask at 0.5 and above, else its box.
func referenceRegion(o *layouts.Object, w, h int) []bool {
	out := make([]bool, w*h)
	if m := o.MaskRaster(w, h, layouts.OnReference); m != nil {
		for i, v := range m.Pix {
			out[i] = v >= 128
		}
		return out
	}
	x0, x1 := spanPx(o.Box.X0, o.Box.X1, w, 0)
	y0, y1 := spanPx(o.Box.Y0, o.Box.Y1, h, 0)
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			out[y*w+x] = true
		}
	}
	return out
}

// dilate grows a binary map by r pixels (a square), with a separable
// running count: rows first, then columns. Only the pixels within r of
// box (where the map may be set) are visited.
func dilate(in []bool, w, h, r int, box image.Rectangle) []bool {
	area := box.Inset(-r).Intersect(image.Rect(0, 0, w, h))
	rows := make([]bool, w*h)
	for y := box.Min.Y; y < box.Max.Y; y++ {
		dilateLine(in, rows, y*w, 1, w, r, area.Min.X, area.Max.X)
	}
	out := make([]bool, w*h)
	for x := area.Min.X; x < area.Max.X; x++ {
		dilateLine(rows, out, x, w, h, r, area.Min.Y, area.Max.Y)
	}
	return out
}

// dilateLine sets dst[start+i*step] for i in [lo, hi) when any of
// src[start+j*step], |i-j| <= r, 0 <= j < n, is set: one row (step 1) or
// column (step w) of dilate, as a running count over a 2r+1 window.
func dilateLine(src, dst []bool, start, step, n, r, lo, hi int) {
	count := 0
	for i := lo - r; i < hi+r; i++ {
		if i >= 0 && i < n && src[start+i*step] {
			count++
		}
		if old := i - 2*r - 1; old >= 0 && old < n && src[start+old*step] {
			count--
		}
		if c := i - r; c >= lo && c < hi {
			dst[start+c*step] = count > 0
		}
	}
}

// boxRect is a normalized box in pixels of a w x h raster.
func boxRect(b core.Box, w, h int) image.Rectangle {
	x0, x1 := spanPx(b.X0, b.X1, w, 0)
	y0, y1 := spanPx(b.Y0, b.Y1, h, 0)
	return image.Rect(x0, y0, x1, y1)
}

// pixelAt is the index of the pixel of a w x h raster that holds a
// normalized point, or -1 outside it.
func pixelAt(u, v float64, w, h int) int {
	x, y := int(math.Floor(u*float64(w))), int(math.Floor(v*float64(h)))
	if x < 0 || y < 0 || x >= w || y >= h {
		return -1
	}
	return y*w + x
}

// spanPx is the pixel range [lo, hi) of a normalized span on an axis n
// pixels long, grown by pad pixels, within the axis.
func spanPx(a, b float64, n, pad int) (int, int) {
	lo := int(math.Floor(a*float64(n))) - pad
	hi := int(math.Ceil(b*float64(n))) + pad
	return min(max(lo, 0), n), min(max(hi, 0), n)
}
