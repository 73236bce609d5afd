package sdxl

import (
	"strings"

	"paliprompt/core"
)

// ForgeCouple is the plan for the Forge Couple extension
// (Haoming02/sd-forge-couple v7.0.7; since v6 it runs on Forge only);
// WebUIPayloads.ForgeCouple and ForgeCoupleAdvanced are the same as ready
// API requests.
//
// Mask mode (the default here): Prompt has one line per line of Masks
// after the first (Separator "\n"); the first line is the global prompt,
// which the extension's Global Effect "First Line" applies to the whole
// canvas at BackgroundWeight (global_weight); then each region whose
// mask is not empty, with its resolved mask and weight, so segmentation
// shapes, depth order and the background region survive. The extension
// divides each pixel's weights by their sum, so a region's own prompt
// has weight/(global_weight+weight) where its mask is white
// (Region.Share), as in the other formats.
//
// Advanced is the rectangle fallback: one line per row of Mapping
// [x1, x2, y1, y2, weight] (fractions of the canvas), the global prompt
// over the whole canvas at global_weight, then each object's placed box
// at its weight; outside the boxes only the global line applies.
//
// The extension has no per-region negative prompts or LoRAs; Plan.Notes
// says when a region asked for them.
type ForgeCouple struct {
	Mode             string            `json:"mode"`
	Separator        string            `json:"separator"`
	Background       string            `json:"background"`
	BackgroundWeight float64           `json:"background_weight"`
	Prompt           string            `json:"prompt"`
	Masks            []ForgeCoupleMask `json:"masks"`
	Advanced         ForgeAdvanced     `json:"advanced"`
}

// ForgeCoupleMask is one line's region in Mask mode: its mask file (the
// region's mask PNG) and weight.
type ForgeCoupleMask struct {
	Region   int     `json:"region"`
	Label    string  `json:"label"`
	MaskFile string  `json:"mask_file"`
	Weight   float64 `json:"weight"`
}

// ForgeAdvanced is the Advanced mode plan.
type ForgeAdvanced struct {
	Prompt  string       `json:"prompt"`
	Mapping [][5]float64 `json:"mapping"`
}

// forgeSeparator is the couple separator the plans use (the extension's
// default, a line break; Escape turns line breaks in text into spaces).
const forgeSeparator = "\n"

func (c *Composer) forgeCouple(p *Plan, base string) ForgeCouple {
	fc := ForgeCouple{Mode: "Mask", Separator: forgeSeparator, Background: "First Line", BackgroundWeight: c.cfg.GlobalWeight}
	lines := []string{base}
	for _, r := range p.conditioned() {
		lines = append(lines, r.Prompt)
		fc.Masks = append(fc.Masks, ForgeCoupleMask{Region: r.Index, Label: r.Label, MaskFile: r.MaskFile, Weight: r.Weight})
	}
	fc.Prompt = strings.Join(lines, forgeSeparator)

	adv := []string{base}
	fc.Advanced.Mapping = [][5]float64{{0, 1, 0, 1, c.cfg.GlobalWeight}}
	for _, r := range p.conditioned() {
		if b := r.Box; b != nil {
			adv = append(adv, r.Prompt)
			fc.Advanced.Mapping = append(fc.Advanced.Mapping, [5]float64{core.Round(b.X0, 4), core.Round(b.X1, 4), core.Round(b.Y0, 4), core.Round(b.Y1, 4), r.Weight})
		}
	}
	fc.Advanced.Prompt = strings.Join(adv, forgeSeparator)
	return fc
}

// forgeCoupleArgs are the extension's positional API arguments (the
// components couple_ui returns, in order: enable, compatibility, mode,
// separator, direction, background, background weight, mapping, common
// prompt syntax, its debug flag, include definitions in prompt).
// Common prompts are off: the plan's text has no {} syntax to expand.
func forgeCoupleArgs(mode, background string, backgroundWeight float64, mapping any) []any {
	return []any{true, true, mode, forgeSeparator, "Horizontal", background, backgroundWeight, mapping, "off", false, true}
}

