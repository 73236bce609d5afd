package layouts

import (
	"math"

	"paliprompt/core"
)

// Layout is a grounded image turned into layout constraints for the
// target canvas: normalized boxes, quadrants, the 3x3 grid in Omost's
// words, depth order, relations and a sentence per object. It is the
// input of the sdxl stage and part of the plugin's reply.
type Layout struct {
	// Width and Height of the reference image in pixels.
	Width   int    `json:"width"`
	Height  int    `json:"height"`
	Caption string `json:"caption"`
	// Answers are the grounder's free-form answers (style questions).
	Answers []Answer `json:"answers,omitempty"`
	// Mirrored is set when the whole layout was flipped horizontally.
	Mirrored bool `json:"mirrored,omitempty"`
	// Objects in the grounder's order, after clean-up.
	Objects   []Object   `json:"objects"`
	Relations []Relation `json:"relations"`
	// Dropped lists every object (or mask) the clean-up left out, and why.
	Dropped []Dropped `json:"dropped,omitempty"`
	// Conflicts lists placement requests that could not be honoured as
	// asked: unknown labels, two objects forced into one place, ...
	Conflicts []Conflict `json:"conflicts,omitempty"`
}

// Answer is one free-form PaliGemma answer, passed through from the
// grounding result.
type Answer struct {
	Prefix string `json:"prefix"`
	Text   string `json:"text"`
}

// Object is one object of the layout. The geometry fields (quadrant, cell,
// Omost place, area, depth, sentence) describe its place on the target
// canvas, Placed: the same as the reference unless a placement moved it
// or the layout was mirrored.
type Object struct {
	// Index is the object's position in Layout.Objects; placements name
	// objects by this index (or by label).
	Index int    `json:"index"`
	Label string `json:"label"`
	// Source is the grounding task: "detect" or "segment".
	Source core.TaskName `json:"source"`
	// SourceIndex is the object's position in the grounding result.
	SourceIndex int `json:"source_index"`
	// BoxPx is the box in pixels of the reference image, clamped to it.
	BoxPx core.Box `json:"box_px"`
	// Box is BoxPx normalized to the reference image.
	Box core.Box `json:"box"`
	// Placed is the box on the target canvas, normalized.
	Placed  core.Box `json:"placed"`
	Moved   bool     `json:"moved,omitempty"`
	Clamped bool     `json:"clamped,omitempty"`
	HasMask bool     `json:"has_mask"`

	Quadrant       string         `json:"quadrant"`
	QuadrantShares QuadrantShares `json:"quadrant_shares"`
	Cell           Cell           `json:"cell"`
	Omost          OmostPlace     `json:"omost"`
	// Area is the fraction of the frame the object covers: its mask's when
	// it has one, else its box's.
	Area float64 `json:"area"`
	// Aspect is width / height of the box in reference pixels.
	Aspect float64 `json:"aspect"`
	// Depth is the object's rank from the viewer, 1 = nearest (assignDepth says how).
	Depth int `json:"depth"`
	// Location is the phrase the sentence uses ("in the upper-left quadrant").
	Location string `json:"location"`
	// Sentence describes the object for prompts.
	Sentence string `json:"sentence"`

	mask     *core.Mask
	toCanvas transform // reference (normalized) -> target canvas (normalized)
	refW     int
	refH     int
}

// Relation says how two objects of the layout sit relative to each other
// on the target canvas: Subject <Relation> Object, by index.
type Relation struct {
	Subject  int    `json:"subject"`
	Relation string `json:"relation"`
	Object   int    `json:"object"`
	// Text reads the relation out: "cat left of dog".
	Text string `json:"text"`
}

// Dropped is an object (What "object") or a mask (What "mask") of the
// grounding result that the layout left out.
type Dropped struct {
	SourceIndex int    `json:"source_index"`
	Label       string `json:"label"`
	What        string `json:"what"`
	Reason      string `json:"reason"`
}

