package layouts

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"paliprompt/core"
)

// Where a named place puts an object:
//
//   - a quadrant ("top-left", "upper right", "bottom-left quadrant", ...):
//     the object is scaled, keeping its aspect ratio, to the largest size
//     that fits the quadrant, and centred in it;
//   - an Omost location ("on the right", "in the center", "on the
//     top-left", ...; also bare "left", "right", "top", "bottom",
//     "center"): the object keeps its size and its centre moves to the
//     location (15, 45 or 75 of Omost's 90), shifted to stay in the frame;
//   - a box [x0, y0, x1, y1]: the object is scaled, keeping its aspect
//     ratio, to fit the box, and centred in it.
//
// Aspect ratios are kept in frame fractions: the target canvas is taken
// to have the reference's proportions (the sdxl stage picks the bucket
// nearest to them).

// PlaceNames lists the canonical place names a placement accepts.
func PlaceNames() []string {
	names := []string{TopLeft, TopRight, BottomLeft, BottomRight}
	for _, row := range OmostLocations {
		names = append(names, row[:]...)
	}
	return names
}

// bareLocations are short forms of Omost's edge and centre locations.
var bareLocations = map[string]string{
	"left": "on the left", "right": "on the right", "top": "on the top", "bottom": "on the bottom",
	"center": "in the center", "centre": "in the center", "middle": "in the center",
}

// canonicalPlace maps a place as a user writes it to its canonical name.
func canonicalPlace(name string) (string, bool) {
	s := strings.ToLower(strings.Join(strings.Fields(name), " "))
	s = strings.ReplaceAll(s, "centre", "center")
	for _, row := range OmostLocations {
		for _, loc := range row {
			if s == loc {
				return loc, true
			}
		}
	}
	if loc, ok := bareLocations[s]; ok {
		return loc, true
	}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "in "), "the ")
	s = strings.TrimSuffix(s, " quadrant")
	s = strings.NewReplacer("upper", "top", "lower", "bottom", " ", "-").Replace(s)
	for _, q := range Quadrants {
		if s == q.Name {
			return q.Name, true
		}
	}
	return "", false
}

// omostPoint is the centre of an Omost location, normalized.
func omostPoint(loc string) (x, y float64, ok bool) {
	for r, row := range OmostLocations {
		for c, name := range row {
			if name == loc {
				return (15 + 30*float64(c)) / 90, (15 + 30*float64(r)) / 90, true
			}
		}
	}
	return 0, 0, false
}

// fitInto scales b, keeping its aspect ratio, to the largest box inside
// r, centred in r.
func fitInto(b, r core.Box) core.Box {
	s := math.Min(r.W()/b.W(), r.H()/b.H())
	w, h := b.W()*s, b.H()*s
	cx, cy := r.Center()
	return core.Box{X0: cx - w/2, Y0: cy - h/2, X1: cx + w/2, Y1: cy + h/2}
}

// moveCenter moves b's centre to (x, y), shifted to stay in the frame.
func moveCenter(b core.Box, x, y float64) core.Box {
	w, h := b.W(), b.H()
	x0 := math.Min(math.Max(x-w/2, 0), 1-w)
	y0 := math.Min(math.Max(y-h/2, 0), 1-h)
	return core.Box{X0: x0, Y0: y0, X1: x0 + w, Y1: y0 + h}
}

// target computes where a move puts a box.
func target(b core.Box, m Move) core.Box {
	if m.Box != nil {
		return fitInto(b, *m.Box)
	}
	if x, y, ok := omostPoint(m.Place); ok {
		return moveCenter(b, x, y)
	}
	for _, q := range Quadrants {
		if q.Name == m.Place {
			return fitInto(b, q.Box)
		}
	}
	return b // unreachable for validated moves
}

// forcedOverlap is the IoU above which two moved objects count as forced
// into one place.
const forcedOverlap = 0.5

// applyPlacement mirrors and moves objects as asked, and reports every
// request it could not honour as asked.
func (p *Planner) applyPlacement(objs []Object, place Placement) []Conflict {
	if place.Mirror {
		for i := range objs {
			objs[i].Placed = objs[i].Box.Mirror()
			objs[i].toCanvas = transform{From: objs[i].Box, To: objs[i].Placed, Flip: true}
		}
	}
	var conflicts []Conflict
	moveOf := map[int]Move{}
	for _, m := range place.Moves {
		idx, problem := resolveKey(objs, m.Key)
		if problem != "" {
			conflicts = append(conflicts, Conflict{Key: m.Key, Reason: problem})
			if idx < 0 {
				continue
			}
		}
		if prev, twice := moveOf[idx]; twice {
			conflicts = append(conflicts, Conflict{Key: m.Key, Reason: fmt.Sprintf(
				"object %d (%s) is placed twice (%s, then %s); the later place wins", idx, objs[idx].Label, prev.where(), m.where())})
		}
		moveOf[idx] = m
	}
	moved := make([]int, 0, len(moveOf))
	for idx, m := range moveOf {
		objs[idx].Placed = target(objs[idx].Placed, m)
		objs[idx].toCanvas.To = objs[idx].Placed
		objs[idx].Moved = true
		moved = append(moved, idx)
	}
	sort.Ints(moved)
	return append(conflicts, forcedTogether(objs, moved, moveOf)...)
}

// resolveKey finds the object a placement key names. It returns the
// index (-1 when none) and a problem to report ("" when none).
func resolveKey(objs []Object, key string) (int, string) {
	if n, err := strconv.Atoi(key); err == nil {
		if n < 0 || n >= len(objs) {
			return -1, fmt.Sprintf("no object with index %d (the layout has %d objects)", n, len(objs))
		}
		return n, ""
	}
	var matches []int
	for i, o := range objs {
		if sameLabel(o.Label, key) {
			matches = append(matches, i)
		}
	}
	switch len(matches) {
	case 0:
		return -1, fmt.Sprintf("no object labelled %q (labels: %s)", key, strings.Join(labels(objs), ", "))
	case 1:
		return matches[0], ""
	}
	return matches[0], fmt.Sprintf("label %q matches objects %s; moved object %d, name the others by index to move them",
		key, joinInts(matches), matches[0])
}

// forcedTogether reports moved objects put in one place.
func forcedTogether(objs []Object, moved []int, moveOf map[int]Move) []Conflict {
	var out []Conflict
	for a := 0; a < len(moved); a++ {
		for b := a + 1; b < len(moved); b++ {
			i, j := moved[a], moved[b]
			iou := objs[i].Placed.IoU(objs[j].Placed)
			if iou <= forcedOverlap {
				continue
			}
			out = append(out, Conflict{
				Key: moveOf[i].Key + ", " + moveOf[j].Key,
				Reason: fmt.Sprintf("objects %d (%s) and %d (%s) are forced into one place (%s, %s; IoU %.2f); both kept, their masks overlap",
					i, objs[i].Label, j, objs[j].Label, moveOf[i].where(), moveOf[j].where(), iou),
			})
		}
	}
	return out
}

func labels(objs []Object) []string {
	if len(objs) == 0 {
		return []string{"none"}
	}
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Label
	}
	return out
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}
