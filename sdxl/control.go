package sdxl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"paliprompt/core"
	"paliprompt/layouts"
)

// RegionControl is per-region control, from config ([[sdxl.regions]])
// or a request ("sdxl": {"regions": [...]}): for one region, named by
// Object, extra prompt terms, a negative prompt, a weight and LoRAs. The
// request's entries come after the config's; for the same region a later
// entry's set fields win.
type RegionControl struct {
	// Object names the region: an object's index in the layout, an
	// object's label (case-insensitive, the first object with it), or
	// "background".
	Object string `json:"object" toml:"object"`
	// Prompt terms are added to the region's prompt (escaped).
	Prompt string `json:"prompt,omitempty" toml:"prompt"`
	// Negative terms apply inside the region only (escaped), added to the
	// global negative prompt there.
	Negative string `json:"negative,omitempty" toml:"negative"`
	// Weight replaces the region's weight (object_weight or
	// background_weight); 0 keeps it.
	Weight float64 `json:"weight,omitempty" toml:"weight"`
	// LoRAs apply to this region only, where the format can do that.
	LoRAs []LoRA `json:"loras,omitempty" toml:"loras"`
}

// LoRA names a LoRA and its strength. Name is the file name as ComfyUI
// lists it ("sdxl/pixel-art.safetensors"); the A1111 payloads use its
// base name without the extension ("pixel-art"), as A1111 names LoRAs.
type LoRA struct {
	Name     string  `json:"name" toml:"name"`
	Strength float64 `json:"strength" toml:"strength"`
}

// UnmarshalJSON reads an entry strictly: an unknown field is an error
// that names it (a request's typo must not pass as "no control").
func (rc *RegionControl) UnmarshalJSON(data []byte) error {
	type plain RegionControl
	return strictJSON(data, (*plain)(rc), "region control")
}

// UnmarshalJSON reads a LoRA strictly.
func (l *LoRA) UnmarshalJSON(data []byte) error {
	type plain LoRA
	return strictJSON(data, (*plain)(l), "LoRA")
}