// Conflict is a placement request that was not honoured as asked.
type Conflict struct {
	// Key is the placement key as written (label or index), or the keys
	// of the objects involved.
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// Planner builds layouts. It holds only its validated Config and is safe
// for concurrent use.
type Planner struct {
	cfg Config
}

// New returns a Planner for a validated cfg.
func New(cfg Config) (*Planner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Planner{cfg: cfg}, nil
}

// Config returns the planner's configuration.
func (p *Planner) Config() Config { return p.cfg }

// Build lays out a grounding result on the target canvas, applying the
// placement (moves and mirroring). It fails only on input that cannot be
// laid out (no image size, a placement box outside the frame), with an
// error wrapping core.ErrBadRequest; everything it leaves out is reported in the
// Layout.
func (p *Planner) Build(res core.Result, place Placement) (Layout, error) {
	if res.Width <= 0 || res.Height <= 0 {
		return Layout{}, core.Errorf(core.ErrBadRequest, "image size %dx%d (need width and height > 0)", res.Width, res.Height)
	}
	if err := place.validate(); err != nil {
		return Layout{}, err
	}
	l := Layout{Width: res.Width, Height: res.Height, Caption: res.Caption, Mirrored: place.Mirror}
	for _, a := range res.Answers {
		l.Answers = append(l.Answers, Answer{Prefix: a.Prefix, Text: a.Text})
	}
	l.Objects, l.Dropped = p.cleanUp(res)
	l.Conflicts = p.applyPlacement(l.Objects, place)
	for i := range l.Objects {
		p.describeGeometry(&l.Objects[i])
	}
	assignDepth(l.Objects, p.cfg.BackdropArea)
	for i := range l.Objects {
		l.Objects[i].Location, l.Objects[i].Sentence = p.sentence(l.Objects[i])
	}
	l.Relations = p.relations(l.Objects)
	return l, nil
}

// describeGeometry fills an object's quadrant, grid and area fields from
// its placed box (and mask).
func (p *Planner) describeGeometry(o *Object) {
	b := o.Placed
	cx, cy := b.Center()
	o.Quadrant = QuadrantAt(cx, cy)
	o.Cell = cellOf(cx, cy)
	o.Omost = omostPlace(b)
	o.Area = core.Round(b.Area(), 4)
	o.QuadrantShares = boxShares(b).normalize()
	if o.BoxPx.H() > 0 {
		o.Aspect = core.Round(o.BoxPx.W()/o.BoxPx.H(), 4)
	}
	if o.mask != nil {
		area, shares := maskGeometry(o)
		o.Area = core.Round(area, 4)
		o.QuadrantShares = shares.normalize()
	}
}

// maskSamples bounds the mask pixels visited for quadrant shares: large
// masks are visited on a regular grid with this many points at most.
const maskSamples = 1 << 16

// maskGeometry measures an object's mask on the target canvas: the
// fraction of the frame it covers and its share in each quadrant.
func maskGeometry(o *Object) (float64, QuadrantShares) {
	m := o.mask
	n := m.Rect.Dx() * m.Rect.Dy()
	stride := max(1, int(math.Ceil(math.Sqrt(float64(n)/maskSamples))))
	var shares QuadrantShares
	w, h := float64(o.refW), float64(o.refH)
	for y := m.Rect.Min.Y; y < m.Rect.Max.Y; y += stride {
		for x := m.Rect.Min.X; x < m.Rect.Max.X; x += stride {
			if !m.Inside(x, y) {
				continue
			}
			u, v := o.toCanvas.apply((float64(x)+0.5)/w, (float64(y)+0.5)/h)
			shares.add(u, v, 1)
		}
	}
	area := float64(m.Area()) / (w * h) * o.toCanvas.scaleArea()
	if _, most := shares.dominant(); most == 0 { // an empty mask: fall back to the box
		shares = boxShares(o.Placed)
	}
	return math.Min(area, 1), shares
}

// frontShare is how much of an object's box must lie inside a larger
// object's box for it to count as in front of that object.
const frontShare = 0.5

// assignDepth ranks objects from the viewer, 1 = nearest.
//
// The heuristic, for a single photo without depth data:
//
//  1. An object whose box lies at least half inside a larger object's box
//     is in front of it (a cat on a sofa, a face on a person): the larger
//     one is what it stands on or in.
//  2. Otherwise an object is nearer the larger it is and the lower its
//     bottom edge sits on the canvas (ground-plane perspective):
//     score = 0.5*sqrt(area) + 0.5*bottom, both 0..1.
//  3. Objects covering at least backdrop of the frame (sky, a wall, a
//     beach) are the backdrop: score -area, behind everything else.
//
// Rule 1 orders overlapping pairs; among the objects it leaves free, the
// highest score goes first; ties keep the grounder's order. Only the
// order of overlapping objects changes masks (the sdxl depth policy).
func assignDepth(objs []Object, backdrop float64) {
	score := make([]float64, len(objs))
	for i, o := range objs {
		score[i] = 0.5*math.Sqrt(o.Area) + 0.5*o.Placed.Y1
		if o.Area >= backdrop {
			score[i] = -o.Area
		}
	}
	// behind[j] counts the objects that must come before j.
	behind := make([]int, len(objs))
	inFront := func(a, b int) bool { // a is on or in b
		pa, pb := objs[a].Placed, objs[b].Placed
		return pa.Area() < pb.Area() && pa.Intersect(pb).Area() >= frontShare*pa.Area()
	}
	for a := range objs {
		for b := range objs {
			if a != b && inFront(a, b) {
				behind[b]++
			}
		}
	}
	placed := make([]bool, len(objs))
	for rank := 1; rank <= len(objs); rank++ {
		next := -1
		for i := range objs {
			if !placed[i] && behind[i] == 0 && (next < 0 || score[i] > score[next]) {
				next = i
			}
		}
		placed[next] = true
		objs[next].Depth = rank
		for b := range objs {
			if !placed[b] && inFront(next, b) {
				behind[b]--
			}
		}
	}
}
