package sdxl

import (
	"fmt"
	"image"
	"math"
	"sort"
	"strings"

	"paliprompt/core"
	"paliprompt/internal/pngenc"

	"paliprompt/layouts"
)

// Request carries a request's SDXL options: the "sdxl" object of a JSON
// request. Zero values take the configured defaults.
type Request struct {
	// Width and Height force the canvas size (both or neither; multiples
	// of 8 in 256..4096).
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// Positive and Negative are extra prompt terms, comma-separated; they
	// are escaped (see Escape).
	Positive string `json:"positive,omitempty"`
	Negative string `json:"negative,omitempty"`
	// Seed, Steps and CFG override the ComfyUI sampler settings.
	Seed  *int64  `json:"seed,omitempty"`
	Steps int     `json:"steps,omitempty"`
	CFG   float64 `json:"cfg,omitempty"`
	// ID names the mask files (set by the plugin from the request id).
	ID string `json:"-"`
	// Lang is the request language, to match the style questions'
	// answers (set by the plugin; empty: "en").
	Lang string `json:"-"`
	// Formats are the consumer formats to build (set by the plugin from
	// the request's "include"); nil builds them all.
	Formats []string `json:"-"`
}

// Plan is the SDXL generation plan for one layout.
type Plan struct {
	Width  int `json:"width"`
	Height int `json:"height"`
	// Positive is the global prompt: its chunks joined by " BREAK ", each
	// chunk one CLIP window, cut only between phrases.
	Positive       string   `json:"positive"`
	PositiveChunks []string `json:"positive_chunks"`
	Negative       string   `json:"negative"`
	NegativeChunks []string `json:"negative_chunks"`
	// Regions are one per layout object, in layout order, then the
	// background. Their masks sum to white at every pixel.
	Regions []Region `json:"regions"`
	// TokenCounter says how tokens were counted: "tokenizer" or "estimate".
	TokenCounter string `json:"token_counter"`
	// The consumer formats (Formats): each left out when the request
	// names formats without it.
	ComfyUI          Graph            `json:"comfyui,omitempty"`
	RegionalPrompter RegionalPrompter `json:"regional_prompter,omitzero"`
	ForgeCouple      ForgeCouple      `json:"forge_couple,omitzero"`
	Omost            OmostCanvas      `json:"omost,omitzero"`
	// Notes say what was shortened, cut or left out, and why.
	Notes []string `json:"notes,omitempty"`

	depthOrder []int // object regions, nearest first
}

// Region is one regional prompt with its mask.
type Region struct {
	Index int `json:"index"`
	// Object is the layout object's index, -1 for the background.
	Object int     `json:"object"`
	Label  string  `json:"label"`
	Prompt string  `json:"prompt"`
	Tokens int     `json:"tokens"`
	Weight float64 `json:"weight"`
	// Box is the object's placed box (normalized); nil for the background.
	Box *core.Box `json:"box,omitempty"`
	// Coverage is the mean of the mask: the share of the canvas.
	Coverage float64 `json:"coverage"`
	// MaskFile is the name the consumer formats use for Mask.
	MaskFile string `json:"mask_file"`
	// Mask is the PNG of Image (8-bit grey at the canvas size, white where
	// the region applies), when the caller has encoded Plan.Files (the
	// plugin moves it to the reply's masks).
	Mask []byte `json:"mask"`

	image   *image.Gray
	bounds  image.Rectangle // holds every non-zero pixel of image
	hasMask bool
}

// Image returns the region's mask.
func (r Region) Image() *image.Gray { return r.image }

// Composer turns layouts into plans. It holds its validated Config and
// token counter and is safe for concurrent use if the counter is.
type Composer struct {
	cfg     Config
	buckets []bucket
	counter TokenCounter
	ignored map[string]bool
	counted string
}

// New returns a Composer for a validated cfg. counter counts CLIP tokens;
// nil uses EstimateCounter.
func New(cfg Config, counter TokenCounter) (*Composer, error) {
	buckets, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	c := &Composer{cfg: cfg, buckets: buckets, counter: counter, counted: "tokenizer", ignored: map[string]bool{}}
	if counter == nil {
		c.counter, c.counted = EstimateCounter{}, "estimate"
	}
	for _, a := range cfg.IgnoreAnswers {
		c.ignored[strings.ToLower(strings.TrimSpace(a))] = true
	}
	return c, nil
}

