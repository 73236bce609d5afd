package sdxl

import (
	"fmt"
	"image"
	"image/color"

	"paliprompt/core"
	"paliprompt/layouts"
)

// Conditioning images from the reference ("hints"): images derived from
// the reference that follow the layout, each made only when [sdxl.hints]
// turns it on or a request asks for it ("sdxl": {"hints": {...}}), each
// at the canvas size:
//
//   - Edges: a Canny edge map of the reference (edges.go), for a canny
//     ControlNet;
//   - Segmentation: each resolved region in its own flat colour (the
//     preview's colours), for a segmentation ControlNet;
//   - StartCanvas: the background and each object in its median colour,
//     softly blurred, as img2img's start image (startcanvas.go);
//   - Crops: each object's pixels under its soft mask, RGBA, at its placed
//     size, for image-prompt adapters (crops.go).
//
// Where a placement moved, resized or mirrored an object, its part of the
// edge map and its crop move with it and its old place shows background
// (no edges); the segmentation map and start canvas are painted from the
// regions, so they follow by construction. The reference reaches sdxl
// only as Request.Reference, which the plugin sets.

// HintsConfig is the [sdxl.hints] table.
type HintsConfig struct {
	// Edges, Segmentation, StartCanvas and Crops turn each image on for
	// every plan; a request can turn each on or off.
	Edges        bool `toml:"edges"`
	Segmentation bool `toml:"segmentation"`
	StartCanvas  bool `toml:"start_canvas"`
	Crops        bool `toml:"crops"`
	// EdgeSigma is the Gaussian blur before the gradient, in pixels of
	// the reference at the canvas size (or its own, when smaller);
	// EdgeLow and EdgeHigh are the hysteresis thresholds on the L1 Sobel
	// gradient magnitude of 8-bit RGB (the strongest channel), in OpenCV
	// Canny's units. ControlNet's canny preprocessor uses 100 and 200
	// without a blur; the blur lowers every gradient, hence 50 and 100
	// with sigma 1.4 (which keep 93% of the demo scenes' outlines and no
	// edges in their noisy backgrounds).
	EdgeSigma float64 `toml:"edge_sigma"`
	EdgeLow   float64 `toml:"edge_low"`
	EdgeHigh  float64 `toml:"edge_high"`
	// StartBlur is the start canvas's blur (Gaussian sigma in canvas
	// pixels); Denoise is img2img's denoising strength for it.
	StartBlur float64 `toml:"start_blur"`
	Denoise   float64 `toml:"denoise"`
}

// ControlNetConfig wires one hint into the formats: with a Model, the
// ComfyUI graph applies the hint with it (ControlNetLoader,
// ControlNetApplyAdvanced) and the A1111 payloads carry a ControlNet
// unit; without one the hint is in the plan but not wired.
type ControlNetConfig struct {
	// Model is the ControlNet file name as ComfyUI lists it; the A1111
	// unit uses its base name without the extension, as the ControlNet
	// extension finds models.
	Model    string  `toml:"model"`
	Strength float64 `toml:"strength"`
	// Start and End are the fractions of the sampling the hint applies
	// in (start_percent/end_percent; guidance_start/guidance_end).
	Start float64 `toml:"start"`
	End   float64 `toml:"end"`
}

// ControlNetsConfig is [sdxl.controlnet]: one ControlNet per hint kind.
type ControlNetsConfig struct {
	Edges        ControlNetConfig `toml:"edges"`
	Segmentation ControlNetConfig `toml:"segmentation"`
}

// IPAdapterConfig is [sdxl.ipadapter]: with Model and ClipVision set and
// crops on, the ComfyUI graph applies one IP-Adapter per object, masked
// to its region (ComfyUI_IPAdapter_plus: IPAdapterModelLoader,
// CLIPVisionLoader, IPAdapterAdvanced), and the A1111 payloads carry one
// ControlNet IP-Adapter unit per object with its region as the effective
// region mask.
type IPAdapterConfig struct {
	// Model and ClipVision are file names as ComfyUI lists them.
	Model      string  `toml:"model"`
	ClipVision string  `toml:"clip_vision"`
	Weight     float64 `toml:"weight"`
	// WeightType is IPAdapterAdvanced's weight_type ("linear", ...).
	WeightType string  `toml:"weight_type"`
	Start      float64 `toml:"start"`
	End        float64 `toml:"end"`
	// A1111Module is the ControlNet extension's IP-Adapter preprocessor
	// for Model ("ip-adapter_clip_sdxl_plus_vith" for the ViT-H SDXL
	// models, as the extension's own API tests pair them).
	A1111Module string `toml:"a1111_module"`
}

// HintRequest turns hints on or off for one request; nil keeps the
// configured setting.
type HintRequest struct {
	Edges        *bool `json:"edges,omitempty"`
	Segmentation *bool `json:"segmentation,omitempty"`
	StartCanvas  *bool `json:"start_canvas,omitempty"`
	Crops        *bool `json:"crops,omitempty"`
	// Denoise overrides [sdxl.hints] denoise.
	Denoise float64 `json:"denoise,omitempty"`
}

