package layouts

import (
	"fmt"
	"sort"
	"strings"

	"paliprompt/core"
)

// cleanUp turns the grounder's objects into layout objects: boxes are
// clamped to the image, degenerate ones dropped, same-label duplicates
// merged and the count capped, largest first. Every object or mask left
// out is returned in dropped with the reason.
func (p *Planner) cleanUp(res core.Result) (kept []Object, dropped []Dropped) {
	w, h := float64(res.Width), float64(res.Height)
	for i, g := range res.Objects {
		o, reason := p.fromGrounding(i, g, w, h)
		if reason != "" {
			dropped = append(dropped, Dropped{SourceIndex: i, Label: g.Label, What: "object", Reason: reason})
			continue
		}
		if g.Mask != nil && o.mask == nil {
			dropped = append(dropped, Dropped{SourceIndex: i, Label: g.Label, What: "mask", Reason: maskProblem(g.Mask)})
		}
		o.refW, o.refH = res.Width, res.Height
		kept = append(kept, o)
	}
	kept, merged := p.mergeDuplicates(kept)
	dropped = append(dropped, merged...)
	kept, capped := p.capCount(kept)
	dropped = append(dropped, capped...)
	sort.SliceStable(dropped, func(a, b int) bool { return dropped[a].SourceIndex < dropped[b].SourceIndex })
	for i := range kept {
		kept[i].Index = i
	}
	return kept, dropped
}

// fromGrounding converts one grounded object, or says why it is dropped.
func (p *Planner) fromGrounding(i int, g core.Object, w, h float64) (Object, string) {
	label := strings.Join(strings.Fields(g.Label), " ")
	raw := core.Box{X0: g.Box.X0, Y0: g.Box.Y0, X1: g.Box.X1, Y1: g.Box.Y1}
	if label == "" {
		return Object{}, "missing label"
	}
	if !raw.Finite() {
		return Object{}, fmt.Sprintf("box %v has a coordinate that is not a finite number", raw)
	}
	px := raw.Clamp(w, h)
	if px.W() < p.cfg.MinSizePx || px.H() < p.cfg.MinSizePx {
		return Object{}, fmt.Sprintf("degenerate box: %.1f x %.1f px inside the image, below min_size_px %.1f",
			max(px.W(), 0), max(px.H(), 0), p.cfg.MinSizePx)
	}
	norm := px.Scale(1/w, 1/h)
	o := Object{
		Label: label, Source: g.Source, SourceIndex: i,
		BoxPx: px, Box: norm, Placed: norm, Clamped: px != raw,
		toCanvas: transform{From: norm, To: norm},
	}
	if g.Mask != nil && maskProblem(g.Mask) == "" {
		o.mask, o.HasMask = g.Mask, true
	}
	return o, ""
}

// maskProblem says why a mask cannot be used, or "".
func maskProblem(m *core.Mask) string {
	n := m.Rect.Dx() * m.Rect.Dy()
	switch {
	case m.Rect.Empty():
		return fmt.Sprintf("mask rectangle %v is empty", m.Rect)
	case len(m.Values) != n:
		return fmt.Sprintf("mask has %d values for a %dx%d rectangle", len(m.Values), m.Rect.Dx(), m.Rect.Dy())
	}
	return ""
}

// sameLabel compares labels ignoring case.
func sameLabel(a, b string) bool { return strings.EqualFold(a, b) }

// mergeDuplicates merges objects with the same label whose boxes overlap
// above MergeIoU. Of a pair, the one with a mask is kept (a segmentation
// of what a detection found), else the earlier one; it keeps the earlier
// one's position. Each merged object is reported with the object it
// finally merged into.
func (p *Planner) mergeDuplicates(objs []Object) (kept []Object, dropped []Dropped) {
	type merge struct {
		loser Object
		into  int // source index of the winner at the time
		iou   float64
	}
	var merges []merge
	for _, o := range objs {
		dup := -1
		for k, q := range kept {
			if sameLabel(o.Label, q.Label) && o.Box.IoU(q.Box) > p.cfg.MergeIoU {
				dup = k
				break
			}
		}
		if dup < 0 {
			kept = append(kept, o)
			continue
		}
		loser, winner := o, kept[dup]
		if o.HasMask && !winner.HasMask {
			loser, winner = winner, o
			kept[dup] = o
		}
		merges = append(merges, merge{loser, winner.SourceIndex, loser.Box.IoU(winner.Box)})
	}
	into := map[int]int{}
	for _, m := range merges {
		into[m.loser.SourceIndex] = m.into
	}
	final := func(i int) int {
		for {
			next, ok := into[i]
			if !ok {
				return i
			}
			i = next
		}
	}
	for _, m := range merges {
		dropped = append(dropped, Dropped{
			SourceIndex: m.loser.SourceIndex, Label: m.loser.Label, What: "object",
			Reason: fmt.Sprintf("merged into source object %d (same label, IoU %.2f > merge_iou %.2f)",
				final(m.into), m.iou, p.cfg.MergeIoU),
		})
	}
	return kept, dropped
}

// capCount keeps the MaxObjects largest objects, in their original order.
func (p *Planner) capCount(objs []Object) (kept []Object, dropped []Dropped) {
	if len(objs) <= p.cfg.MaxObjects {
		return objs, nil
	}
	bySize := make([]int, len(objs))
	for i := range bySize {
		bySize[i] = i
	}
	sort.SliceStable(bySize, func(a, b int) bool { return objs[bySize[a]].Box.Area() > objs[bySize[b]].Box.Area() })
	keep := make([]bool, len(objs))
	for _, i := range bySize[:p.cfg.MaxObjects] {
		keep[i] = true
	}
	for i, o := range objs {
		if keep[i] {
			kept = append(kept, o)
			continue
		}
		dropped = append(dropped, Dropped{
			SourceIndex: o.SourceIndex, Label: o.Label, What: "object",
			Reason: fmt.Sprintf("over max_objects %d: smaller than the objects kept", p.cfg.MaxObjects),
		})
	}
	return kept, dropped
}
