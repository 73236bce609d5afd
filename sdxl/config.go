package sdxl

import (
	"fmt"
	"strings"

	"paliprompt/core"
)

// Config tunes prompt composition, masks and the consumer formats. It is
// the [sdxl] table of config.toml; DefaultConfig gives the defaults,
// Validate (and New) check it.
type Config struct {
	// Buckets are the candidate canvas sizes, "WIDTHxHEIGHT", multiples
	// of 8 (SDXL's latent); the one nearest the reference's aspect ratio
	// is used unless a request forces a size.
	Buckets []string `toml:"buckets"`
	// Tokenizer is the path of a CLIP tokenizer.json (e.g. the SDXL
	// checkpoint's tokenizer/tokenizer.json). The plugin loads it with
	// grounding's tokenizer binding and passes the counter to New; sdxl
	// itself reads no files. Empty: the documented estimate (tokens.go).
	Tokenizer string `toml:"tokenizer"`

	// StyleTerms are appended to the global prompt. They are trusted
	// configuration and may use the attention syntax, e.g. "(detailed:1.1)".
	StyleTerms []string `toml:"style_terms"`
	// Negative is the negative prompt; request terms are appended.
	Negative string `toml:"negative"`
	// StyleQuestions are PaliGemma prefixes run on the image with the
	// other tasks (the plugin passes StylePrefixes to the grounder); each
	// answer enters the global prompt through its Format. Empty: none.
	StyleQuestions []StyleQuestion `toml:"style_questions"`
	// IgnoreAnswers are answers that say nothing (case-insensitive).
	IgnoreAnswers []string `toml:"ignore_answers"`
	// Background names the background region ("background"); a scene
	// phrase from the caption is put before it when one is found.
	Background string `toml:"background"`

	// GlobalWeight is the weight of the global prompt beside the regions'
	// weights. Where a region's mask is white, its own prompt has
	// weight/(global_weight+weight) of the conditioning in every format
	// (Region.Share): ComfyUI (the global prompt's strength), Regional
	// Prompter (each region's base ratio is global/(global+weight)) and
	// Forge Couple (the global line's weight).
	GlobalWeight float64 `toml:"global_weight"`
	// ObjectWeight and BackgroundWeight are the region weights (ComfyUI
	// ConditioningSetMask strength, Forge Couple weight, Regional Prompter
	// base ratio through GlobalWeight).
	ObjectWeight     float64 `toml:"object_weight"`
	BackgroundWeight float64 `toml:"background_weight"`
	// FeatherPx softens the edge of a box mask (objects without a
	// segmentation mask) over this many pixels of the canvas, centred on
	// the box edge. 0: hard edges.
	FeatherPx int `toml:"feather_px"`
	// Overlap resolves pixels claimed by several objects: "depth" (the
	// nearer object wins, soft edges composite front to back) or
	// "average" (they share the pixel in proportion to their masks).
	Overlap string `toml:"overlap"`
	// MaskPrefix starts the file names of the mask PNGs.
	MaskPrefix string `toml:"mask_prefix"`

	// Regions are per-region controls applied to every plan (a request's
	// "regions" come after them).
	Regions []RegionControl `toml:"regions"`

	ComfyUI ComfyUIConfig `toml:"comfyui"`
	// Hints, ControlNet and IPAdapter set the conditioning images from the
	// reference (hints.go) and how the formats use them.
	Hints      HintsConfig       `toml:"hints"`
	ControlNet ControlNetsConfig `toml:"controlnet"`
	IPAdapter  IPAdapterConfig   `toml:"ipadapter"`
}

// StyleQuestion is one VQA pass and how its answer is used.
type StyleQuestion struct {
	// Prefix is the PaliGemma prefix; "{lang}" is replaced by the
	// request language, e.g. "answer {lang} what is the art style of this image?".
	Prefix string `toml:"prefix"`
	// Format puts the answer into the global prompt; "{answer}" is
	// replaced by the (escaped) answer, e.g. "{answer} style".
	Format string `toml:"format"`
}

