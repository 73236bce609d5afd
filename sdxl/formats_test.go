package sdxl

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"paliprompt/core"
)

// nodesOf lists a graph's nodes of a class.
func nodesOf(g Graph, class string) []Node {
	var out []Node
	for _, n := range g {
		if n.ClassType == class {
			out = append(out, n)
		}
	}
	return out
}

// TestOwnShareInEveryFormat reads each format's weights back as the tool
// combines them and checks the share of a region's own prompt where its
// mask is white: weight/(global+weight) everywhere, >= 0.6 by default.
//
//   - ComfyUI (comfy/samplers.py calc_cond_batch): conditionings are
//     weighed by strength x mask and divided by the sum; the global prompt
//     has ConditioningSetAreaStrength g and no mask.
//   - Regional Prompter (scripts/attention.py masksepcalc): inside a
//     region out = region*(1-base) + global*base.
//   - Forge Couple (lib_couple/attention_couple.py): masks x weights
//     divided by their sum per pixel, the global line at its weight.
func TestOwnShareInEveryFormat(t *testing.T) {
	p := compose(t, newComposer(t, nil, nil), layoutOf(t, livingRoom(), ""), Request{})
	var g float64
	strengths := map[string]float64{} // mask file -> ConditioningSetMask strength
	for _, n := range nodesOf(p.ComfyUI, "ConditioningSetAreaStrength") {
		g = n.Inputs["strength"].(float64)
	}
	for id, n := range p.ComfyUI {
		if n.ClassType == "ConditioningSetMask" {
			mask := p.ComfyUI[n.Inputs["mask"].(Link).Node]
			strengths[mask.Inputs["image"].(string)] = n.Inputs["strength"].(float64)
			_ = id
		}
	}
	rpArgs := p.WebUI.RegionalPrompter.AlwaysonScripts[regionalPrompterTitle].Args
	bases := strings.Split(rpArgs[7].(string), ",")
	fcArgs := p.WebUI.ForgeCouple.AlwaysonScripts[forgeCoupleTitle].Args
	fcGlobal := fcArgs[6].(float64)
	fcMasks := fcArgs[7].([]map[string]any)
	for k, col := range p.RegionalPrompter.Colors {
		r := p.Regions[col.Region]
		base, _ := strconv.ParseFloat(bases[k], 64)
		var fcWeight float64
		for i, m := range p.ForgeCouple.Masks {
			if m.Region == r.Index {
				fcWeight = fcMasks[i]["weight"].(float64)
			}
		}
		shares := map[string]float64{
			"comfyui":           strengths[r.MaskFile] / (g + strengths[r.MaskFile]),
			"regional prompter": 1 - base,
			"forge couple":      fcWeight / (fcGlobal + fcWeight),
		}
		for format, share := range shares {
			if share < 0.6 || core.Round(share, 3) != core.Round(r.Share, 3) {
				t.Errorf("region %d (%s): own share %.3f in %s, plan says %.3f", r.Index, r.Label, share, format, r.Share)
			}
		}
	}
}