func strictJSON(data []byte, v any, what string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// loraStrengthLimit is CreateHookLora's strength range (-20..20).
const loraStrengthLimit = 20

// maxRegionLoRAs bounds the LoRAs of one region.
const maxRegionLoRAs = 8

// maxRequestRegions bounds a request's region controls: more than a plan
// has regions is a mistake, and each costs a pass over the layout.
const maxRequestRegions = 64

// validate reports the entry's problems under key (a config key or a
// request field).
func (rc RegionControl) validate(key string, p *core.Problems) {
	if strings.TrimSpace(rc.Object) == "" {
		p.Add(key+".object", "is empty: name an object by index or label, or \"background\"")
	}
	if rc.Weight < 0 || rc.Weight > maxWeight || math.IsNaN(rc.Weight) {
		p.Add(key+".weight", "%v is not in 0..%d (0 keeps the configured weight)", rc.Weight, maxWeight)
	}
	if len(rc.LoRAs) > maxRegionLoRAs {
		p.Add(key+".loras", "%d LoRAs, at most %d", len(rc.LoRAs), maxRegionLoRAs)
	}
	for i, l := range rc.LoRAs {
		lk := fmt.Sprintf("%s.loras[%d]", key, i)
		if problem := loraNameProblem(l.Name); problem != "" {
			p.Add(lk+".name", "%q %s", l.Name, problem)
		}
		if math.IsNaN(l.Strength) || math.Abs(l.Strength) > loraStrengthLimit {
			p.Add(lk+".strength", "%v is not in -%d..%d", l.Strength, loraStrengthLimit, loraStrengthLimit)
		}
	}
}

// loraNameProblem says why a LoRA file name cannot be written into the
// formats: A1111's "<lora:name:strength>" ends at ">" and splits at ":",
// and a name is a path below ComfyUI's loras folder.
func loraNameProblem(name string) string {
	switch {
	case strings.TrimSpace(name) == "":
		return "is empty"
	case strings.TrimSpace(name) != name:
		return "has spaces around it"
	case strings.ContainsAny(name, "<>:|\\\"") || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' }):
		return `has a character a prompt cannot carry (< > : | \ " or a control character)`
	case strings.HasPrefix(name, "/") || strings.Contains("/"+name+"/", "/../"):
		return "is not a path inside the loras folder"
	case a1111LoRAName(name) == "":
		return "has no name before its extension"
	}
	return ""
}

// a1111LoRAName is the name A1111 gives a LoRA file: its base name
// without the extension.
func a1111LoRAName(file string) string {
	base := file[strings.LastIndex(file, "/")+1:]
	if dot := strings.LastIndex(base, "."); dot > 0 {
		base = base[:dot]
	}
	return base
}

// regionControl is what the controls ask of one region, merged.
type regionControl struct {
	prompt, negative string
	weight           float64
	loras            []LoRA
	set              bool
}

// resolveControls merges the config's and the request's entries by the
// region they name (index into p.Regions). Entries that name no region
// are noted.
func resolveControls(l layouts.Layout, entries []RegionControl, notes *[]string) []regionControl {
	out := make([]regionControl, len(l.Objects)+1)
	for _, e := range entries {
		i, ok := controlTarget(l, e.Object)
		if !ok {
			*notes = append(*notes, fmt.Sprintf("region control for %q: no object has that index or label (nor is it \"background\"); not applied", e.Object))
			continue
		}
		rc := &out[i]
		rc.set = true
		if e.Prompt != "" {
			rc.prompt = e.Prompt
		}
		if e.Negative != "" {
			rc.negative = e.Negative
		}
		if e.Weight != 0 {
			rc.weight = e.Weight
		}
		if e.LoRAs != nil {
			rc.loras = e.LoRAs
		}
	}
	return out
}

// controlTarget finds the region an entry names: an index, a label
// (case-insensitive, first match) or "background" (the last region).
func controlTarget(l layouts.Layout, key string) (int, bool) {
	key = strings.Join(strings.Fields(key), " ")
	if i, err := strconv.Atoi(key); err == nil {
		return i, i >= 0 && i < len(l.Objects)
	}
	for i, o := range l.Objects {
		if strings.EqualFold(o.Label, key) {
			return i, true
		}
	}
	if strings.EqualFold(key, "background") {
		return len(l.Objects), true
	}
	return 0, false
}

// applyControl puts a region's control into it: extra prompt terms within
// the region's CLIP window, its negative within one window, its weight
// and LoRAs.
func (c *Composer) applyControl(r *Region, rc regionControl, notes *[]string) {
	if !rc.set {
		return
	}
	if extra := strings.Join(splitTerms(rc.prompt), phraseSep); extra != "" {
		r.Prompt = c.fitExtra(r.Prompt, extra, fmt.Sprintf("region %d (%s) prompt", r.Index, r.Label), notes)
	}
	if neg := strings.Join(splitTerms(rc.negative), phraseSep); neg != "" {
		r.Negative = c.fitExtra("", neg, fmt.Sprintf("region %d (%s) negative prompt", r.Index, r.Label), notes)
	}
	if rc.weight != 0 {
		r.Weight = rc.weight
	}
	r.LoRAs = rc.loras
}

// fitExtra appends extra to base within one CLIP window, dropping extra's
// last words (noted) when they do not fit.
func (c *Composer) fitExtra(base, extra, what string, notes *[]string) string {
	join := func(e string) string {
		if base == "" {
			return e
		}
		return base + phraseSep + e
	}
	words := strings.Fields(extra)
	for n := len(words); n > 0; n-- {
		if text := join(strings.Join(words[:n], " ")); c.tokens(text) <= WindowTokens {
			if n < len(words) {
				*notes = append(*notes, fmt.Sprintf("%s: kept %d of %d added words to fit one CLIP window", what, n, len(words)))
			}
			return text
		}
	}
	*notes = append(*notes, fmt.Sprintf("%s: no added word fits in its CLIP window; left out", what))
	return base
}
