package sdxl

import (
	"fmt"
	"image"
	"math"
	"sort"
	"strings"
	"time"

	"paliprompt/core"

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
	// Seed, Steps, CFG, Sampler and Scheduler override the sampler
	// settings of [sdxl.comfyui] (ComfyUI KSampler names; the A1111
	// payloads use A1111's names for them).
	Seed      *int64  `json:"seed,omitempty"`
	Steps     int     `json:"steps,omitempty"`
	CFG       float64 `json:"cfg,omitempty"`
	Sampler   string  `json:"sampler,omitempty"`
	Scheduler string  `json:"scheduler,omitempty"`
	// Regions are per-region controls, after the configured ones.
	Regions []RegionControl `json:"regions,omitempty"`
	// Hints turns conditioning images from the reference on or off.
	Hints *HintRequest `json:"hints,omitempty"`
	// Reference is the reference image, for the hints (set by the plugin;
	// nil for layout requests without an image).
	Reference image.Image `json:"-"`
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
	// GlobalWeight is the global prompt's weight beside the regions'
	// (config global_weight).
	GlobalWeight float64 `json:"global_weight"`
	// TokenCounter says how tokens were counted: "tokenizer" or "estimate".
	TokenCounter string `json:"token_counter"`
	// The consumer formats (Formats): each left out when the request
	// names formats without it.
	ComfyUI          Graph            `json:"comfyui,omitempty"`
	RegionalPrompter RegionalPrompter `json:"regional_prompter,omitzero"`
	ForgeCouple      ForgeCouple      `json:"forge_couple,omitzero"`
	Omost            OmostCanvas      `json:"omost,omitzero"`
	// Hints are the conditioning images from the reference that were
	// asked for (none by default).
	Hints Hints `json:"hints,omitzero"`
	// WebUI holds the A1111 / Forge API requests (Regional Prompter and
	// Forge Couple), each ready to POST (format a1111).
	WebUI WebUIPayloads `json:"a1111,omitzero"`
	// Notes say what was shortened, cut or left out, and why.
	Notes []string `json:"notes,omitempty"`

	depthOrder []int  // object regions, nearest first
	id         string // the request id, for file names
	// pngs is where the A1111 bodies' InlinePNGs read their bytes (shared
	// by copies of the plan); inlined names the files they carry.
	pngs    *pngSource
	inlined map[string]bool
	// colorOnly is the Regional Prompter colour mask when only an A1111
	// body carries it (the request did not ask for regional_prompter).
	colorOnly *planImage
	timings   []core.Timing // Compose's costly parts (Timings)
	own       []*image.Gray // each object's own mask on the canvas, before overlaps (for the hints)
	// owner is the region owning each pixel (the largest mask there, ties
	// to the nearer), wins each region's count: made once, for Regional
	// Prompter's colour mask or the segmentation hint (regionOwners).
	owner, wins []int
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
	// Share is the region's own prompt's share of the conditioning where
	// its mask is white: weight/(global_weight+weight), the same in the
	// ComfyUI graph, Regional Prompter (Mask mode) and Forge Couple (Mask
	// mode).
	Share float64 `json:"share"`
	// Negative is the region's own negative prompt (region control); it
	// applies inside the region with the global negative.
	Negative string `json:"negative,omitempty"`
	// LoRAs apply to this region only (region control), where a format can.
	LoRAs []LoRA `json:"loras,omitempty"`
	// Box is the object's placed box (normalized); nil for the background.
	Box *core.Box `json:"box,omitempty"`
	// Coverage is the mean of the mask: the share of the canvas.
	Coverage float64 `json:"coverage"`
	// MaskFile is the name the consumer formats use for Mask. It ends in
	// a hash of the mask's pixels, so that a name never stands for two
	// different masks (ComfyUI renames an upload whose name exists with
	// other content, unless overwrite=true).
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
	if err := c.checkRequest(req); err != nil {
		return Plan{}, err
	}
	b, err := c.chooseBucket(l.Width, l.Height, req)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Width: b.W, Height: b.H, TokenCounter: c.counted, GlobalWeight: c.cfg.GlobalWeight, id: req.ID,
		pngs: &pngSource{}, inlined: map[string]bool{}}
	styles := c.styleAnswers(l, req.Lang)
	p.PositiveChunks = c.chunk(c.globalPhrases(l, styles, req), "positive prompt", &p.Notes)
	p.Positive = strings.Join(p.PositiveChunks, " BREAK ")
	p.NegativeChunks = c.chunk(append(splitTermsTrusted(c.cfg.Negative), splitTerms(req.Negative)...), "negative prompt", &p.Notes)
	p.Negative = strings.Join(p.NegativeChunks, " BREAK ")
	hints, err := c.hintsWanted(req, &p.Notes)
	if err != nil {
		return Plan{}, err
	}
	controls := resolveControls(l, append(append([]RegionControl(nil), c.cfg.Regions...), req.Regions...), &p.Notes)
	if err := c.buildRegions(&p, l, controls); err != nil {
		return Plan{}, err
	}
	base := strings.Join(p.PositiveChunks, phraseSep)
	a1111 := req.wants(FormatA1111)
	var rp RegionalPrompter
	if req.wants(FormatRegionalPrompter) || a1111 {
		if rp, err = c.regionalPrompter(&p, base); err != nil {
			return Plan{}, err
		}
	}
	if req.wants(FormatRegionalPrompter) {
		p.RegionalPrompter = rp
	} else if a1111 {
		p.colorOnly = &planImage{name: rp.MaskFile, image: rp.image} // only the A1111 body carries it
	}
	if err := c.makeHints(&p, l, req.Reference, hints); err != nil {
		return Plan{}, err
	}
	run := c.comfyRun(&p, req)
	if req.wants(FormatComfyUI) {
		p.ComfyUI = c.comfyGraph(run)
	}
	var fc ForgeCouple
	if req.wants(FormatForgeCouple) || a1111 {
		fc = c.forgeCouple(&p, base)
	}
	if req.wants(FormatForgeCouple) {
		p.ForgeCouple = fc
	}
	if a1111 {
		p.WebUI = c.webUIPayloads(&p, rp, fc, run)
	}
	if req.wants(FormatOmost) {
		p.Omost = c.omost(l, &p, styles)
	}
	c.noteFormatLimits(&p)
	c.noteUnwiredHints(&p)
	return p, nil
}

