package sdxl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
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

// Value types of node inputs and outputs. Links carry the upper-case
// ComfyUI types; widgets take a literal.
const (
	typeModel        = "MODEL"
	typeClip         = "CLIP"
	typeVAE          = "VAE"
	typeConditioning = "CONDITIONING"
	typeMask         = "MASK"
	typeLatent       = "LATENT"
	typeImage        = "IMAGE"
	widgetInt        = "INT"
	widgetFloat      = "FLOAT"
	widgetString     = "STRING"
)

// input is one input of a node signature: its type and, for a widget
// with a fixed set of values, the values ComfyUI accepts.
type input struct {
	Type    string
	Choices []string
}

// signature is what ComfyUI's core nodes take and give, as in their
// INPUT_TYPES (all required) and RETURN_TYPES.
type signature struct {
	Inputs  map[string]input
	Outputs []string
}

// nodeSignatures is the table the graph is built from and checked
// against: the core ComfyUI nodes the graph uses.
var nodeSignatures = map[string]signature{
	"CheckpointLoaderSimple": {map[string]input{"ckpt_name": {Type: widgetString}}, []string{typeModel, typeClip, typeVAE}},
	"CLIPTextEncode":         {map[string]input{"clip": {Type: typeClip}, "text": {Type: widgetString}}, []string{typeConditioning}},
	"CLIPTextEncodeSDXL": {map[string]input{
		"clip": {Type: typeClip}, "width": {Type: widgetInt}, "height": {Type: widgetInt},
		"crop_w": {Type: widgetInt}, "crop_h": {Type: widgetInt},
		"target_width": {Type: widgetInt}, "target_height": {Type: widgetInt},
		"text_g": {Type: widgetString}, "text_l": {Type: widgetString},
	}, []string{typeConditioning}},
	"ConditioningConcat": {map[string]input{
		"conditioning_to": {Type: typeConditioning}, "conditioning_from": {Type: typeConditioning},
	}, []string{typeConditioning}},
	"LoadImageMask": {map[string]input{
		"image": {Type: widgetString}, "channel": {Type: widgetString, Choices: []string{"alpha", "red", "green", "blue"}},
	}, []string{typeMask}},
	"ConditioningSetMask": {map[string]input{
		"conditioning": {Type: typeConditioning}, "mask": {Type: typeMask}, "strength": {Type: widgetFloat},
		"set_cond_area": {Type: widgetString, Choices: []string{"default", "mask bounds"}},
	}, []string{typeConditioning}},
	"ConditioningCombine": {map[string]input{
		"conditioning_1": {Type: typeConditioning}, "conditioning_2": {Type: typeConditioning},
	}, []string{typeConditioning}},
	"EmptyLatentImage": {map[string]input{
		"width": {Type: widgetInt}, "height": {Type: widgetInt}, "batch_size": {Type: widgetInt},
	}, []string{typeLatent}},
	"KSampler": {map[string]input{
		"model": {Type: typeModel}, "seed": {Type: widgetInt}, "steps": {Type: widgetInt}, "cfg": {Type: widgetFloat},
		"sampler_name": {Type: widgetString}, "scheduler": {Type: widgetString},
		"positive": {Type: typeConditioning}, "negative": {Type: typeConditioning},
		"latent_image": {Type: typeLatent}, "denoise": {Type: widgetFloat},
	}, []string{typeLatent}},
	"VAEDecode": {map[string]input{"samples": {Type: typeLatent}, "vae": {Type: typeVAE}}, []string{typeImage}},
	"SaveImage": {map[string]input{"images": {Type: typeImage}, "filename_prefix": {Type: widgetString}}, nil},
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
	regions       []Region
	seed          int64
	steps         int
	cfg           float64
}

