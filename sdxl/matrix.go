package sdxl

import (
	"math"
	"sort"
	"strconv"
	"strings"

	"paliprompt/core"
)

// snapTolerance merges box edges closer than this fraction of the frame
// when testing whether regions tile the canvas as a matrix.
const snapTolerance = 0.03

// maxMatrixCells bounds Matrix mode: past it the mask mode is the
// better tool.
const maxMatrixCells = 16

// matrixCell is one cell of a band: an object region, or -1 for the
// background, spanning [from, to) of the band's axis.
type matrixCell struct {
	region   int
	from, to float64
}

// band is a row (or column) of cells spanning [from, to) of the primary axis.
type band struct {
	from, to float64
	cells    []matrixCell
}

// regionalMatrix returns the Matrix mode plan, or nil when the regions do
// not tile the canvas: every object must be a box (no segmentation mask)
// whose edges fall on a grid of bands and cells.
func (c *Composer) regionalMatrix(p *Plan, base string) *RegionalMatrix {
	var boxes []core.Box
	for _, r := range p.Regions[:len(p.Regions)-1] {
		if r.Box == nil || r.hasMask {
			return nil
		}
		boxes = append(boxes, *r.Box)
	}
	if len(boxes) == 0 {
		return nil
	}
	for _, rowsFirst := range []bool{true, false} {
		if bands, ok := tile(boxes, rowsFirst); ok {
			return c.matrixPlan(bands, rowsFirst, p, base)
		}
	}
	return nil
}

// tile splits the frame into bands along the primary axis (y for
// rowsFirst) and cells along the other, so that each box is exactly one
// cell; ok is false when the boxes do not allow it.
func tile(boxes []core.Box, rowsFirst bool) ([]band, bool) {
	prim := func(b core.Box) (float64, float64) {
		if rowsFirst {
			return b.Y0, b.Y1
		}
		return b.X0, b.X1
	}
	sec := func(b core.Box) (float64, float64) {
		if rowsFirst {
			return b.X0, b.X1
		}
		return b.Y0, b.Y1
	}
	cuts := snapCuts(edges(boxes, prim))
	bands := make([]band, len(cuts)-1)
	for k := range bands {
		bands[k] = band{from: cuts[k], to: cuts[k+1]}
	}
	members := make([][]int, len(bands))
	for i, b := range boxes {
		a, z := prim(b)
		k, ok := span(cuts, a, z)
		if !ok {
			return nil, false
		}
		members[k] = append(members[k], i)
	}
	for k := range bands {
		var inBand []core.Box
		for _, i := range members[k] {
			inBand = append(inBand, boxes[i])
		}
		sc := snapCuts(edges(inBand, sec))
		owner := make([]int, len(sc)-1)
		for j := range owner {
			owner[j] = -1
		}
		for _, i := range members[k] {
			a, z := sec(boxes[i])
			j, ok := span(sc, a, z)
			if !ok || owner[j] != -1 {
				return nil, false
			}
			owner[j] = i
		}
		bands[k].cells = mergeBackground(sc, owner)
	}
	bands = mergeBackgroundBands(bands)
	cells := 0
	for _, b := range bands {
		cells += len(b.cells)
	}
	return bands, cells >= 2 && cells <= maxMatrixCells
}

// edges lists both edges of each box on one axis.
func edges(boxes []core.Box, axis func(core.Box) (float64, float64)) []float64 {
	var out []float64
	for _, b := range boxes {
		a, z := axis(b)
		out = append(out, a, z)
	}
	return out
}

// snapCuts sorts edges with the frame's 0 and 1, merging those closer
// than snapTolerance (to 0 or 1 when the frame edge is among them, else
// to their mean).
func snapCuts(vals []float64) []float64 {
	vals = append([]float64{0, 1}, vals...)
	sort.Float64s(vals)
	var cuts []float64
	for i := 0; i < len(vals); {
		j, sum := i, 0.0
		for j < len(vals) && vals[j]-vals[i] < snapTolerance {
			sum += vals[j]
			j++
		}
		v := sum / float64(j-i)
		if vals[i] <= 0 {
			v = 0
		} else if vals[j-1] >= 1 {
			v = 1
		}
		cuts = append(cuts, v)
		i = j
	}
	return cuts
}

// span finds the consecutive cuts an interval snaps to: ok when it spans
// exactly one gap between cuts.
func span(cuts []float64, a, z float64) (int, bool) {
	ia, iz := nearest(cuts, a), nearest(cuts, z)
	return ia, iz == ia+1
}