// Timings are the parts of Compose that cost most, one after another:
// the hints (edges, segmentation, start canvas, crops) that were made;
// none without them. A caller times Compose as a whole and gives these
// as its parts (the plugin's "sdxl" stage).
func (p Plan) Timings() []core.Timing { return p.timings }

// timed runs f as a part of Compose named stage (Timings).
func (p *Plan) timed(stage string, f func()) {
	start := time.Now()
	f()
	p.timings = append(p.timings, core.Timing{Stage: stage, Duration: time.Since(start)})
}

// checkRequest reports every request option it cannot honour, as one
// ErrBadRequest naming each.
func (c *Composer) checkRequest(req Request) error {
	p := core.NewProblems("sdxl")
	if req.Steps < 0 || req.Steps > 1000 {
		p.Add("steps", "%d is out of range: use 1..1000", req.Steps)
	}
	if math.IsNaN(req.CFG) || req.CFG < 0 || req.CFG > 100 {
		p.Add("cfg", "%v is out of range: use 0..100", req.CFG)
	}
	if req.Seed != nil && *req.Seed < 0 {
		p.Add("seed", "%d is negative: use 0 or more", *req.Seed)
	}
	sampler, scheduler := c.samplerOf(req)
	if problem := samplerProblem(sampler, scheduler); problem != "" {
		p.Add("sampler", "%s", problem)
	}
	if len(req.Regions) > maxRequestRegions {
		p.Add("regions", "%d region controls, at most %d", len(req.Regions), maxRequestRegions)
	}
	for i, rc := range req.Regions {
		rc.validate(fmt.Sprintf("regions[%d]", i), p)
	}
	if req.Hints != nil && (math.IsNaN(req.Hints.Denoise) || req.Hints.Denoise < 0 || req.Hints.Denoise > 1) {
		p.Add("hints.denoise", "%v is out of range: use 0.01..1 (0 keeps the configured)", req.Hints.Denoise)
	}
	if err := p.Err(); err != nil {
		return core.Errorf(core.ErrBadRequest, "%s", err.Error())
	}
	return nil
}

