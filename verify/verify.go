// Package verify checks a generated image against the plan it was made
// from: were the planned objects generated, where they were planned?
//
// Input: a Plan (the placed objects of a layout and, when the plan had
// them, their region masks) and what a grounder found on the generated
// image (a core.Result of detect, or segment, for the plan's labels).
// Output: a Report: per planned object whether it was found, the IoU of
// its box with the planned box, the share of it inside its planned
// region, its quadrant; the extra objects of a planned label; a score in
// [0, 1], pass or fail against the configured thresholds, and what to do
// next, as words and as data. Everything is compared in normalized
// coordinates, so the generated image may have another size or aspect
// ratio than the plan's canvas. Pure functions: no models, no NATS.
package verify

import (
	"cmp"
	"fmt"
	"image"
	"math"
	"slices"
	"strings"

	"paliprompt/core"
	"paliprompt/layouts"
)

// Config sets the pass thresholds. It is the [verify] table of
// config.toml; DefaultConfig gives the defaults.
type Config struct {
	// MinIoU is the least IoU of a found object's box with its planned
	// box for it to count as in place.
	MinIoU float64 `toml:"min_iou"`
	// MinInside is the least share of a found object inside its planned
	// region (mask, else box) for it to count as in place.
	MinInside float64 `toml:"min_inside"`
	// GoodIoU is the IoU that earns an object its full box score: a
	// generated object rarely fits its box tighter.
	GoodIoU float64 `toml:"good_iou"`
	// PassScore is the least overall score of an image that passes (every
	// object must also be found and in place, and none be extra).
	PassScore float64 `toml:"pass_score"`
	// WeightFactor is how much raise_weight advice raises a region's
	// weight, up to MaxWeight.
	WeightFactor float64 `toml:"weight_factor"`
	// MaxWeight is the highest weight raise_weight advice suggests.
	MaxWeight float64 `toml:"max_weight"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{MinIoU: 0.3, MinInside: 0.5, GoodIoU: 0.6, PassScore: 0.6, WeightFactor: 1.5, MaxWeight: 3}
}

// Validate reports every invalid field under its [verify] key.
func (c Config) Validate() error {
	p := core.NewProblems("verify")
	for _, f := range []struct {
		key string
		v   float64
	}{{"min_iou", c.MinIoU}, {"min_inside", c.MinInside}, {"pass_score", c.PassScore}} {
		p.FloatRange(f.key, f.v, 0, 1)
	}
	if !(c.GoodIoU > 0 && c.GoodIoU <= 1) {
		p.Add("good_iou", "%v is out of range: use more than 0 and at most 1", c.GoodIoU)
	}
	if !(c.WeightFactor > 1) {
		p.Add("weight_factor", "%v does not raise a weight: use more than 1", c.WeightFactor)
	}
	if !(c.MaxWeight > 0) {
		p.Add("max_weight", "%v is not a weight: use more than 0", c.MaxWeight)
	}
	return p.Err()
}

// Plan is what a generated image is checked against.
type Plan struct {
	Objects []PlannedObject
}

// PlannedObject is one object of the plan, on the target canvas.
type PlannedObject struct {
	// Index is the object's index in the layout (its region's).
	Index int
	Label string
	// Box is where the object was placed, normalized.
	Box core.Box
	// Region is its region mask (white where the region applies), any
	// size; nil: the region is the box.
	Region *image.Gray
	// Weight is the region's weight in the plan; 0: unknown.
	Weight float64
	// Segmented: the object's region came from a segmentation mask, so
	// the check segments too.
	Segmented bool
}

// PlannedRegion is what the sdxl plan says of an object's region.
type PlannedRegion struct {
	// Mask is the region mask; nil: the region is the planned box.
	Mask *image.Gray
	// Weight is the region's weight in the plan; 0: unknown.
	Weight float64
}

// PlanOf reads the plan of a layout: the placed objects, with their
// regions in the sdxl plan by object index (regions may be nil).
func PlanOf(l layouts.Layout, regions map[int]PlannedRegion) Plan {
	var p Plan
	for _, o := range l.Objects {
		r := regions[o.Index]
		p.Objects = append(p.Objects, PlannedObject{Index: o.Index, Label: o.Label, Box: o.Placed,
			Region: r.Mask, Weight: r.Weight, Segmented: o.HasMask})
	}
	return p
}

// Labels are the distinct labels the plan's objects have, in plan order:
// what the grounder is asked to find.
func (p Plan) Labels() []string {
	var out []string
	for _, o := range p.Objects {
		if !slices.ContainsFunc(out, func(s string) bool { return strings.EqualFold(s, o.Label) }) {
			out = append(out, o.Label)
		}
	}
	return out
}

// Segmented reports whether any planned region came from a segmentation.
func (p Plan) Segmented() bool {
	return slices.ContainsFunc(p.Objects, func(o PlannedObject) bool { return o.Segmented })
}

// Report is the verdict on one generated image.
type Report struct {
	// Pass: every object found in place, none extra, and the score at
	// least the pass score.
	Pass bool `json:"pass"`
	// Score is the mean of the objects' scores, less 0.1 per extra
	// object, in [0, 1].
	Score   float64       `json:"score"`
	Objects []ObjectCheck `json:"objects"`
	// Extra are found objects of a planned label that match no planned
	// object (a duplicate, or one in the wrong place twice over).
	Extra []Extra `json:"extra"`
	// Advice is what to do next, nearest cause first; empty on a pass.
	Advice []Advice `json:"advice"`
	// Summary says it in one line.
	Summary string `json:"summary"`
}

// ObjectCheck is one planned object's result.
type ObjectCheck struct {
	Index int    `json:"index"`
	Label string `json:"label"`
	Found bool   `json:"found"`
	// Box is the matched found object's box, normalized to the generated
	// image; nil when not found.
	Box *core.Box `json:"box,omitempty"`
	// IoU of Box with the planned box; Inside is the share of the found
	// object (its mask, else its box) inside the planned region.
	IoU    float64 `json:"iou"`
	Inside float64 `json:"inside"`
	// Quadrant is the planned quadrant, FoundQuadrant the found one.
	Quadrant      string  `json:"quadrant"`
	FoundQuadrant string  `json:"found_quadrant,omitempty"`
	InPlace       bool    `json:"in_place"`
	Score         float64 `json:"score"`
}

// Extra is a found object no planned object matched.
type Extra struct {
	Label string   `json:"label"`
	Box   core.Box `json:"box"`
}

// The advice actions: data an app can act on without reading the words.
const (
	// ActionRetrySeed: generate again with another seed.
	ActionRetrySeed = "retry_seed"
	// ActionRaiseWeight: raise the weight of Region (its object is missing
	// or out of place).
	ActionRaiseWeight = "raise_weight"
	// ActionObjectMissing: Label was not generated.
	ActionObjectMissing = "object_missing"
	// ActionObjectMisplaced: Label was generated away from its region.
	ActionObjectMisplaced = "object_misplaced"
	// ActionExtraObject: Label was generated once more than planned.
	ActionExtraObject = "extra_object"
)

// Advice is one thing to try.
type Advice struct {
	Action string `json:"action"`
	Label  string `json:"label,omitempty"`
	// Region is the plan region (object index) concerned; -1: none.
	Region int    `json:"region"`
	Text   string `json:"text"`
	// Weight is, for raise_weight, the weight to give the region next
	// (sdxl.regions [{"object": "<region>", "weight": ...}] of a layout or
	// generate request); absent when the plan did not say its weight.
	Weight float64 `json:"weight,omitempty"`
}

// Check compares what was found on the generated image with the plan.
func Check(cfg Config, plan Plan, found core.Result) Report {
	if found.Width <= 0 || found.Height <= 0 {
		return Report{Summary: "the generated image has no size", Advice: []Advice{{Action: ActionRetrySeed, Region: -1, Text: "generate the image again"}}}
	}
	cands := candidates(found)
	matched := match(plan, cands)
	r := Report{Objects: []ObjectCheck{}, Extra: []Extra{}, Advice: []Advice{}}
	for i, o := range plan.Objects {
		r.Objects = append(r.Objects, checkObject(cfg, o, cands, matched[i]))
	}
	used := map[int]bool{}
	for _, k := range matched {
		used[k] = true
	}
	for k, c := range cands {
		if !used[k] && slices.ContainsFunc(plan.Objects, func(o PlannedObject) bool { return strings.EqualFold(o.Label, c.label) }) {
			r.Extra = append(r.Extra, Extra{Label: c.label, Box: c.box})
		}
	}
	r.score(cfg)
	r.advise(cfg, plan)
	return r
}

// raiseWeight is the advice to raise an object's region weight by the
// configured factor, up to max_weight; none when it is there already.
func raiseWeight(cfg Config, o PlannedObject) (Advice, bool) {
	a := Advice{Action: ActionRaiseWeight, Label: o.Label, Region: o.Index,
		Text: fmt.Sprintf("raise the weight of region %d (%s)", o.Index, o.Label)}
	if o.Weight <= 0 {
		return a, true
	}
	next := core.Round(min(o.Weight*cfg.WeightFactor, cfg.MaxWeight), 3)
	if next <= o.Weight {
		return Advice{}, false
	}
	a.Weight = next
	a.Text = fmt.Sprintf("raise the weight of region %d (%s) from %g to %g", o.Index, o.Label, o.Weight, next)
	return a, true
}

// candidate is one found object, normalized.
type candidate struct {
	label string
	box   core.Box
	mask  *core.Mask
	w, h  int
}

// candidates are the found objects; a detection and a segmentation of
// one object (same label, IoU above 0.7) count once, the segmentation
// kept (it has the shape).
func candidates(res core.Result) []candidate {
	var out []candidate
	for _, o := range res.Objects {
		c := candidate{label: o.Label, box: o.Box.Scale(1/float64(res.Width), 1/float64(res.Height)), mask: o.Mask, w: res.Width, h: res.Height}
		dup := slices.IndexFunc(out, func(d candidate) bool { return strings.EqualFold(d.label, c.label) && d.box.IoU(c.box) > 0.7 })
		switch {
		case dup < 0:
			out = append(out, c)
		case c.mask != nil && out[dup].mask == nil:
			out[dup] = c
		}
	}
	return out
}

// match pairs planned objects with found ones one to one by label:
// highest IoU first, then (for objects that do not overlap their plan)
// nearest centres first, so that an object generated in the wrong place
// is found out of place, not missing. matched[i] is the candidate of
// planned object i, or -1.
func match(plan Plan, cands []candidate) []int {
	type pair struct {
		obj, cand  int
		iou, apart float64
	}
	var pairs []pair
	for i, o := range plan.Objects {
		for k, c := range cands {
			if strings.EqualFold(o.Label, c.label) {
				ox, oy := o.Box.Center()
				cx, cy := c.box.Center()
				pairs = append(pairs, pair{i, k, o.Box.IoU(c.box), math.Hypot(ox-cx, oy-cy)})
			}
		}
	}
	slices.SortStableFunc(pairs, func(a, b pair) int { return cmp.Or(cmp.Compare(b.iou, a.iou), cmp.Compare(a.apart, b.apart)) })
	matched := make([]int, len(plan.Objects))
	for i := range matched {
		matched[i] = -1
	}
	taken := map[int]bool{}
	for _, p := range pairs {
		if matched[p.obj] < 0 && !taken[p.cand] {
			matched[p.obj], taken[p.cand] = p.cand, true
		}
	}
	return matched
}

func checkObject(cfg Config, o PlannedObject, cands []candidate, k int) ObjectCheck {
	cx, cy := o.Box.Center()
	ch := ObjectCheck{Index: o.Index, Label: o.Label, Quadrant: layouts.QuadrantAt(cx, cy)}
	if k < 0 {
		return ch
	}
	c := cands[k]
	box := c.box
	fx, fy := box.Center()
	ch.Found, ch.Box = true, &box
	ch.IoU = core.Round(o.Box.IoU(box), 4)
	ch.Inside = core.Round(inside(o, c), 4)
	ch.FoundQuadrant = layouts.QuadrantAt(fx, fy)
	ch.InPlace = ch.FoundQuadrant == ch.Quadrant && ch.IoU >= cfg.MinIoU && ch.Inside >= cfg.MinInside
	quadrant := 0.0
	if ch.FoundQuadrant == ch.Quadrant {
		quadrant = 1
	}
	ch.Score = core.Round(0.5*min(ch.IoU/cfg.GoodIoU, 1)+0.3*ch.Inside+0.2*quadrant, 4)
	return ch
}

// inside is the share of a found object inside the planned region: of
// its mask's pixels when it has a mask, else of its box, sampled on a
// grid; the region is the planned mask when there is one, else the box.
func inside(o PlannedObject, c candidate) float64 {
	const grid = 64 // samples per side of the found object's box
	in, all := 0, 0
	for j := range grid {
		for i := range grid {
			u := c.box.X0 + (float64(i)+0.5)/grid*c.box.W()
			v := c.box.Y0 + (float64(j)+0.5)/grid*c.box.H()
			if c.mask != nil && !c.mask.Inside(int(u*float64(c.w)), int(v*float64(c.h))) {
				continue
			}
			all++
			if inRegion(o, u, v) {
				in++
			}
		}
	}
	if all == 0 {
		return 0
	}
	return float64(in) / float64(all)
}

func inRegion(o PlannedObject, u, v float64) bool {
	if o.Region == nil {
		return u >= o.Box.X0 && u < o.Box.X1 && v >= o.Box.Y0 && v < o.Box.Y1
	}
	b := o.Region.Bounds()
	x := b.Min.X + min(max(int(u*float64(b.Dx())), 0), b.Dx()-1)
	y := b.Min.Y + min(max(int(v*float64(b.Dy())), 0), b.Dy()-1)
	return o.Region.GrayAt(x, y).Y >= 128
}

func (r *Report) score(cfg Config) {
	sum := 0.0
	all := true
	for _, o := range r.Objects {
		sum += o.Score
		all = all && o.Found && o.InPlace
	}
	if len(r.Objects) > 0 {
		sum /= float64(len(r.Objects))
	}
	r.Score = core.Round(min(max(sum-0.1*float64(len(r.Extra)), 0), 1), 4)
	r.Pass = all && len(r.Extra) == 0 && r.Score >= cfg.PassScore && len(r.Objects) > 0
}

// advise says what to try: for each missing or misplaced object, raise
// its region's weight; for extra objects, name them; then a new seed.
// r.Objects are plan.Objects' checks, in order.
func (r *Report) advise(cfg Config, plan Plan) {
	var missing, misplaced []string
	for i, o := range r.Objects {
		switch {
		case !o.Found:
			missing = append(missing, o.Label)
			r.Advice = append(r.Advice, Advice{Action: ActionObjectMissing, Label: o.Label, Region: o.Index,
				Text: fmt.Sprintf("%s (region %d) was not generated", o.Label, o.Index)})
		case !o.InPlace:
			misplaced = append(misplaced, o.Label)
			r.Advice = append(r.Advice, Advice{Action: ActionObjectMisplaced, Label: o.Label, Region: o.Index,
				Text: fmt.Sprintf("%s was generated in the %s, planned in the %s (IoU %.2f, %.0f%% inside its region)",
					o.Label, o.FoundQuadrant, o.Quadrant, o.IoU, 100*o.Inside)})
		default:
			continue
		}
		if a, ok := raiseWeight(cfg, plan.Objects[i]); ok {
			r.Advice = append(r.Advice, a)
		}
	}
	for _, e := range r.Extra {
		r.Advice = append(r.Advice, Advice{Action: ActionExtraObject, Label: e.Label, Region: -1, Text: fmt.Sprintf("one %s more than planned", e.Label)})
	}
	if r.Pass {
		r.Advice = []Advice{}
		r.Summary = fmt.Sprintf("pass (score %.2f): every planned object is where it was planned", r.Score)
		return
	}
	r.Advice = append(r.Advice, Advice{Action: ActionRetrySeed, Region: -1, Text: "generate again with another seed"})
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "missing: "+strings.Join(missing, ", "))
	}
	if len(misplaced) > 0 {
		parts = append(parts, "misplaced: "+strings.Join(misplaced, ", "))
	}
	if len(r.Extra) > 0 {
		parts = append(parts, fmt.Sprintf("%d extra", len(r.Extra)))
	}
	if len(parts) == 0 {
		parts = append(parts, "objects in place but the score is low")
	}
	r.Summary = fmt.Sprintf("fail (score %.2f): %s", r.Score, strings.Join(parts, "; "))
}