// comfyGraph builds the regional workflow: checkpoint; the global prompt
// (one encode per BREAK chunk, joined by ConditioningConcat as A1111's
// BREAK does); per region an encode, LoadImageMask (red channel of the
// white-on-black mask PNG) and ConditioningSetMask, all combined with the
// unmasked global prompt by ConditioningCombine; an empty latent at the
// bucket size; KSampler; VAEDecode; SaveImage.
func (c *Composer) comfyGraph(r comfyRun) Graph {
	b := &graphBuilder{g: Graph{}}
	ckpt := b.add("CheckpointLoaderSimple", "Load checkpoint", map[string]any{"ckpt_name": c.cfg.ComfyUI.Checkpoint})
	clip := Link{ckpt.Node, 1}
	positive := c.encodeChunks(b, clip, r, r.positive, "Global prompt")
	for _, reg := range r.regions {
		cond := c.encode(b, clip, r, reg.Prompt, "Region "+reg.Label)
		mask := b.add("LoadImageMask", "Mask "+reg.Label, map[string]any{"image": reg.MaskFile, "channel": "red"})
		masked := b.add("ConditioningSetMask", "Set mask "+reg.Label, map[string]any{
			"conditioning": cond, "mask": mask, "strength": reg.Weight, "set_cond_area": c.cfg.ComfyUI.SetCondArea,
		})
		positive = b.add("ConditioningCombine", "Combine "+reg.Label, map[string]any{"conditioning_1": positive, "conditioning_2": masked})
	}
	negative := c.encodeChunks(b, clip, r, r.negative, "Negative prompt")
	latent := b.add("EmptyLatentImage", "Canvas", map[string]any{"width": r.width, "height": r.height, "batch_size": 1})
	samples := b.add("KSampler", "Sampler", map[string]any{
		"model": Link{ckpt.Node, 0}, "seed": r.seed, "steps": r.steps, "cfg": r.cfg,
		"sampler_name": c.cfg.ComfyUI.Sampler, "scheduler": c.cfg.ComfyUI.Scheduler,
		"positive": positive, "negative": negative, "latent_image": latent, "denoise": 1.0,
	})
	image := b.add("VAEDecode", "Decode", map[string]any{"samples": samples, "vae": Link{ckpt.Node, 2}})
	b.add("SaveImage", "Save", map[string]any{"images": image, "filename_prefix": c.cfg.ComfyUI.FilenamePrefix})
	return b.g
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

// Check verifies the graph's structure against the node signature table:
// every node's class is known, it has exactly the signature's inputs,
// every link points to an existing node and an output index that node
// has, of the type the input takes, every widget holds a value of its
// type (one of its choices where it has them), and every mask file a
// LoadImageMask names is among files.
func (g Graph) Check(files []string) error {
	have := map[string]bool{}
	for _, f := range files {
		have[f] = true
	}
	ids := make([]string, 0, len(g))
	for id := range g {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if err := g.checkNode(id, have); err != nil {
			return err
		}
	}
	return nil
}

func (g Graph) checkNode(id string, files map[string]bool) error {
	n := g[id]
	sig, ok := nodeSignatures[n.ClassType]
	if !ok {
		return fmt.Errorf("node %s: unknown class_type %q", id, n.ClassType)
	}
	for name := range n.Inputs {
		if _, ok := sig.Inputs[name]; !ok {
			return fmt.Errorf("node %s (%s): input %q is not in its signature", id, n.ClassType, name)
		}
	}
	for name, in := range sig.Inputs {
		v, ok := n.Inputs[name]
		if !ok {
			return fmt.Errorf("node %s (%s): required input %q is missing", id, n.ClassType, name)
		}
		if err := g.checkValue(v, in); err != nil {
			return fmt.Errorf("node %s (%s) input %q: %w", id, n.ClassType, name, err)
		}
	}
	if n.ClassType == "LoadImageMask" {
		if f, _ := n.Inputs["image"].(string); !files[f] {
			return fmt.Errorf("node %s (LoadImageMask): mask file %q is not in the result", id, f)
		}
	}
	return nil
}

// checkValue checks one input value against its signature entry.
func (g Graph) checkValue(v any, in input) error {
	switch in.Type {
	case widgetInt:
		switch v.(type) {
		case int, int64:
			return nil
		}
		return fmt.Errorf("want an integer, got %T", v)
	case widgetFloat:
		switch v.(type) {
		case float64, int, int64:
			return nil
		}
		return fmt.Errorf("want a number, got %T", v)
	case widgetString:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a string, got %T", v)
		}
		if in.Choices != nil && !contains(in.Choices, s) {
			return fmt.Errorf("%q is not one of %v", s, in.Choices)
		}
		return nil
	}
	l, ok := v.(Link)
	if !ok {
		return fmt.Errorf("want a link to a %s output, got %T", in.Type, v)
	}
	target, ok := g[l.Node]
	if !ok {
		return fmt.Errorf("link to missing node %s", l.Node)
	}
	outs := nodeSignatures[target.ClassType].Outputs
	if l.Output < 0 || l.Output >= len(outs) {
		return fmt.Errorf("link to output %d of node %s (%s), which has %d outputs", l.Output, l.Node, target.ClassType, len(outs))
	}
	if outs[l.Output] != in.Type {
		return fmt.Errorf("link to a %s output, want %s", outs[l.Output], in.Type)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
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