// Config returns the composer's configuration.
func (c *Composer) Config() Config { return c.cfg }

// Compose builds the plan for a layout. It fails only on request options
// it cannot honour (errors wrap ErrBadRequest) or an invalid layout.
func (c *Composer) Compose(l layouts.Layout, req Request) (Plan, error) {
	if l.Width <= 0 || l.Height <= 0 {
		return Plan{}, core.Errorf(core.ErrBadRequest, "layout has no image size (%dx%d)", l.Width, l.Height)
	}
	if req.Steps < 0 || req.Steps > 1000 || math.IsNaN(req.CFG) || req.CFG < 0 || req.CFG > 100 || (req.Seed != nil && *req.Seed < 0) {
		return Plan{}, core.Errorf(core.ErrBadRequest, "steps must be in 1..1000, cfg in 0..100 and seed >= 0")
	}
	b, err := c.chooseBucket(l.Width, l.Height, req)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Width: b.W, Height: b.H, TokenCounter: c.counted}
	styles := c.styleAnswers(l, req.Lang)
	p.PositiveChunks = c.chunk(c.globalPhrases(l, styles, req), "positive prompt", &p.Notes)
	p.Positive = strings.Join(p.PositiveChunks, " BREAK ")
	p.NegativeChunks = c.chunk(append(splitTermsTrusted(c.cfg.Negative), splitTerms(req.Negative)...), "negative prompt", &p.Notes)
	p.Negative = strings.Join(p.NegativeChunks, " BREAK ")
	if err := c.buildRegions(&p, l, req.ID); err != nil {
		return Plan{}, err
	}
	base := strings.Join(p.PositiveChunks, phraseSep)
	if req.wants(FormatRegionalPrompter) {
		if p.RegionalPrompter, err = c.regionalPrompter(&p, base, req.ID); err != nil {
			return Plan{}, err
		}
	}
	if req.wants(FormatComfyUI) {
		p.ComfyUI = c.comfyGraph(c.comfyRun(&p, req))
	}
	if req.wants(FormatForgeCouple) {
		p.ForgeCouple = c.forgeCouple(&p, base)
	}
	if req.wants(FormatOmost) {
		p.Omost = c.omost(l, &p, styles)
	}
	return p, nil
}

// globalPhrases are the global prompt's phrases in order: caption, a
// sentence per object, style answers, configured style terms, request
// terms.
func (c *Composer) globalPhrases(l layouts.Layout, styles []string, req Request) []string {
	var out []string
	if caption := Escape(l.Caption); caption != "" {
		out = append(out, caption)
	}
	for _, o := range l.Objects {
		out = append(out, Escape(o.Sentence))
	}
	out = append(out, styles...)
	out = append(out, c.cfg.StyleTerms...)
	return append(out, splitTerms(req.Positive)...)
}

