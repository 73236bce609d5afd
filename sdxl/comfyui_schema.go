package sdxl

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// comfyObjectInfo is ComfyUI's /object_info for every node the graphs use,
// made by tools/comfyui_object_info.py from a ComfyUI install (its version
// and the custom node packs' versions are in the file). It is the one
// table of node signatures: the graphs are checked against it, and the
// sampler and scheduler names of requests and config are KSampler's
// lists in it.
//
//go:embed comfyui_object_info.json
var comfyObjectInfo []byte

// ComfyUIVersion is the ComfyUI release the node schema was taken from.
var ComfyUIVersion = comfySchema.Version

// comfySchema is the parsed snapshot.
var comfySchema = mustParseSchema(comfyObjectInfo)

// schema is the node table of a snapshot.
type schema struct {
	Version string
	// Packs are the custom node packs the snapshot holds, by folder name,
	// as "version (commit)".
	Packs map[string]string
	Nodes map[string]nodeSchema
}

// nodeSchema is one node's inputs and outputs.
type nodeSchema struct {
	Required map[string]inputSpec
	Optional map[string]inputSpec
	Outputs  []string
	// Module is the Python module that defines the node ("nodes",
	// "comfy_extras.nodes_hooks", "custom_nodes.ComfyUI_IPAdapter_plus").
	Module string
}

// inputSpec is one input: a link type (upper case: "MODEL", "MASK") or a
// widget ("INT", "FLOAT", "STRING", "BOOLEAN", or an enum, "COMBO").
type inputSpec struct {
	Type string
	// Choices are an enum's values; FileList marks an enum of the user's
	// files (models, input images), whose values the snapshot cannot know.
	Choices  []string
	FileList bool
	Min, Max *float64
}

// Widget input types.
const (
	widgetInt     = "INT"
	widgetFloat   = "FLOAT"
	widgetString  = "STRING"
	widgetBoolean = "BOOLEAN"
	widgetCombo   = "COMBO"
)

func mustParseSchema(data []byte) schema {
	s, err := parseSchema(data)
	if err != nil {
		panic(fmt.Sprintf("sdxl: comfyui_object_info.json: %v", err))
	}
	return s
}

