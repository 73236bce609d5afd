package layouts

import (
	"fmt"
	"math"
	"strings"

	"paliprompt/core"
)

// Relation names.
const (
	LeftOf   = "left_of"
	RightOf  = "right_of"
	Above    = "above"
	Below    = "below"
	Overlaps = "overlaps"
	Contains = "contains"
)

// relations lists, for every pair of objects, how they sit relative to
// each other on the target canvas (placed boxes), with these thresholds
// from the Config:
//
//   - A left_of B: B's centre is more than RelationMargin (of the frame
//     width) right of A's, and their horizontal spans overlap by at most
//     RelationSpanOverlap of the narrower span. right_of is its mirror.
//   - A above B: the same vertically. below is its mirror.
//   - A contains B: at least ContainsMin of B's box lies inside A's, and
//     A's box is the larger.
//   - A overlaps B: they share at least OverlapMin of the smaller box and
//     neither contains the other.
//
// Each pair appears once, subject the lower index (the container for
// contains), with at most one horizontal, one vertical and one of
// contains/overlaps.
func (p *Planner) relations(objs []Object) []Relation {
	rels := []Relation{}
	names := displayNames(objs)
	add := func(a int, rel string, b int) {
		text := fmt.Sprintf("%s %s %s", names[a], strings.ReplaceAll(rel, "_", " "), names[b])
		rels = append(rels, Relation{Subject: a, Relation: rel, Object: b, Text: text})
	}
	for i := range objs {
		for j := i + 1; j < len(objs); j++ {
			a, b := objs[i].Placed, objs[j].Placed
			switch {
			case p.before(a.X0, a.X1, b.X0, b.X1):
				add(i, LeftOf, j)
			case p.before(b.X0, b.X1, a.X0, a.X1):
				add(i, RightOf, j)
			}
			switch {
			case p.before(a.Y0, a.Y1, b.Y0, b.Y1):
				add(i, Above, j)
			case p.before(b.Y0, b.Y1, a.Y0, a.Y1):
				add(i, Below, j)
			}
			switch {
			case p.contains(a, b):
				add(i, Contains, j)
			case p.contains(b, a):
				add(j, Contains, i)
			case p.overlaps(a, b):
				add(i, Overlaps, j)
			}
		}
	}
	return rels
}

// before reports whether span [a0, a1] lies before span [b0, b1] on one
// axis, by the RelationMargin and RelationSpanOverlap thresholds.
func (p *Planner) before(a0, a1, b0, b1 float64) bool {
	if (b0+b1)/2-(a0+a1)/2 <= p.cfg.RelationMargin {
		return false
	}
	overlap := math.Min(a1, b1) - math.Max(a0, b0)
	return overlap <= p.cfg.RelationSpanOverlap*math.Min(a1-a0, b1-b0)
}

// contains reports whether box a contains box b.
func (p *Planner) contains(a, b core.Box) bool {
	return a.Area() > b.Area() && a.Intersect(b).Area() >= p.cfg.ContainsMin*b.Area()
}

// overlaps reports whether boxes a and b overlap enough to say so.
func (p *Planner) overlaps(a, b core.Box) bool {
	in := a.Intersect(b).Area()
	return in > 0 && in >= p.cfg.OverlapMin*math.Min(a.Area(), b.Area())
}

// displayNames names objects for relation texts: the label, with "#index"
// where several objects share it.
func displayNames(objs []Object) []string {
	count := map[string]int{}
	for _, o := range objs {
		count[strings.ToLower(o.Label)]++
	}
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = o.Label
		if count[strings.ToLower(o.Label)] > 1 {
			names[i] = fmt.Sprintf("%s #%d", o.Label, i)
		}
	}
	return names
}
