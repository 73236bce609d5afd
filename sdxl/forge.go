package sdxl

import (
	"strings"

	"paliprompt/core"
)

// ForgeCouple is the plan for the Forge Couple extension
// (Haoming02/sd-forge-couple) in Advanced mode: Prompt has one line per
// region (Separator "\n") and Mapping one row [x1, x2, y1, y2, weight]
// per line, fractions of the canvas. The first line is the background
// line: the global prompt over the whole canvas at the background weight,
// which also gives every pixel a value as the extension requires. Object
// lines use their placed boxes (Advanced mode takes rectangles; the
// segmentation masks are in the regions for consumers that take masks).
type ForgeCouple struct {
	Mode       string       `json:"mode"`
	Separator  string       `json:"separator"`
	Background string       `json:"background"`
	Prompt     string       `json:"prompt"`
	Mapping    [][5]float64 `json:"mapping"`
}

func (c *Composer) forgeCouple(p *Plan, base string) ForgeCouple {
	fc := ForgeCouple{Mode: "Advanced", Separator: "\n", Background: "None"}
	lines := []string{base}
	fc.Mapping = append(fc.Mapping, [5]float64{0, 1, 0, 1, c.cfg.BackgroundWeight})
	for _, r := range p.Regions[:len(p.Regions)-1] {
		b := r.Box
		lines = append(lines, r.Prompt)
		fc.Mapping = append(fc.Mapping, [5]float64{core.Round(b.X0, 4), core.Round(b.X1, 4), core.Round(b.Y0, 4), core.Round(b.Y1, 4), r.Weight})
	}
	fc.Prompt = strings.Join(lines, "\n")
	return fc
}
