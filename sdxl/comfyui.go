package sdxl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Graph is a ComfyUI workflow in API format, ready for POST /prompt as
// {"prompt": graph}: node id -> node. Links are [node id, output index].
type Graph map[string]Node

// Node is one node of a Graph.
type Node struct {
	ClassType string         `json:"class_type"`
	Inputs    map[string]any `json:"inputs"`
	Meta      NodeMeta       `json:"_meta"`
}

// NodeMeta carries the node's title, shown in ComfyUI.
type NodeMeta struct {
	Title string `json:"title"`
}

// Link points at an output of another node.
type Link struct {
	Node   string
	Output int
}

// MarshalJSON writes a link as ComfyUI does: ["id", index].
func (l Link) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("[%q,%d]", l.Node, l.Output)), nil
}

// graphBuilder adds nodes with sequential ids.
type graphBuilder struct {
	g    Graph
	next int
}

func (b *graphBuilder) add(class, title string, inputs map[string]any) Link {
	b.next++
	id := strconv.Itoa(b.next)
	b.g[id] = Node{ClassType: class, Inputs: inputs, Meta: NodeMeta{Title: title}}
	return Link{Node: id, Output: 0}
}

// comfyRun holds what the graph needs from the plan.
type comfyRun struct {
	width, height int
	positive      []string // chunks
	negative      []string // chunks
	// regions are the regions the graph conditions on: those whose mask
	// is not empty.
	regions      []Region
	globalWeight float64
	seed         int64
	steps        int
	cfg          float64
	sampler      string
	scheduler    string
	// hints are the plan's conditioning images; the configs say which
	// models apply them.
	hints      *Hints
	controlNet ControlNetsConfig
	ipAdapter  IPAdapterConfig
}

// comfyGraph builds the regional workflow:
//
//   - CheckpointLoaderSimple;
//   - the global prompt, one encode per BREAK chunk joined by
//     ConditioningConcat (as A1111's BREAK does), at ConditioningSetAreaStrength
//     global_weight, unmasked;
//   - per region: an encode of its prompt (through SetClipHooks with its
//     LoRAs as CreateHookLora hooks when it has any, so that the LoRAs
//     apply to that region's conditioning only), LoadImageMask (red
//     channel of the white-on-black mask PNG) and ConditioningSetMask at
//     the region's weight, combined into the positive conditioning with
//     ConditioningCombine; its own negative (the global negative and its
//     terms) masked the same way into the negative conditioning;
//   - each hint with a ControlNet model in config: LoadImage,
//     ControlNetLoader and ControlNetApplyAdvanced on the final positive
//     and negative conditioning;
//   - with an IP-Adapter model in config and crops: IPAdapterModelLoader,
//     CLIPVisionLoader, and per object LoadImage of its crop and
//     IPAdapterAdvanced masked to its region (attn_mask), chained on the
//     model (ComfyUI_IPAdapter_plus nodes);
//   - EmptyLatentImage at the bucket size, or with a start canvas
//     LoadImage and VAEEncode, with KSampler's denoise set; KSampler,
//     VAEDecode, SaveImage.
//
// ComfyUI weighs each conditioning by its strength times its mask and
// divides by the sum, so where a region's mask is white (and no other
// region's is) its own prompt has weight/(global_weight+weight) of the
// conditioning: Region.Share.
func (c *Composer) comfyGraph(r comfyRun) Graph {
	b := &graphBuilder{g: Graph{}}
	ckpt := b.add("CheckpointLoaderSimple", "Load checkpoint", map[string]any{"ckpt_name": c.cfg.ComfyUI.Checkpoint})
	clip := Link{ckpt.Node, 1}
	positive := c.encodeChunks(b, clip, r, r.positive, "Global prompt")
	if r.globalWeight != 1 {
		positive = b.add("ConditioningSetAreaStrength", "Global prompt weight", map[string]any{"conditioning": positive, "strength": r.globalWeight})
	}
	negative := c.encodeChunks(b, clip, r, r.negative, "Negative prompt")
	masks := map[int]Link{}
	for _, reg := range r.regions {
		regionClip := c.hookedClip(b, clip, reg)
		mask := b.add("LoadImageMask", "Mask "+reg.Label, map[string]any{"image": reg.MaskFile, "channel": "red"})
		masks[reg.Index] = mask
		positive = c.maskedCondition(b, positive, c.encode(b, regionClip, r, reg.Prompt, "Region "+reg.Label), mask, reg, "")
		if reg.Negative != "" {
			neg := c.encodeChunks(b, regionClip, r, regionNegative(r.negative, reg.Negative), "Negative "+reg.Label)
			negative = c.maskedCondition(b, negative, neg, mask, reg, "negative ")
		}
	}
	vae := Link{ckpt.Node, 2}
	positive, negative = applyControlNets(b, r, positive, negative, vae)
	model := applyIPAdapters(b, r, Link{ckpt.Node, 0}, masks)
	latent, denoise := startLatent(b, r, vae)
	samples := b.add("KSampler", "Sampler", map[string]any{
		"model": model, "seed": r.seed, "steps": r.steps, "cfg": r.cfg,
		"sampler_name": r.sampler, "scheduler": r.scheduler,
		"positive": positive, "negative": negative, "latent_image": latent, "denoise": denoise,
	})
	image := b.add("VAEDecode", "Decode", map[string]any{"samples": samples, "vae": vae})
	b.add("SaveImage", "Save", map[string]any{"images": image, "filename_prefix": c.cfg.ComfyUI.FilenamePrefix})
	return b.g
}