func TestComfyUIRegionControls(t *testing.T) {
	c := newComposer(t, nil, nil)
	req := Request{ID: "ctl", Regions: []RegionControl{
		{Object: "Cat", Prompt: "fluffy fur", Negative: "dog", Weight: 1.5, LoRAs: []LoRA{{"sdxl/fur.safetensors", 0.8}, {"eyes.safetensors", 0.5}}},
		{Object: "2", Prompt: "brass"},
		{Object: "background", Negative: "people"},
		{Object: "unicorn", Prompt: "x"},
	}}
	p := compose(t, c, layoutOf(t, livingRoom(), ""), req)
	cat, lamp, bg := p.Regions[0], p.Regions[2], p.Regions[3]
	if !strings.HasSuffix(cat.Prompt, ", fluffy fur") || cat.Negative != "dog" || cat.Weight != 1.5 || len(cat.LoRAs) != 2 ||
		!strings.HasSuffix(lamp.Prompt, ", brass") || bg.Negative != "people" {
		t.Fatalf("controls not applied: %+v / %+v / %+v", cat, lamp, bg)
	}
	if !hasNote(p, `region control for "unicorn"`) || !hasNote(p, "Forge Couple has no per-region LoRAs") {
		t.Errorf("notes %q", p.Notes)
	}
	hooks := nodesOf(p.ComfyUI, "CreateHookLora")
	clips := nodesOf(p.ComfyUI, "SetClipHooks")
	if len(hooks) != 2 || len(clips) != 1 || clips[0].Inputs["apply_to_conds"] != true {
		t.Fatalf("%d hooks, %d hooked clips", len(hooks), len(clips))
	}
	// The hooked CLIP encodes the cat's prompt and negative, nothing else.
	var hookedID string
	for id, n := range p.ComfyUI {
		if n.ClassType == "SetClipHooks" {
			hookedID = id
		}
	}
	var hookedTexts []string
	for _, n := range p.ComfyUI {
		if l, ok := n.Inputs["clip"].(Link); ok && l.Node == hookedID {
			hookedTexts = append(hookedTexts, n.Inputs["text_g"].(string))
		}
	}
	if len(hookedTexts) < 2 || !strings.Contains(strings.Join(hookedTexts, "|"), "fluffy fur") || !strings.Contains(strings.Join(hookedTexts, "|"), "dog") {
		t.Errorf("hooked CLIP encodes %q", hookedTexts)
	}
	negMasks := 0
	for _, n := range nodesOf(p.ComfyUI, "ConditioningSetMask") {
		if strings.HasPrefix(n.Meta.Title, "Set negative mask") {
			negMasks++
		}
	}
	if negMasks != 2 {
		t.Errorf("%d masked negatives, want 2 (cat, background)", negMasks)
	}
	rp := p.RegionalPrompter
	if rp.CalcMode != "Latent" || !strings.Contains(rp.Prompt, "fluffy fur <lora:fur:0.8> <lora:eyes:0.5>") {
		t.Errorf("regional prompter %q in %s mode", rp.Prompt, rp.CalcMode)
	}
	if parts := strings.Split(rp.NegativePrompt, " BREAK\n"); len(parts) != len(rp.Colors)+1 || !strings.HasSuffix(parts[1], ", people") {
		t.Errorf("regional prompter negative %q", rp.NegativePrompt)
	}
	if got := p.WebUI.RegionalPrompter.AlwaysonScripts[regionalPrompterTitle].Args[11]; got != "Latent" {
		t.Errorf("payload calc mode %v", got)
	}
	if strings.Contains(p.WebUI.ForgeCouple.Prompt, "<lora:") {
		t.Errorf("forge couple prompt carries LoRA tags: %q", p.WebUI.ForgeCouple.Prompt)
	}
}

func hasNote(p Plan, s string) bool {
	for _, n := range p.Notes {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

func TestRequestValidation(t *testing.T) {
	c := newComposer(t, nil, nil)
	l := layoutOf(t, livingRoom(), "")
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"sampler", Request{Sampler: "dpmpp_2m_karras"}, `sdxl.sampler: sampler "dpmpp_2m_karras" is not one of ComfyUI 0.3.64's samplers: euler, euler_cfg_pp,`},
		{"scheduler", Request{Scheduler: "Karras"}, `scheduler "Karras" is not one of ComfyUI 0.3.64's schedulers: simple, sgm_uniform, karras,`},
		{"lora name", Request{Regions: []RegionControl{{Object: "0", LoRAs: []LoRA{{Name: "a:b", Strength: 1}}}}}, `sdxl.regions[0].loras[0].name: "a:b" has a character`},
		{"lora path", Request{Regions: []RegionControl{{Object: "0", LoRAs: []LoRA{{Name: "../x.safetensors", Strength: 1}}}}}, "not a path inside the loras folder"},
		{"lora strength", Request{Regions: []RegionControl{{Object: "0", LoRAs: []LoRA{{Name: "x", Strength: 30}}}}}, "strength: 30 is not in -20..20"},
		{"weight", Request{Regions: []RegionControl{{Object: "0", Weight: -1}}}, "sdxl.regions[0].weight: -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Compose(l, tt.req)
			if !errors.Is(err, core.ErrBadRequest) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compose: %v\nwant a bad request naming %q", err, tt.want)
			}
		})
	}
	p := compose(t, c, l, Request{Sampler: "euler_ancestral", Scheduler: "beta"})
	k := nodesOf(p.ComfyUI, "KSampler")[0]
	if k.Inputs["sampler_name"] != "euler_ancestral" || k.Inputs["scheduler"] != "beta" ||
		p.WebUI.ForgeCouple.SamplerName != "Euler a" || p.WebUI.ForgeCouple.Scheduler != "beta" {
		t.Errorf("sampler %v %v, webui %q %q", k.Inputs["sampler_name"], k.Inputs["scheduler"], p.WebUI.ForgeCouple.SamplerName, p.WebUI.ForgeCouple.Scheduler)
	}
	p = compose(t, c, l, Request{Sampler: "res_multistep", Scheduler: "linear_quadratic"})
	if p.WebUI.RegionalPrompter.SamplerName != webUIFallbackSampler || !hasNote(p, `A1111 has no sampler like ComfyUI's "res_multistep"`) {
		t.Errorf("fallback %q, notes %q", p.WebUI.RegionalPrompter.SamplerName, p.Notes)
	}
}