func nearest(cuts []float64, v float64) int {
	best, d := 0, math.Inf(1)
	for i, c := range cuts {
		if e := math.Abs(c - v); e < d {
			best, d = i, e
		}
	}
	return best
}

// mergeBackground builds a band's cells, merging neighbouring background
// cells.
func mergeBackground(cuts []float64, owner []int) []matrixCell {
	var cells []matrixCell
	for j, o := range owner {
		if n := len(cells); o == -1 && n > 0 && cells[n-1].region == -1 {
			cells[n-1].to = cuts[j+1]
			continue
		}
		cells = append(cells, matrixCell{region: o, from: cuts[j], to: cuts[j+1]})
	}
	return cells
}

// mergeBackgroundBands merges neighbouring bands that are all background.
func mergeBackgroundBands(bands []band) []band {
	var out []band
	for _, b := range bands {
		allBG := len(b.cells) == 1 && b.cells[0].region == -1
		if n := len(out); allBG && n > 0 && len(out[n-1].cells) == 1 && out[n-1].cells[0].region == -1 {
			out[n-1].to = b.to
			out[n-1].cells[0].to = 1
			continue
		}
		out = append(out, b)
	}
	return out
}

// matrixPlan writes the bands as Regional Prompter ratios, prompt and
// base ratios (per cell, as in Mask mode; region LoRAs as tags and the
// Latent calculation mode, as there).
func (c *Composer) matrixPlan(bands []band, rowsFirst bool, p *Plan, base string) *RegionalMatrix {
	primLen, secLen := float64(p.Height), float64(p.Width)
	mode, inner, outer, ratioInner, ratioOuter := "Horizontal", " ADDCOL\n", " ADDROW\n", ",", ";"
	if !rowsFirst {
		primLen, secLen = secLen, primLen
		mode, inner, outer, ratioInner, ratioOuter = "Vertical", " ADDROW\n", " ADDCOL\n", ";", ","
	}
	px := func(a, z, n float64) string { return strconv.Itoa(max(1, int(math.Round((z-a)*n)))) }
	bgIdx := len(p.Regions) - 1
	var order []int // region of each cell, in prompt order
	prompt := func(cell matrixCell) string {
		ri := cell.region
		if ri < 0 {
			ri = bgIdx
		}
		order = append(order, ri)
		text, _ := rpPrompt(p, "", []int{ri})
		return strings.TrimPrefix(text, " ADDBASE\n")
	}
	m := &RegionalMatrix{UseBase: true}
	finish := func(divide, ratio, body string) *RegionalMatrix {
		m.DivideMode, m.DivideRatio, m.Prompt = divide, ratio, base+" ADDBASE\n"+body
		m.BaseRatios = c.baseRatios(p, order, map[string]string{"Horizontal": ",", "Vertical": ";"}[divide])
		return m
	}
	switch {
	case len(bands) == 1: // one band: a 1-D split along the other axis
		var ratios, ps []string
		for _, cell := range bands[0].cells {
			ratios, ps = append(ratios, px(cell.from, cell.to, secLen)), append(ps, prompt(cell))
		}
		return finish(map[bool]string{true: "Horizontal", false: "Vertical"}[rowsFirst], strings.Join(ratios, ","), strings.Join(ps, " BREAK\n"))
	case allSingle(bands): // one cell per band: a 1-D split along this axis
		var ratios, ps []string
		for _, b := range bands {
			ratios, ps = append(ratios, px(b.from, b.to, primLen)), append(ps, prompt(b.cells[0]))
		}
		return finish(map[bool]string{true: "Vertical", false: "Horizontal"}[rowsFirst], strings.Join(ratios, ","), strings.Join(ps, " BREAK\n"))
	}
	var groups, texts []string
	for _, b := range bands {
		ratios := []string{px(b.from, b.to, primLen)}
		var ps []string
		for _, cell := range b.cells {
			ratios, ps = append(ratios, px(cell.from, cell.to, secLen)), append(ps, prompt(cell))
		}
		groups, texts = append(groups, strings.Join(ratios, ratioInner)), append(texts, strings.Join(ps, inner))
	}
	return finish(mode, strings.Join(groups, ratioOuter), strings.Join(texts, outer))
}

// matrixUsesLoRAs reports whether a matrix plan's cells carry LoRA tags.
func matrixUsesLoRAs(m *RegionalMatrix) bool { return strings.Contains(m.Prompt, "<lora:") }

func allSingle(bands []band) bool {
	for _, b := range bands {
		if len(b.cells) != 1 {
			return false
		}
	}
	return true
}