// parseSchema reads the snapshot: {"comfyui_version", "custom_nodes",
// "file_inputs": {class: [input]}, "nodes": {class: /object_info entry}}.
func parseSchema(data []byte) (schema, error) {
	var raw struct {
		Version string `json:"comfyui_version"`
		Packs   map[string]struct {
			Version string `json:"version"`
			Commit  string `json:"commit"`
		} `json:"custom_nodes"`
		FileInputs map[string][]string `json:"file_inputs"`
		Nodes      map[string]struct {
			Input struct {
				Required map[string][]json.RawMessage `json:"required"`
				Optional map[string][]json.RawMessage `json:"optional"`
			} `json:"input"`
			Output []string `json:"output"`
			Module string   `json:"python_module"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return schema{}, err
	}
	s := schema{Version: raw.Version, Packs: map[string]string{}, Nodes: map[string]nodeSchema{}}
	for name, p := range raw.Packs {
		s.Packs[name] = strings.TrimSpace(p.Version + " (" + p.Commit + ")")
	}
	for class, n := range raw.Nodes {
		ns := nodeSchema{Required: map[string]inputSpec{}, Optional: map[string]inputSpec{}, Outputs: n.Output, Module: n.Module}
		files := map[string]bool{}
		for _, in := range raw.FileInputs[class] {
			files[in] = true
		}
		for _, part := range []struct {
			from map[string][]json.RawMessage
			to   map[string]inputSpec
		}{{n.Input.Required, ns.Required}, {n.Input.Optional, ns.Optional}} {
			for name, spec := range part.from {
				in, err := parseInput(spec)
				if err != nil {
					return schema{}, fmt.Errorf("%s input %q: %w", class, name, err)
				}
				in.FileList = files[name]
				part.to[name] = in
			}
		}
		s.Nodes[class] = ns
	}
	return s, nil
}

// parseInput reads an /object_info input spec: [type, {options}] or, for
// an old-style enum, [[values...], {options}].
func parseInput(spec []json.RawMessage) (inputSpec, error) {
	if len(spec) == 0 {
		return inputSpec{}, fmt.Errorf("empty spec")
	}
	var in inputSpec
	var opts struct {
		Min     *float64 `json:"min"`
		Max     *float64 `json:"max"`
		Options []any    `json:"options"`
	}
	if len(spec) > 1 {
		if err := json.Unmarshal(spec[1], &opts); err != nil {
			return inputSpec{}, err
		}
	}
	var values []any
	if err := json.Unmarshal(spec[0], &in.Type); err != nil {
		if err := json.Unmarshal(spec[0], &values); err != nil {
			return inputSpec{}, fmt.Errorf("type is neither a name nor a list")
		}
		in.Type = widgetCombo
	} else if in.Type == widgetCombo {
		values = opts.Options
	}
	if in.Type == widgetCombo {
		in.Choices = []string{}
		for _, v := range values {
			in.Choices = append(in.Choices, fmt.Sprint(v))
		}
	}
	in.Min, in.Max = opts.Min, opts.Max
	return in, nil
}

// input returns a node's input spec, required or optional.
func (n nodeSchema) input(name string) (inputSpec, bool) {
	if in, ok := n.Required[name]; ok {
		return in, true
	}
	in, ok := n.Optional[name]
	return in, ok
}

// choices returns an enum input's values, for validating names.
func (s schema) choices(class, input string) []string {
	in, _ := s.Nodes[class].input(input)
	return in.Choices
}

// Check verifies the graph as ComfyUI's validate_prompt would, against
// the node schema snapshot: every node's class exists, every required
// input is there and no input is unknown, every link points at an
// existing node's output of the type the input takes, every widget holds
// a value of its type within its min and max, enum values are among the
// choices (file lists take any file name), there is an output node, and
// every image a LoadImage or LoadImageMask names is among files (the
// plan's PNGs, which the user uploads).
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
	outputs := 0
	for _, id := range ids {
		if err := g.checkNode(id, have); err != nil {
			return err
		}
		if len(comfySchema.Nodes[g[id].ClassType].Outputs) == 0 {
			outputs++
		}
	}
	if outputs == 0 {
		return fmt.Errorf("the graph has no output node (SaveImage)")
	}
	return nil
}

func (g Graph) checkNode(id string, files map[string]bool) error {
	n := g[id]
	sig, ok := comfySchema.Nodes[n.ClassType]
	if !ok {
		return fmt.Errorf("node %s: unknown class_type %q", id, n.ClassType)
	}
	for name := range n.Inputs {
		if _, ok := sig.input(name); !ok {
			return fmt.Errorf("node %s (%s): input %q is not in its signature", id, n.ClassType, name)
		}
	}
	for name := range sig.Required {
		if _, ok := n.Inputs[name]; !ok {
			return fmt.Errorf("node %s (%s): required input %q is missing", id, n.ClassType, name)
		}
	}
	for name, v := range n.Inputs {
		in, _ := sig.input(name)
		if err := g.checkValue(v, in); err != nil {
			return fmt.Errorf("node %s (%s) input %q: %w", id, n.ClassType, name, err)
		}
	}
	if n.ClassType == "LoadImageMask" || n.ClassType == "LoadImage" {
		if f, _ := n.Inputs["image"].(string); !files[f] {
			return fmt.Errorf("node %s (%s): image file %q is not in the result", id, n.ClassType, f)
		}
	}
	return nil
}

// checkValue checks one input value against its spec.
func (g Graph) checkValue(v any, in inputSpec) error {
	switch in.Type {
	case widgetInt:
		switch x := v.(type) {
		case int:
			return checkRange(float64(x), in)
		case int64:
			return checkRange(float64(x), in)
		}
		return fmt.Errorf("want an integer, got %T", v)
	case widgetFloat:
		switch x := v.(type) {
		case float64:
			return checkRange(x, in)
		case int:
			return checkRange(float64(x), in)
		case int64:
			return checkRange(float64(x), in)
		}
		return fmt.Errorf("want a number, got %T", v)
	case widgetBoolean:
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("want true or false, got %T", v)
		}
		return nil
	case widgetString:
		if _, ok := v.(string); !ok {
			return fmt.Errorf("want a string, got %T", v)
		}
		return nil
	case widgetCombo:
		s, ok := v.(string)
		switch {
		case !ok:
			return fmt.Errorf("want one of its values, got %T", v)
		case in.FileList && s == "":
			return fmt.Errorf("empty file name")
		case !in.FileList && !contains(in.Choices, s):
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
	outs := comfySchema.Nodes[target.ClassType].Outputs
	if l.Output < 0 || l.Output >= len(outs) {
		return fmt.Errorf("link to output %d of node %s (%s), which has %d outputs", l.Output, l.Node, target.ClassType, len(outs))
	}
	if !typesMatch(outs[l.Output], in.Type) {
		return fmt.Errorf("link to a %s output, want %s", outs[l.Output], in.Type)
	}
	return nil
}

// typesMatch is ComfyUI's validate_node_input: equal, a wildcard "*", or
// comma-separated unions that share a type.
func typesMatch(output, input string) bool {
	if output == input || output == "*" || input == "*" {
		return true
	}
	for _, o := range strings.Split(output, ",") {
		for _, i := range strings.Split(input, ",") {
			if strings.TrimSpace(o) == strings.TrimSpace(i) {
				return true
			}
		}
	}
	return false
}

func checkRange(x float64, in inputSpec) error {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return fmt.Errorf("%v is not a finite number", x)
	}
	if in.Min != nil && x < *in.Min {
		return fmt.Errorf("%v is below its minimum %v", x, *in.Min)
	}
	if in.Max != nil && x > *in.Max {
		return fmt.Errorf("%v is above its maximum %v", x, *in.Max)
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