// ComfyUIConfig sets the generation parts of the ComfyUI graph.
type ComfyUIConfig struct {
	// Checkpoint is the SDXL checkpoint's file name as ComfyUI lists it;
	// the A1111 payloads ask for the same name (override_settings).
	Checkpoint string  `toml:"checkpoint"`
	Steps      int     `toml:"steps"`
	CFG        float64 `toml:"cfg"`
	// Sampler and Scheduler are ComfyUI KSampler names (the A1111
	// payloads use the same sampler under its A1111 name).
	Sampler   string `toml:"sampler"`
	Scheduler string `toml:"scheduler"`
	Seed      int64  `toml:"seed"`
	// TextEncoder is "sdxl" (CLIPTextEncodeSDXL with the bucket sizes) or
	// "plain" (CLIPTextEncode).
	TextEncoder string `toml:"text_encoder"`
	// SetCondArea is ConditioningSetMask's set_cond_area: "default" or
	// "mask bounds".
	SetCondArea    string `toml:"set_cond_area"`
	FilenamePrefix string `toml:"filename_prefix"`
}

// StandardBuckets are SDXL's nine ~1 MP training resolutions.
var StandardBuckets = []string{
	"1024x1024", "1152x896", "896x1152", "1216x832", "832x1216",
	"1344x768", "768x1344", "1536x640", "640x1536",
}

// PhotoStyleQuestions are style questions worth asking the real PaliGemma
// 2 mix model about a photograph or artwork (config.toml lists them,
// commented out). They are not the default: the bundled demo model knows
// only shapes and would answer them with noise.
var PhotoStyleQuestions = []StyleQuestion{
	{Prefix: "answer {lang} what is the art style of this image?", Format: "{answer} style"},
	{Prefix: "answer {lang} what is the lighting in this image?", Format: "{answer} lighting"},
	{Prefix: "answer {lang} what are the main colors of this image?", Format: "{answer} color palette"},
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Buckets:          append([]string(nil), StandardBuckets...),
		StyleTerms:       []string{"high quality", "detailed"},
		Negative:         "lowres, blurry, jpeg artifacts, watermark, text, deformed",
		StyleQuestions:   []StyleQuestion{},
		IgnoreAnswers:    []string{"unanswerable", "none", "no", "yes", "unknown", "i don't know", "nothing"},
		Background:       "background",
		GlobalWeight:     0.4,
		ObjectWeight:     1.0,
		BackgroundWeight: 0.8,
		FeatherPx:        24,
		Overlap:          OverlapDepth,
		MaskPrefix:       "paliprompt",
		Regions:          []RegionControl{},
		ComfyUI: ComfyUIConfig{
			Checkpoint: "sd_xl_base_1.0.safetensors", Steps: 30, CFG: 7, Sampler: "dpmpp_2m",
			Scheduler: "karras", TextEncoder: "sdxl", SetCondArea: "default", FilenamePrefix: "paliprompt",
		},
		Hints: HintsConfig{EdgeSigma: 1.4, EdgeLow: 50, EdgeHigh: 100, StartBlur: 24, Denoise: 0.9},
		ControlNet: ControlNetsConfig{
			Edges:        ControlNetConfig{Strength: 0.6, Start: 0, End: 0.6},
			Segmentation: ControlNetConfig{Strength: 0.5, Start: 0, End: 0.5},
		},
		IPAdapter: IPAdapterConfig{Weight: 0.6, WeightType: "linear", Start: 0, End: 1, A1111Module: "ip-adapter_clip_sdxl_plus_vith"},
	}
}

// Overlap policies.
const (
	OverlapDepth   = "depth"
	OverlapAverage = "average"
)

// Validate reports every invalid field, each under its [sdxl] key; the
// error is a core.ErrConfig.
func (c Config) Validate() error {
	_, err := c.validate()
	return err
}