// UnmarshalJSON reads the hints strictly: an unknown one is an error.
func (h *HintRequest) UnmarshalJSON(data []byte) error {
	type plain HintRequest
	return strictJSON(data, (*plain)(h), "hints")
}

// Hints are the plan's conditioning images; each is nil unless it was
// turned on.
type Hints struct {
	Edges        *HintImage `json:"edges,omitempty"`
	Segmentation *HintImage `json:"segmentation,omitempty"`
	// Palette lists the segmentation map's colour of each region.
	Palette     []RegionColor `json:"palette,omitempty"`
	StartCanvas *HintImage    `json:"start_canvas,omitempty"`
	// Denoise is img2img's denoising strength for the start canvas.
	Denoise float64 `json:"denoise,omitempty"`
	// Colors are the start canvas's colours: each region's median colour
	// in the reference.
	Colors []RegionColor `json:"colors,omitempty"`
	Crops  []Crop        `json:"crops,omitempty"`
}

// HintImage is one conditioning image at the canvas size. PNG is its
// PNG when the caller has encoded Plan.Files (the plugin moves it to the
// reply's masks, under File).
type HintImage struct {
	File string `json:"file"`
	PNG  []byte `json:"png"`

	image image.Image
}

// Crop is one object's reference crop: RGBA, at its placed size on the
// canvas, alpha its soft mask. PNG as in HintImage.
type Crop struct {
	Region int    `json:"region"`
	Label  string `json:"label"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	File   string `json:"file"`
	PNG    []byte `json:"png"`

	image *image.NRGBA
}

// wanted are the hints one plan makes.
type wanted struct {
	edges, segmentation, startCanvas, crops bool
	denoise                                 float64
}

// hintsWanted merges the request's choices over the configuration. A
// hint a request asks for that needs the reference, when there is none,
// is a bad request; one only configured is noted and left out.
func (c *Composer) hintsWanted(req Request, notes *[]string) (wanted, error) {
	h, cfg := req.Hints, c.cfg.Hints
	pick := func(asked *bool, configured bool) (bool, bool) {
		if asked != nil {
			return *asked, *asked
		}
		return configured, false
	}
	var w wanted
	var askedEdges, askedStart, askedCrops bool
	var r HintRequest
	if h != nil {
		r = *h
	}
	w.edges, askedEdges = pick(r.Edges, cfg.Edges)
	w.segmentation, _ = pick(r.Segmentation, cfg.Segmentation)
	w.startCanvas, askedStart = pick(r.StartCanvas, cfg.StartCanvas)
	w.crops, askedCrops = pick(r.Crops, cfg.Crops)
	w.denoise = cfg.Denoise
	if r.Denoise != 0 {
		w.denoise = r.Denoise
	}
	if req.Reference != nil {
		return w, nil
	}
	for _, n := range []struct {
		on, asked *bool
		name      string
	}{{&w.edges, &askedEdges, "edges"}, {&w.startCanvas, &askedStart, "start_canvas"}, {&w.crops, &askedCrops, "crops"}} {
		if !*n.on {
			continue
		}
		if *n.asked {
			return wanted{}, core.Errorf(core.ErrBadRequest, "hint %s needs the reference image: send image_b64 or image_object with the request", n.name)
		}
		*notes = append(*notes, fmt.Sprintf("hint %s is configured but the request has no reference image: left out", n.name))
		*n.on = false
	}
	return w, nil
}

// makeHints builds the wanted hints of a plan whose regions and masks
// are made, each timed as a part of Compose (Plan.Timings).
func (c *Composer) makeHints(p *Plan, l layouts.Layout, ref image.Image, w wanted) error {
	h := &p.Hints
	if w.edges {
		p.timed("edges", func() { h.Edges = c.hintImage(p, "edges", c.edgeMap(ref, l, p)) })
	}
	if w.segmentation {
		p.timed("segmentation", func() {
			seg, palette := segmentationMap(p)
			h.Palette = palette
			h.Segmentation = c.hintImage(p, "segmentation", seg)
		})
	}
	if w.startCanvas {
		p.timed("start canvas", func() {
			canvas, colors := c.startCanvas(resizeTo(ref, p.Width, p.Height), l, p)
			h.Colors, h.Denoise = colors, w.denoise
			h.StartCanvas = c.hintImage(p, "start", canvas)
		})
	}
	if w.crops {
		p.timed("crops", func() { h.Crops = c.crops(ref, l, p) })
	}
	return nil
}

// hintImage names a hint after its pixels.
func (c *Composer) hintImage(p *Plan, what string, img image.Image) *HintImage {
	return &HintImage{File: contentFileName(c.cfg.MaskPrefix, p.id, what, img), image: img}
}

// segmentationMap paints each pixel in the colour of the region that
// owns it (the largest mask there, as in Regional Prompter's colour
// mask): objects in the preview's colours (layouts.ObjectColor of their
// index), the background black.
func segmentationMap(p *Plan) (*image.Paletted, []RegionColor) {
	pal := make(color.Palette, len(p.Regions))
	var out []RegionColor
	for i, r := range p.Regions {
		c := segmentationColor(r)
		pal[i] = c
		out = append(out, RegionColor{Region: i, Label: r.Label, Color: hexColor(c)})
	}
	if len(pal) > 256 {
		pal = pal[:256]
	}
	img := image.NewPaletted(image.Rect(0, 0, p.Width, p.Height), pal)
	owner, _ := p.regionOwners()
	for px, ri := range owner {
		img.Pix[px] = uint8(min(ri, 255))
	}
	return img, out
}

// segmentationColor is a region's flat colour in the segmentation map.
func segmentationColor(r Region) color.RGBA {
	if r.Object < 0 {
		return color.RGBA{0, 0, 0, 255}
	}
	return layouts.ObjectColor(r.Object)
}

// ControlNetUnit is one unit of the ControlNet extension's API
// (Mikubill/sd-webui-controlnet v1.1.455 internal_controlnet/args.py
// ControlNetUnit; Forge's built-in ControlNet reads the same fields).
// Images are base64 PNGs in the JSON (InlinePNG).
type ControlNetUnit struct {
	Enabled       bool      `json:"enabled"`
	Image         InlinePNG `json:"image"`
	Module        string    `json:"module"`
	Model         string    `json:"model"`
	Weight        float64   `json:"weight"`
	GuidanceStart float64   `json:"guidance_start"`
	GuidanceEnd   float64   `json:"guidance_end"`
	// ResizeMode "Just Resize": the hints are at the canvas size already.
	ResizeMode   string `json:"resize_mode"`
	ControlMode  string `json:"control_mode"`
	PixelPerfect bool   `json:"pixel_perfect"`
	// EffectiveRegionMask restricts an IP-Adapter unit to its region.
	EffectiveRegionMask *InlinePNG `json:"effective_region_mask,omitempty"`
}

// controlNetUnits are the A1111 ControlNet units of the plan's hints:
// one per hint with a ControlNet model (module "none": the hint is the
// control image already), and one IP-Adapter unit per object crop when
// an IP-Adapter is configured.
func (c *Composer) controlNetUnits(p *Plan) []any {
	var units []any
	unit := func(file, module, model string, weight, start, end float64) ControlNetUnit {
		return ControlNetUnit{Enabled: true, Image: p.inline(file), Module: module, Model: a1111LoRAName(model), Weight: weight,
			GuidanceStart: start, GuidanceEnd: end, ResizeMode: "Just Resize", ControlMode: "Balanced"}
	}
	for _, h := range []struct {
		img *HintImage
		cfg ControlNetConfig
	}{{p.Hints.Edges, c.cfg.ControlNet.Edges}, {p.Hints.Segmentation, c.cfg.ControlNet.Segmentation}} {
		if h.img != nil && h.cfg.Model != "" {
			units = append(units, unit(h.img.File, "none", h.cfg.Model, h.cfg.Strength, h.cfg.Start, h.cfg.End))
		}
	}
	if ip := c.cfg.IPAdapter; ip.Model != "" {
		for _, crop := range p.Hints.Crops {
			r := p.Regions[crop.Region]
			if r.Coverage == 0 {
				continue
			}
			u := unit(crop.File, ip.A1111Module, ip.Model, min(ip.Weight, 2), ip.Start, ip.End)
			mask := p.inline(r.MaskFile)
			u.ResizeMode, u.EffectiveRegionMask = "Crop and Resize", &mask
			units = append(units, u)
		}
	}
	return units
}

// noteUnwiredHints says which hints are in the plan but no format uses,
// for want of a model in config.
func (c *Composer) noteUnwiredHints(p *Plan) {
	for _, h := range []struct {
		name string
		img  *HintImage
		cfg  ControlNetConfig
	}{{"edges", p.Hints.Edges, c.cfg.ControlNet.Edges}, {"segmentation", p.Hints.Segmentation, c.cfg.ControlNet.Segmentation}} {
		if h.img != nil && h.cfg.Model == "" {
			p.Notes = append(p.Notes, fmt.Sprintf("hint %s is in the plan, but [sdxl.controlnet.%s] names no model: the ComfyUI graph and A1111 payloads do not use it", h.name, h.name))
		}
	}
	if len(p.Hints.Crops) > 0 && c.cfg.IPAdapter.Model == "" {
		p.Notes = append(p.Notes, "crops are in the plan, but [sdxl.ipadapter] names no model: the ComfyUI graph and A1111 payloads do not use them")
	}
}