func TestRegionControlJSONIsStrict(t *testing.T) {
	var rc RegionControl
	err := json.Unmarshal([]byte(`{"object": "cat", "lora": []}`), &rc)
	if err == nil || !strings.Contains(err.Error(), `unknown field "lora"`) {
		t.Errorf("unknown field: %v", err)
	}
	err = json.Unmarshal([]byte(`{"object": "cat", "loras": [{"name": "x", "weight": 1}]}`), &rc)
	if err == nil || !strings.Contains(err.Error(), `unknown field "weight"`) {
		t.Errorf("unknown LoRA field: %v", err)
	}
}

// TestEmptyRegionsLeftOut: a region whose mask is empty (an object
// hidden behind a nearer one of the same box) is in the plan, noted, and
// in no graph.
func TestEmptyRegionsLeftOut(t *testing.T) {
	res := core.Result{Width: 1024, Height: 1024, Caption: "a box before a box",
		Objects: []core.Object{det("front", 256, 256, 768, 768), det("back", 256, 256, 768, 768)}}
	c := newComposer(t, func(c *Config) { c.FeatherPx = 0 }, nil)
	p := compose(t, c, layoutOf(t, res, ""), Request{})
	var empty []Region
	for _, r := range p.Regions {
		if r.Coverage == 0 {
			empty = append(empty, r)
		}
	}
	if len(empty) != 1 || !hasNote(p, "has an empty mask") {
		t.Fatalf("empty regions %+v, notes %q", empty, p.Notes)
	}
	for _, n := range nodesOf(p.ComfyUI, "LoadImageMask") {
		if n.Inputs["image"] == empty[0].MaskFile {
			t.Errorf("the graph loads the empty mask %s", empty[0].MaskFile)
		}
	}
	if len(nodesOf(p.ComfyUI, "LoadImageMask")) != len(p.Regions)-1 || len(p.ForgeCouple.Masks) != len(p.Regions)-1 ||
		len(p.RegionalPrompter.Colors) != len(p.Regions)-1 {
		t.Errorf("graphs condition on the empty region")
	}
}

// TestMaskNamesNameTheirBytes: a file name is never used for other bytes.
func TestMaskNamesNameTheirBytes(t *testing.T) {
	c := newComposer(t, nil, nil)
	seen := map[string]string{}
	for _, place := range []string{"", "cat=top-right", "mirror"} {
		p := compose(t, c, layoutOf(t, livingRoom(), place), Request{ID: "same-id"})
		if err := p.EncodeFiles(); err != nil {
			t.Fatal(err)
		}
		for _, f := range p.Files() {
			key := fmt.Sprintf("%x", *f.PNG)
			if prev, ok := seen[f.Name]; ok && prev != key {
				t.Errorf("%s names two different PNGs", f.Name)
			}
			seen[f.Name] = key
		}
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct names", len(seen))
	}
}