// payloads are the Mask and Advanced mode requests; the Mask mode one
// carries each region's mask.
func (fc ForgeCouple) payloads(p *Plan, start WebUIRequest, negative string) (*WebUIRequest, *WebUIRequest) {
	masks := make([]map[string]any, len(fc.Masks))
	for i, m := range fc.Masks {
		masks[i] = map[string]any{"mask": p.inline(m.MaskFile), "weight": m.Weight}
	}
	mask := start.clone()
	mask.Prompt, mask.NegativePrompt = fc.Prompt, negative
	mask.AlwaysonScripts[forgeCoupleTitle] = ScriptArgs{forgeCoupleArgs("Mask", fc.Background, fc.BackgroundWeight, masks)}
	adv := start.clone()
	adv.Prompt, adv.NegativePrompt = fc.Advanced.Prompt, negative
	adv.AlwaysonScripts[forgeCoupleTitle] = ScriptArgs{forgeCoupleArgs("Advanced", "None", fc.BackgroundWeight, fc.Advanced.Mapping)}
	return &mask, &adv
}

// Extension titles: the keys of alwayson_scripts (A1111 matches them
// case-insensitively against each script's title()).
const (
	forgeCoupleTitle      = "Forge Couple"
	regionalPrompterTitle = "Regional Prompter"
	controlNetTitle       = "ControlNet"
)

// clone copies a request with its own maps.
func (w WebUIRequest) clone() WebUIRequest {
	out := w
	out.OverrideSettings = map[string]any{}
	for k, v := range w.OverrideSettings {
		out.OverrideSettings[k] = v
	}
	out.AlwaysonScripts = map[string]ScriptArgs{}
	for k, v := range w.AlwaysonScripts {
		out.AlwaysonScripts[k] = v
	}
	return out
}

// rpArgs are Regional Prompter's 20 positional API arguments (the
// components Script.ui returns, in order): active, debug, mode tab,
// matrix submode, mask submode, prompt submode, divide ratio, base
// ratios, use base, use common, use negative common, calculation mode,
// options, LoRA negative text encoder and U-Net ratios, threshold, mask
// (base64 PNG, "" for none), LoRA stop step, LoRA hires stop step, flip.
func rpArgs(tab, matrixMode, ratios, baseRatios, calcMode string, mask *InlinePNG) []any {
	var polymask any = ""
	if mask != nil {
		polymask = *mask
	}
	return []any{true, false, tab, matrixMode, "Mask", "Prompt", ratios, baseRatios, true, false, false, calcMode,
		"", "0", "0", "0", polymask, "0", "0", false}
}

// webUIPayloads builds the A1111/Forge requests of the plan from its
// Regional Prompter and Forge Couple plans (made for them even when the
// request did not ask for those formats).
func (c *Composer) webUIPayloads(p *Plan, rp RegionalPrompter, fc ForgeCouple, r comfyRun) WebUIPayloads {
	base := webUIBase(p, r, c.cfg.ComfyUI.Checkpoint, &p.Notes)
	out := WebUIPayloads{Endpoint: EndpointTxt2Img}
	req := base.clone()
	req.Prompt, req.NegativePrompt = rp.Prompt, rp.NegativePrompt
	mask := p.inline(rp.MaskFile)
	req.AlwaysonScripts[regionalPrompterTitle] = ScriptArgs{rpArgs("Mask", "Columns", "1", rp.BaseRatios, rp.CalcMode, &mask)}
	out.RegionalPrompter = &req
	if m := rp.Matrix; m != nil {
		mreq := base.clone()
		calc := "Attention"
		if matrixUsesLoRAs(m) {
			calc = "Latent"
		}
		submode := map[string]string{"Horizontal": "Columns", "Vertical": "Rows"}[m.DivideMode]
		mreq.Prompt, mreq.NegativePrompt = m.Prompt, strings.Join(p.NegativeChunks, phraseSep)
		mreq.AlwaysonScripts[regionalPrompterTitle] = ScriptArgs{rpArgs("Matrix", submode, m.DivideRatio, m.BaseRatios, calc, nil)}
		out.RegionalPrompterMatrix = &mreq
	}
	out.ForgeCouple, out.ForgeCoupleAdvanced = fc.payloads(p, base, strings.Join(p.NegativeChunks, phraseSep))
	units := c.controlNetUnits(p)
	for _, body := range out.Bodies() {
		if len(units) > 0 {
			body.Body.AlwaysonScripts[controlNetTitle] = ScriptArgs{units}
		}
		if sc := p.Hints.StartCanvas; sc != nil {
			body.Body.InitImages, body.Body.DenoisingStrength = []InlinePNG{p.inline(sc.File)}, p.Hints.Denoise
		}
	}
	if p.Hints.StartCanvas != nil {
		out.Endpoint = EndpointImg2Img
	}
	return out
}
