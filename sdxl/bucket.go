package sdxl

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"paliprompt/core"
)

// bucket is one candidate canvas size.
type bucket struct{ W, H int }

// Size limits of a canvas, in pixels per side.
const (
	minSide = 256
	maxSide = 4096
)

// sideProblem says why n cannot be a canvas side, or "".
func sideProblem(n int) string {
	switch {
	case n < minSide || n > maxSide:
		return fmt.Sprintf("%d is outside %d..%d", n, minSide, maxSide)
	case n%8 != 0:
		return fmt.Sprintf("%d is not a multiple of 8 (SDXL's latent is 1/8 of the image)", n)
	}
	return ""
}

// parseBuckets reads the configured sizes; each bad one is a problem of
// sdxl.buckets.
func parseBuckets(list []string, p *core.Problems) []bucket {
	if len(list) == 0 {
		p.Add("buckets", "is empty: list sizes like \"1024x1024\"")
	}
	out := make([]bucket, 0, len(list))
	for _, s := range list {
		ws, hs, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "x")
		w, errW := strconv.Atoi(ws)
		h, errH := strconv.Atoi(hs)
		if !ok || errW != nil || errH != nil {
			p.Add("buckets", "%q is not WIDTHxHEIGHT", s)
			continue
		}
		bad := false
		for _, side := range []int{w, h} {
			if problem := sideProblem(side); problem != "" {
				p.Add("buckets", "%q: %s", s, problem)
				bad = true
			}
		}
		if !bad {
			out = append(out, bucket{w, h})
		}
	}
	return out
}

// nearestBucket picks the bucket whose aspect ratio is nearest the
// image's, in log scale (so 2:1 and 1:2 are equally far from 1:1); ties
// go to the earlier bucket.
func nearestBucket(buckets []bucket, w, h int) bucket {
	target := math.Log(float64(w) / float64(h))
	best, bestD := buckets[0], math.Inf(1)
	for _, b := range buckets {
		if d := math.Abs(math.Log(float64(b.W)/float64(b.H)) - target); d < bestD-1e-12 {
			best, bestD = b, d
		}
	}
	return best
}

// chooseBucket honours a forced size (both sides, or neither) or picks
// the nearest bucket.
func (c *Composer) chooseBucket(refW, refH int, req Request) (bucket, error) {
	switch {
	case req.Width == 0 && req.Height == 0:
		return nearestBucket(c.buckets, refW, refH), nil
	case req.Width == 0 || req.Height == 0:
		return bucket{}, core.Errorf(core.ErrBadRequest, "give both width and height to force a size (got %dx%d)", req.Width, req.Height)
	}
	for _, side := range []int{req.Width, req.Height} {
		if p := sideProblem(side); p != "" {
			return bucket{}, core.Errorf(core.ErrBadRequest, "forced size %dx%d: %s", req.Width, req.Height, p)
		}
	}
	return bucket{req.Width, req.Height}, nil
}
