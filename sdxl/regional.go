package sdxl

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"strconv"
	"strings"

	"paliprompt/core"
)

// RegionalPrompter is the plan for the A1111/Forge Regional Prompter
// extension (hako-mikan/sd-webui-regional-prompter, followed at commit
// be62345 of 2025-06-23); WebUIPayloads.RegionalPrompter is the same as a
// ready API request.
//
// Mask mode: set Divide mode to Mask, upload Mask (a colour-coded PNG at
// the canvas size), enable the base prompt with BaseRatios and use Prompt:
// the global prompt, ADDBASE, then one region per colour in colour order,
// separated by BREAK. The colours are the extension's own sequence,
// HSV(hue, 50%, 50%) with hues 0, 180, 90, 270, 45, ... degrees, in
// region order; each pixel is coloured for the region with the largest
// mask value there. Regions that win no pixel are left out (the
// extension skips colours it does not find, which would shift every
// later prompt) and listed in Omitted.
//
// Each region's base ratio is global_weight/(global_weight+weight): the
// extension mixes base*global + (1-base)*region inside the region, so the
// region's own prompt has weight/(global_weight+weight) of it, as in the
// other formats (Region.Share).
//
// A region's negative prompt goes into NegativePrompt the same way, one
// BREAK part per region (the global negative and its terms), when any
// region has one. Region LoRAs need the extension's Latent mode (its
// per-region LoRA support): with any, CalcMode is "Latent" and each LoRA
// is a <lora:name:strength> tag in its region's part.
type RegionalPrompter struct {
	Mode           string `json:"mode"`
	CalcMode       string `json:"calc_mode"`
	Prompt         string `json:"prompt"`
	NegativePrompt string `json:"negative_prompt"`
	UseBase        bool   `json:"use_base"`
	// BaseRatios are the regions' base ratios in colour order,
	// comma-separated, as the extension's Base Ratio field takes them.
	BaseRatios string        `json:"base_ratios"`
	MaskFile   string        `json:"mask_file"`
	Mask       []byte        `json:"mask"`
	Colors     []RegionColor `json:"colors"`
	Omitted    []string      `json:"omitted,omitempty"`
	image      image.Image
	// Matrix is the same plan in Matrix mode, present when the regions
	// are rectangles that tile the canvas in rows or columns (boxes
	// without segmentation masks, edges aligned within 3% of the frame).
	Matrix *RegionalMatrix `json:"matrix,omitempty"`
}

// RegionColor ties a mask colour to a plan region.
type RegionColor struct {
	Region int    `json:"region"`
	Label  string `json:"label"`
	Color  string `json:"color"` // "#rrggbb"
}

// RegionalMatrix is Regional Prompter's Matrix mode: DivideMode
// "Horizontal" (labelled Columns in newer versions) splits rows first
// (";" between rows, each row "height,width,width,..."), "Vertical" (Rows)
// columns first ("," between columns, each "width;height;height");
// a single row or column uses the one-dimensional form "a,b,c". Ratios
// are pixels of the canvas. Prompt: global ADDBASE, then the cells left
// to right, top to bottom, with ADDCOL/ADDROW (BREAK in one dimension).
type RegionalMatrix struct {
	DivideMode  string `json:"divide_mode"`
	DivideRatio string `json:"divide_ratio"`
	Prompt      string `json:"prompt"`
	// BaseRatios are the cells' base ratios in prompt order, separated
	// as the extension reads them in this divide mode (it fills its cell
	// structure row by row from a flat list).
	BaseRatios string `json:"base_ratios"`
	UseBase    bool   `json:"use_base"`
}

// rpColors are the first n colours of Regional Prompter's sequence
// (regions.py deterministic_colours): hue 0, then in each round the
// midpoints between the hues so far; HSV to RGB as Python's colorsys,
// scaled by 256 and truncated to bytes as numpy's astype(uint8) does.
func rpColors(n int) []color.RGBA {
	out := make([]color.RGBA, 0, n)
	cycle, hue, delta := -1.0, 0.0, 0.0
	for i := 0; i < n; i++ {
		c := math.Ceil(math.Log2(float64(i + 1)))
		switch {
		case c == 0:
			hue, cycle = 0, c
		case c != cycle:
			delta = 1 / math.Pow(2, c)
			hue, cycle = delta, c
		default:
			hue += 2 * delta
		}
		r, g, b := hsvToRGB(hue, 0.5, 0.5)
		out = append(out, color.RGBA{uint8(r * 256), uint8(g * 256), uint8(b * 256), 255})
	}
	return out
}

// hsvToRGB is Python's colorsys.hsv_to_rgb for s > 0.
func hsvToRGB(h, s, v float64) (float64, float64, float64) {
	i := math.Trunc(h * 6)
	f := h*6 - i
	p, q, t := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	switch int(i) % 6 {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	}
	return v, p, q
}