// samplerOf is the request's sampler and scheduler, else the configured.
func (c *Composer) samplerOf(req Request) (string, string) {
	sampler, scheduler := c.cfg.ComfyUI.Sampler, c.cfg.ComfyUI.Scheduler
	if req.Sampler != "" {
		sampler = req.Sampler
	}
	if req.Scheduler != "" {
		scheduler = req.Scheduler
	}
	return sampler, scheduler
}

// noteFormatLimits says which region controls a format could not carry.
func (c *Composer) noteFormatLimits(p *Plan) {
	for _, r := range p.Regions {
		if len(r.LoRAs) > 0 {
			p.Notes = append(p.Notes, fmt.Sprintf("region %d (%s): its LoRAs are hooks on its own conditioning in the ComfyUI graph and tags in its part of the Regional Prompter prompt (Latent mode); Forge Couple has no per-region LoRAs, so its payloads leave them out", r.Index, r.Label))
		}
		if r.Negative != "" {
			p.Notes = append(p.Notes, fmt.Sprintf("region %d (%s): its negative prompt is masked to it in the ComfyUI graph and in Regional Prompter's Mask mode; Regional Prompter's Matrix mode and Forge Couple take one negative prompt for the whole image, so their payloads use the global one", r.Index, r.Label))
		}
	}
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
// their masks at the canvas size and their controls applied.
func (c *Composer) buildRegions(p *Plan, l layouts.Layout, controls []regionControl) error {
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
	p.own = own
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
		c.applyControl(r, controls[i], &p.Notes)
		r.Tokens = c.tokens(r.Prompt)
		r.Share = core.Round(r.Weight/(c.cfg.GlobalWeight+r.Weight), 4)
		r.Coverage = core.Round(coverage(r.image, r.bounds), 4)
		if r.Coverage == 0 {
			p.Notes = append(p.Notes, fmt.Sprintf("region %d (%s) has an empty mask (nearer objects cover it): left out of the ComfyUI graph, Regional Prompter and Forge Couple, where it would cost a model pass per step for nothing", i, r.Label))
		}
		r.MaskFile = contentFileName(c.cfg.MaskPrefix, p.id, fmt.Sprintf("%02d-%s", i, slug(r.Label)), r.image)
	}
	p.depthOrder = seq(len(l.Objects))
	sort.SliceStable(p.depthOrder, func(a, b int) bool { return l.Objects[p.depthOrder[a]].Depth < l.Objects[p.depthOrder[b]].Depth })
	return nil
}

// conditioned lists the regions the formats condition on: those whose
// mask is not empty.
func (p *Plan) conditioned() []Region {
	var out []Region
	for _, r := range p.Regions {
		if r.Coverage > 0 {
			out = append(out, r)
		}
	}
	return out
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

// comfyRun collects what the ComfyUI graph (and the WebUI payloads)
// need: the plan's prompts and regions, the sampler settings with the
// request's overrides.
func (c *Composer) comfyRun(p *Plan, req Request) comfyRun {
	r := comfyRun{width: p.Width, height: p.Height, positive: p.PositiveChunks, negative: p.NegativeChunks,
		regions: p.conditioned(), globalWeight: c.cfg.GlobalWeight,
		seed: c.cfg.ComfyUI.Seed, steps: c.cfg.ComfyUI.Steps, cfg: c.cfg.ComfyUI.CFG,
		hints: &p.Hints, controlNet: c.cfg.ControlNet, ipAdapter: c.cfg.IPAdapter}
	r.sampler, r.scheduler = c.samplerOf(req)
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

// Canvas returns the plan's canvas for layouts' preview, with the hints
// that were made as small panels.
func (p Plan) Canvas() layouts.Canvas {
	c := layouts.Canvas{Width: p.Width, Height: p.Height}
	for _, r := range p.Regions {
		c.Regions = append(c.Regions, layouts.CanvasRegion{Label: r.Label, Color: r.Object, Prompt: r.Prompt, Mask: r.image, Bounds: r.bounds})
	}
	for _, h := range []struct {
		title string
		img   *HintImage
	}{{"edge hint", p.Hints.Edges}, {"segmentation hint", p.Hints.Segmentation}, {"start canvas", p.Hints.StartCanvas}} {
		if h.img != nil {
			c.Panels = append(c.Panels, layouts.CanvasPanel{Title: h.title, Image: h.img.image})
		}
	}
	return c
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