// splitTermsTrusted splits configured terms at commas without escaping.
func splitTermsTrusted(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// buildRegions makes one region per object and the background, with
// their masks at the canvas size.
func (c *Composer) buildRegions(p *Plan, l layouts.Layout, id string) error {
	labels := make([]string, len(l.Objects))
	for i, o := range l.Objects {
		labels[i] = o.Label
	}
	own := make([]*image.Gray, len(l.Objects))
	bounds := make([]image.Rectangle, len(l.Objects))
	for i := range l.Objects {
		own[i], bounds[i] = c.objectRaster(&l.Objects[i], p.Width, p.Height)
	}
	masks, bgMask := c.resolveMasks(l.Objects, own, bounds, p.Width, p.Height)
	for i, o := range l.Objects {
		others := append(append([]string(nil), labels[:i]...), labels[i+1:]...)
		prompt := c.regionPrompt(subject(l.Caption, o.Label, others), o, &p.Notes)
		box := o.Placed
		p.Regions = append(p.Regions, Region{
			Index: i, Object: i, Label: o.Label, Prompt: prompt, Weight: c.cfg.ObjectWeight, Box: &box,
			image: masks[i], bounds: bounds[i], hasMask: o.HasMask,
		})
	}
	p.Regions = append(p.Regions, Region{
		Index: len(l.Objects), Object: -1, Label: "background", Prompt: c.backgroundPrompt(l.Caption, labels),
		Weight: c.cfg.BackgroundWeight, image: bgMask, bounds: bgMask.Rect,
	})
	for i := range p.Regions {
		r := &p.Regions[i]
		r.Tokens = c.tokens(r.Prompt)
		r.Coverage = core.Round(coverage(r.image, r.bounds), 4)
		r.MaskFile = maskFileName(c.cfg.MaskPrefix, id, fmt.Sprintf("%02d-%s", i, slug(r.Label)))
		if r.Coverage == 0 {
			p.Notes = append(p.Notes, fmt.Sprintf("region %d (%s) has an empty mask: nearer objects cover it", i, r.Label))
		}
	}
	p.depthOrder = seq(len(l.Objects))
	sort.SliceStable(p.depthOrder, func(a, b int) bool { return l.Objects[p.depthOrder[a]].Depth < l.Objects[p.depthOrder[b]].Depth })
	return nil
}

// backgroundPrompt is the scene phrase of the caption, if any, and the
// configured background words.
func (c *Composer) backgroundPrompt(caption string, labels []string) string {
	prompt := c.cfg.Background
	if scene := Escape(scenePhrase(caption, labels)); scene != "" {
		prompt = scene + phraseSep + prompt
	}
	if c.tokens(prompt) > WindowTokens {
		return c.cfg.Background
	}
	return prompt
}

// comfyRun collects what the ComfyUI graph needs.
func (c *Composer) comfyRun(p *Plan, req Request) comfyRun {
	r := comfyRun{width: p.Width, height: p.Height, positive: p.PositiveChunks, negative: p.NegativeChunks,
		regions: p.Regions, seed: c.cfg.ComfyUI.Seed, steps: c.cfg.ComfyUI.Steps, cfg: c.cfg.ComfyUI.CFG}
	if req.Seed != nil {
		r.seed = *req.Seed
	}
	if req.Steps > 0 {
		r.steps = req.Steps
	}
	if req.CFG > 0 {
		r.cfg = req.CFG
	}
	return r
}

// File is one image of the plan that a consumer format names: its file
// name, the image, and the plan's field for its PNG bytes. sdxl makes the
// images; encoding them (PNGEncode, or the plugin's own encoder pool) is
// the caller's, so that a caller asks only for what it sends.
type File struct {
	Name  string
	Image image.Image
	PNG   *[]byte
}

// Files lists every image of the plan, in order: the regions' masks, then
// the Regional Prompter colour mask. It is the one list of them.
func (p *Plan) Files() []File {
	var out []File
	for i := range p.Regions {
		r := &p.Regions[i]
		out = append(out, File{r.MaskFile, r.image, &r.Mask})
	}
	if rp := &p.RegionalPrompter; rp.MaskFile != "" && rp.image != nil {
		out = append(out, File{rp.MaskFile, rp.image, &rp.Mask})
	}
	return out
}

// EncodeFiles encodes every file of the plan to PNG in place.
func (p *Plan) EncodeFiles() error {
	for _, f := range p.Files() {
		data, err := pngenc.Bytes(f.Image)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		*f.PNG = data
	}
	return nil
}

// MaskFiles lists the file names of Files.
func (p *Plan) MaskFiles() []string {
	var out []string
	for _, f := range p.Files() {
		out = append(out, f.Name)
	}
	return out
}

// Canvas returns the plan's canvas for layouts' preview.
func (p Plan) Canvas() layouts.Canvas {
	c := layouts.Canvas{Width: p.Width, Height: p.Height}
	for _, r := range p.Regions {
		c.Regions = append(c.Regions, layouts.CanvasRegion{Label: r.Label, Color: r.Object, Prompt: r.Prompt, Mask: r.image, Bounds: r.bounds})
	}
	return c
}

// maskFileName builds a file-name-safe mask name.
func maskFileName(prefix, id, what string) string {
	if id = slug(id); id != "" {
		return fmt.Sprintf("%s_%s_%s.png", prefix, id, what)
	}
	return fmt.Sprintf("%s_%s.png", prefix, what)
}

// slug keeps letters, digits and '-' of s (lowercased), other runs as '-',
// at most 40 characters.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 40 {
			break
		}
	}
	return strings.Trim(b.String(), "-")
}