func hexColor(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

// regionalPrompter builds the Mask mode plan (and Matrix mode when the
// regions allow it). The background is the last region; colour order is
// the background first, then the objects in layout order.
func (c *Composer) regionalPrompter(p *Plan, base string) (RegionalPrompter, error) {
	bgIdx := len(p.Regions) - 1
	w, h := p.Width, p.Height
	// Pixels go to the largest mask; ties to the nearer object, the
	// background last.
	owner, wins := p.regionOwners()
	colorOrder := append([]int{bgIdx}, seq(bgIdx)...)
	var included []int
	rp := RegionalPrompter{Mode: "Mask", CalcMode: "Attention", UseBase: true}
	for _, ri := range colorOrder {
		if wins[ri] == 0 {
			rp.Omitted = append(rp.Omitted, fmt.Sprintf("region %d (%s): no pixel where it is the largest mask", ri, p.Regions[ri].Label))
			continue
		}
		included = append(included, ri)
	}
	colors := rpColors(len(included))
	colorOf := make([]color.RGBA, len(p.Regions))
	for k, ri := range included {
		colorOf[ri] = colors[k]
		rp.Colors = append(rp.Colors, RegionColor{Region: ri, Label: p.Regions[ri].Label, Color: hexColor(colors[k])})
	}
	rp.image = colorMask(owner, colorOf, included, w, h)
	rp.MaskFile = contentFileName(c.cfg.MaskPrefix, p.id, "rp-mask", rp.image)
	rp.Prompt, rp.CalcMode = rpPrompt(p, base, included)
	rp.NegativePrompt = rpNegative(p, included)
	rp.BaseRatios = c.baseRatios(p, included, ",")
	rp.Matrix = c.regionalMatrix(p, base)
	return rp, nil
}

// rpPrompt is the global prompt, ADDBASE and the included regions'
// prompts separated by BREAK; with region LoRAs, their tags and the
// Latent calculation mode.
func rpPrompt(p *Plan, base string, included []int) (string, string) {
	mode := "Attention"
	parts := make([]string, len(included))
	for k, ri := range included {
		parts[k] = p.Regions[ri].Prompt
		for _, l := range p.Regions[ri].LoRAs {
			parts[k] += fmt.Sprintf(" <lora:%s:%s>", a1111LoRAName(l.Name), formatWeight(l.Strength))
			mode = "Latent"
		}
	}
	return base + " ADDBASE\n" + strings.Join(parts, " BREAK\n"), mode
}

// rpNegative is the global negative, or, when a region has its own
// negative, one BREAK part per region after the global one (the
// extension pairs them with the prompt's parts).
func rpNegative(p *Plan, included []int) string {
	global := strings.Join(p.NegativeChunks, phraseSep)
	own := false
	parts := []string{global}
	for _, ri := range included {
		neg := global
		if r := p.Regions[ri]; r.Negative != "" {
			neg, own = strings.TrimPrefix(global+phraseSep+r.Negative, phraseSep), true
		}
		parts = append(parts, neg)
	}
	if !own {
		return global
	}
	return strings.Join(parts, " BREAK\n")
}

// baseRatios lists global/(global+weight) of the regions, in order.
func (c *Composer) baseRatios(p *Plan, regions []int, sep string) string {
	out := make([]string, len(regions))
	for k, ri := range regions {
		out[k] = formatWeight(c.baseRatio(p.Regions[ri].Weight))
	}
	return strings.Join(out, sep)
}

// baseRatio is the base ratio that leaves a region of weight w the share
// w/(global+w).
func (c *Composer) baseRatio(w float64) float64 {
	g := c.cfg.GlobalWeight
	if g+w == 0 {
		return 0
	}
	return g / (g + w)
}

// formatWeight writes a weight with at most four decimals.
func formatWeight(v float64) string {
	return strconv.FormatFloat(core.Round(v, 4), 'f', -1, 64)
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// colorMask paints each pixel in its owner's colour: a paletted image
// (small, fast to encode) unless there are more colours than a palette holds.
func colorMask(owner []int, colorOf []color.RGBA, included []int, w, h int) image.Image {
	if len(included) > 256 {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for px, ri := range owner {
			c := colorOf[ri]
			copy(img.Pix[px*4:px*4+4], []uint8{c.R, c.G, c.B, 255})
		}
		return img
	}
	pal := color.Palette{}
	slot := make([]uint8, len(colorOf))
	for k, ri := range included {
		pal = append(pal, colorOf[ri])
		slot[ri] = uint8(k)
	}
	img := image.NewPaletted(image.Rect(0, 0, w, h), pal)
	for px, ri := range owner {
		img.Pix[px] = slot[ri]
	}
	return img
}