// applyControlNets applies each hint that has a ControlNet model to the
// final conditioning.
func applyControlNets(b *graphBuilder, r comfyRun, positive, negative, vae Link) (Link, Link) {
	if r.hints == nil {
		return positive, negative
	}
	for _, cn := range []struct {
		name string
		img  *HintImage
		cfg  ControlNetConfig
	}{{"edge", r.hints.Edges, r.controlNet.Edges}, {"segmentation", r.hints.Segmentation, r.controlNet.Segmentation}} {
		if cn.img == nil || cn.cfg.Model == "" {
			continue
		}
		img := b.add("LoadImage", cn.name+" hint", map[string]any{"image": cn.img.File})
		net := b.add("ControlNetLoader", cn.name+" ControlNet", map[string]any{"control_net_name": cn.cfg.Model})
		apply := b.add("ControlNetApplyAdvanced", "Apply "+cn.name+" ControlNet", map[string]any{
			"positive": positive, "negative": negative, "control_net": net, "image": img,
			"strength": cn.cfg.Strength, "start_percent": cn.cfg.Start, "end_percent": cn.cfg.End, "vae": vae,
		})
		positive, negative = apply, Link{apply.Node, 1}
	}
	return positive, negative
}

// applyIPAdapters chains one IP-Adapter per object crop onto the model,
// each masked to its region, when an IP-Adapter is configured.
func applyIPAdapters(b *graphBuilder, r comfyRun, model Link, masks map[int]Link) Link {
	ip := r.ipAdapter
	if r.hints == nil || len(r.hints.Crops) == 0 || ip.Model == "" {
		return model
	}
	adapter := b.add("IPAdapterModelLoader", "IP-Adapter", map[string]any{"ipadapter_file": ip.Model})
	vision := b.add("CLIPVisionLoader", "CLIP vision", map[string]any{"clip_name": ip.ClipVision})
	for _, crop := range r.hints.Crops {
		mask, ok := masks[crop.Region]
		if !ok {
			continue // the region's mask is empty: nothing to adapt
		}
		img := b.add("LoadImage", "Crop "+crop.Label, map[string]any{"image": crop.File})
		model = b.add("IPAdapterAdvanced", "IP-Adapter "+crop.Label, map[string]any{
			"model": model, "ipadapter": adapter, "image": img, "weight": ip.Weight, "weight_type": ip.WeightType,
			"combine_embeds": "concat", "start_at": ip.Start, "end_at": ip.End, "embeds_scaling": "V only",
			"attn_mask": mask, "clip_vision": vision,
		})
	}
	return model
}

// startLatent is the sampler's start: the start canvas encoded by the
// VAE with its denoise, else an empty latent at the bucket size.
func startLatent(b *graphBuilder, r comfyRun, vae Link) (Link, float64) {
	if r.hints != nil && r.hints.StartCanvas != nil {
		img := b.add("LoadImage", "Start canvas", map[string]any{"image": r.hints.StartCanvas.File})
		return b.add("VAEEncode", "Encode start canvas", map[string]any{"pixels": img, "vae": vae}), r.hints.Denoise
	}
	return b.add("EmptyLatentImage", "Canvas", map[string]any{"width": r.width, "height": r.height, "batch_size": 1}), 1.0
}