func TestWebUIPayloads(t *testing.T) {
	c := newComposer(t, nil, nil)
	seed := int64(7)
	p := compose(t, c, layoutOf(t, quadrantsScene(), ""), Request{ID: "q", Seed: &seed, Steps: 25, CFG: 5})
	w := p.WebUI
	if w.Endpoint != EndpointTxt2Img || w.RegionalPrompter == nil || w.RegionalPrompterMatrix == nil || w.ForgeCouple == nil || w.ForgeCoupleAdvanced == nil {
		t.Fatalf("payloads %+v", w)
	}
	for name, body := range map[string]*WebUIRequest{"rp": w.RegionalPrompter, "rp matrix": w.RegionalPrompterMatrix, "fc": w.ForgeCouple, "fc adv": w.ForgeCoupleAdvanced} {
		if body.Width != p.Width || body.Height != p.Height || body.Seed != 7 || body.Steps != 25 || body.CFGScale != 5 ||
			body.SamplerName != "DPM++ 2M" || body.Scheduler != "karras" || body.OverrideSettings["sd_model_checkpoint"] != "sd_xl_base_1.0.safetensors" {
			t.Errorf("%s: %+v", name, body)
		}
		if len(body.AlwaysonScripts) != 1 {
			t.Errorf("%s: scripts %v", name, body.AlwaysonScripts)
		}
	}
	rp := w.RegionalPrompter.AlwaysonScripts[regionalPrompterTitle].Args
	if len(rp) != 20 || rp[0] != true || rp[2] != "Mask" || rp[8] != true || rp[11] != "Attention" {
		t.Errorf("regional prompter args %v", rp)
	}
	if mask, ok := rp[16].(InlinePNG); !ok || mask.File != p.RegionalPrompter.MaskFile {
		t.Errorf("regional prompter mask arg %#v", rp[16])
	}
	mx := w.RegionalPrompterMatrix.AlwaysonScripts[regionalPrompterTitle].Args
	if mx[2] != "Matrix" || mx[3] != "Columns" || mx[6] != p.RegionalPrompter.Matrix.DivideRatio || mx[16] != "" {
		t.Errorf("matrix args %v", mx)
	}
	fc := w.ForgeCouple.AlwaysonScripts[forgeCoupleTitle].Args
	if len(fc) != 11 || fc[2] != "Mask" || fc[3] != "\n" || fc[5] != "First Line" || fc[8] != "off" {
		t.Errorf("forge couple args %v", fc)
	}
	if lines := strings.Split(w.ForgeCouple.Prompt, "\n"); len(lines) != len(fc[7].([]map[string]any))+1 {
		t.Errorf("forge couple: %d lines for %d masks", len(lines), len(fc[7].([]map[string]any)))
	}
	adv := w.ForgeCoupleAdvanced.AlwaysonScripts[forgeCoupleTitle].Args
	if adv[2] != "Advanced" || adv[5] != "None" || len(adv[7].([][5]float64)) != 5 {
		t.Errorf("advanced args %v", adv)
	}
	// The JSON is what the API gets: images as base64 strings, the PNGs
	// of the plan's files, once they are encoded.
	if _, err := json.Marshal(w.RegionalPrompter); err == nil || !strings.Contains(err.Error(), p.RegionalPrompter.MaskFile+" is not encoded") {
		t.Errorf("a body marshalled before its images were encoded: %v", err)
	}
	if err := p.EncodeFiles(); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(w.RegionalPrompter)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	args := back["alwayson_scripts"].(map[string]any)[regionalPrompterTitle].(map[string]any)["args"].([]any)
	if s, _ := args[16].(string); s != base64.StdEncoding.EncodeToString(p.RegionalPrompter.Mask) {
		t.Errorf("mask arg in JSON: %.40v", args[16])
	}
}

// TestInlinePNGsReadTheCallersBytes: the bodies embed the bytes a caller
// that encodes the files itself gives them, each file's own, and decode
// back from JSON with them.
func TestInlinePNGsReadTheCallersBytes(t *testing.T) {
	p := compose(t, newComposer(t, nil, nil), layoutOf(t, livingRoom(), ""), Request{})
	inline := map[string]bool{}
	for _, f := range p.Files() {
		if f.Inline {
			inline[f.Name] = true
		}
	}
	for _, r := range p.conditioned() { // Forge Couple's Mask mode body carries each
		if !inline[r.MaskFile] {
			t.Errorf("%s is in the Forge Couple body but not marked Inline", r.MaskFile)
		}
	}
	p.ReadPNGsFrom(func(name string) []byte { return []byte("png of " + name) })
	data, err := json.Marshal(p.WebUI.ForgeCouple)
	if err != nil {
		t.Fatal(err)
	}
	var back WebUIRequest
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	masks := back.AlwaysonScripts[forgeCoupleTitle].Args[7].([]any)
	for i, m := range masks {
		s, _ := m.(map[string]any)["mask"].(string)
		if got, _ := base64.StdEncoding.DecodeString(s); string(got) != "png of "+p.ForgeCouple.Masks[i].MaskFile {
			t.Errorf("mask %d: %q", i, got)
		}
	}
}