func (c Config) validate() ([]bucket, error) {
	p := core.NewProblems("sdxl")
	buckets := parseBuckets(c.Buckets, p)
	p.FloatRange("global_weight", c.GlobalWeight, 0, maxWeight)
	p.FloatRange("object_weight", c.ObjectWeight, 0, maxWeight)
	p.FloatRange("background_weight", c.BackgroundWeight, 0, maxWeight)
	p.IntRange("feather_px", c.FeatherPx, 0, 512)
	p.OneOf("overlap", c.Overlap, OverlapDepth, OverlapAverage)
	if !safeName(c.MaskPrefix) {
		p.Add("mask_prefix", "%q is not allowed: use letters, digits, '-' and '_' only", c.MaskPrefix)
	}
	p.NotEmpty("background", c.Background)
	for i, q := range c.StyleQuestions {
		if strings.TrimSpace(q.Prefix) == "" || !strings.Contains(q.Format, "{answer}") {
			p.Add(fmt.Sprintf("style_questions[%d]", i), "needs a prefix and a format containing {answer}")
		}
	}
	cu := c.ComfyUI
	p.NotEmpty("comfyui.checkpoint", cu.Checkpoint)
	p.IntRange("comfyui.steps", cu.Steps, 1, 1000)
	p.FloatRange("comfyui.cfg", cu.CFG, 0, 100)
	if problem := samplerProblem(cu.Sampler, cu.Scheduler); problem != "" {
		p.Add("comfyui", "%s", problem)
	}
	if cu.Seed < 0 {
		p.Add("comfyui.seed", "%d is negative: use 0 or more", cu.Seed)
	}
	p.OneOf("comfyui.text_encoder", cu.TextEncoder, "sdxl", "plain")
	p.OneOf("comfyui.set_cond_area", cu.SetCondArea, "default", "mask bounds")
	p.NotEmpty("comfyui.filename_prefix", cu.FilenamePrefix)
	for i, rc := range c.Regions {
		rc.validate(fmt.Sprintf("regions[%d]", i), p)
	}
	c.validateHints(p)
	return buckets, p.Err()
}

// validateHints checks [sdxl.hints], [sdxl.controlnet] and [sdxl.ipadapter].
func (c Config) validateHints(p *core.Problems) {
	h := c.Hints
	p.FloatRange("hints.edge_sigma", h.EdgeSigma, 0, 20)
	p.FloatRange("hints.edge_low", h.EdgeLow, 0, 2040)
	p.FloatRange("hints.edge_high", h.EdgeHigh, h.EdgeLow, 2040)
	p.FloatRange("hints.start_blur", h.StartBlur, 0, 256)
	p.FloatRange("hints.denoise", h.Denoise, 0.01, 1)
	for name, cn := range map[string]ControlNetConfig{"edges": c.ControlNet.Edges, "segmentation": c.ControlNet.Segmentation} {
		key := "controlnet." + name
		p.FloatRange(key+".strength", cn.Strength, 0, 2) // ComfyUI takes 0..10, the A1111 extension 0..2
		p.FloatRange(key+".start", cn.Start, 0, 1)
		p.FloatRange(key+".end", cn.End, cn.Start, 1)
		if cn.Model != "" && loraNameProblem(cn.Model) != "" {
			p.Add(key+".model", "%q %s", cn.Model, loraNameProblem(cn.Model))
		}
	}
	ip := c.IPAdapter
	p.FloatRange("ipadapter.weight", ip.Weight, -1, 5)
	p.FloatRange("ipadapter.start", ip.Start, 0, 1)
	p.FloatRange("ipadapter.end", ip.End, ip.Start, 1)
	if types := comfySchema.choices("IPAdapterAdvanced", "weight_type"); !contains(types, ip.WeightType) {
		p.Add("ipadapter.weight_type", "%q is not one of ComfyUI_IPAdapter_plus's weight types: %s", ip.WeightType, strings.Join(types, ", "))
	}
	if (ip.Model == "") != (ip.ClipVision == "") {
		p.Add("ipadapter", "set both model and clip_vision, or neither")
	}
	for key, name := range map[string]string{"ipadapter.model": ip.Model, "ipadapter.clip_vision": ip.ClipVision} {
		if name != "" && loraNameProblem(name) != "" {
			p.Add(key, "%q %s", name, loraNameProblem(name))
		}
	}
}

// samplerProblem checks sampler and scheduler names against ComfyUI's
// KSampler lists (in the node schema snapshot), naming the valid ones.
func samplerProblem(sampler, scheduler string) string {
	var out []string
	if s := comfySchema.choices("KSampler", "sampler_name"); !contains(s, sampler) {
		out = append(out, fmt.Sprintf("sampler %q is not one of ComfyUI %s's samplers: %s", sampler, ComfyUIVersion, strings.Join(s, ", ")))
	}
	if s := comfySchema.choices("KSampler", "scheduler"); !contains(s, scheduler) {
		out = append(out, fmt.Sprintf("scheduler %q is not one of ComfyUI %s's schedulers: %s", scheduler, ComfyUIVersion, strings.Join(s, ", ")))
	}
	return strings.Join(out, "; ")
}

// maxWeight bounds region weights.
const maxWeight = 10

// safeName reports whether s is a non-empty file-name-safe word.
func safeName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