// maskedCondition masks a region's conditioning and combines it into all.
func (c *Composer) maskedCondition(b *graphBuilder, all, cond, mask Link, reg Region, what string) Link {
	masked := b.add("ConditioningSetMask", "Set "+what+"mask "+reg.Label, map[string]any{
		"conditioning": cond, "mask": mask, "strength": reg.Weight, "set_cond_area": c.cfg.ComfyUI.SetCondArea,
	})
	return b.add("ConditioningCombine", "Combine "+what+reg.Label, map[string]any{"conditioning_1": all, "conditioning_2": masked})
}

// hookedClip returns the CLIP to encode a region's prompts with: with
// its LoRAs as hooks (CreateHookLora chained by prev_hooks, attached by
// SetClipHooks with apply_to_conds, so the model part of the LoRA runs
// only for the conditioning encoded with this CLIP), or clip itself.
func (c *Composer) hookedClip(b *graphBuilder, clip Link, reg Region) Link {
	if len(reg.LoRAs) == 0 {
		return clip
	}
	var hooks *Link
	for _, l := range reg.LoRAs {
		in := map[string]any{"lora_name": l.Name, "strength_model": l.Strength, "strength_clip": l.Strength}
		if hooks != nil {
			in["prev_hooks"] = *hooks
		}
		h := b.add("CreateHookLora", "LoRA "+l.Name+" for "+reg.Label, in)
		hooks = &h
	}
	return b.add("SetClipHooks", "LoRAs of "+reg.Label, map[string]any{
		"clip": clip, "apply_to_conds": true, "schedule_clip": false, "hooks": *hooks,
	})
}

// regionNegative is a region's negative prompt: the global negative
// (so that it keeps its full weight inside the region) and the region's
// own terms, in as many chunks as they take.
func regionNegative(global []string, own string) []string {
	return append(append([]string(nil), global...), own)
}

// encodeChunks encodes each chunk and concatenates them in order.
func (c *Composer) encodeChunks(b *graphBuilder, clip Link, r comfyRun, chunks []string, title string) Link {
	if len(chunks) == 0 {
		chunks = []string{""}
	}
	out := c.encode(b, clip, r, chunks[0], title)
	for i, ch := range chunks[1:] {
		next := c.encode(b, clip, r, ch, fmt.Sprintf("%s (chunk %d)", title, i+2))
		out = b.add("ConditioningConcat", fmt.Sprintf("%s BREAK %d", title, i+2), map[string]any{"conditioning_to": out, "conditioning_from": next})
	}
	return out
}

// encode adds a text encoder node for one prompt.
func (c *Composer) encode(b *graphBuilder, clip Link, r comfyRun, text, title string) Link {
	if c.cfg.ComfyUI.TextEncoder == "plain" {
		return b.add("CLIPTextEncode", title, map[string]any{"clip": clip, "text": text})
	}
	return b.add("CLIPTextEncodeSDXL", title, map[string]any{
		"clip": clip, "width": r.width, "height": r.height, "crop_w": 0, "crop_h": 0,
		"target_width": r.width, "target_height": r.height, "text_g": text, "text_l": text,
	})
}

// UnmarshalJSON reads an API-format graph back: two-element arrays of a
// node id and an output index become Links, whole numbers int64, other
// numbers float64. Check works on the result as on a built graph.
func (g *Graph) UnmarshalJSON(data []byte) error {
	var raw map[string]struct {
		ClassType string                     `json:"class_type"`
		Inputs    map[string]json.RawMessage `json:"inputs"`
		Meta      NodeMeta                   `json:"_meta"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	out := Graph{}
	for id, n := range raw {
		inputs := map[string]any{}
		for name, msg := range n.Inputs {
			v, err := decodeInput(msg)
			if err != nil {
				return fmt.Errorf("node %s input %q: %w", id, name, err)
			}
			inputs[name] = v
		}
		out[id] = Node{ClassType: n.ClassType, Inputs: inputs, Meta: n.Meta}
	}
	*g = out
	return nil
}

func decodeInput(msg json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i, nil
		}
		return t.Float64()
	case []any:
		if len(t) == 2 {
			id, okID := t[0].(string)
			idx, okIdx := t[1].(json.Number)
			if n, err := idx.Int64(); okID && okIdx && err == nil {
				return Link{Node: id, Output: int(n)}, nil
			}
		}
	}
	return v, nil
}
