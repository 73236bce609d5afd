package grounding

import (
	"context"
	"fmt"

	"paliprompt/core"
)

// MaskDecoder turns one object's 16 segmentation codes into a mask placed
// in its box (pixels of a width x height image).
type MaskDecoder interface {
	Mask(codes []int, box core.Box, width, height int) (*core.Mask, error)
}

// MaskBatchDecoder is a MaskDecoder that decodes several masks at once
// (one ONNX Runtime run); Store gives it every mask of a task's output.
// An error names the mask by its place in reqs (1 = first).
type MaskBatchDecoder interface {
	MaskDecoder
	Masks(reqs []MaskRequest, width, height int) ([]*core.Mask, error)
}

// MaskRequest is one mask to decode: its codes and its box.
type MaskRequest struct {
	Codes []int
	Box   core.Box
}

// TextConfig configures the text grounder.
type TextConfig struct {
	// Masks decodes segmentation codes; nil makes requests with segment
	// output fail with ErrUnavailable (the other tasks still work).
	Masks MaskDecoder
	// MaskDecoderPath names the file Masks was loaded from, for error
	// messages when it is missing.
	MaskDecoderPath string
}

// TextGrounder grounds an image from PaliGemma output text produced
// elsewhere (Request.Outputs): it runs no model.
type TextGrounder struct {
	cfg TextConfig
}

// NewTextGrounder returns a text grounder.
func NewTextGrounder(cfg TextConfig) *TextGrounder {
	return &TextGrounder{cfg: cfg}
}

// Describe implements Describer.
func (g *TextGrounder) Describe() Info {
	return Info{Kind: "text", Provider: "none", Status: "ready"}
}

// Ground parses the outputs of the requested tasks into a Result.
func (g *TextGrounder) Ground(ctx context.Context, req Request) (core.Result, error) {
	w, h, err := req.Size()
	if err != nil {
		return core.Result{}, err
	}
	res := core.Result{Width: w, Height: h, Outputs: core.Outputs{}}
	for _, t := range core.Tasks {
		text := req.Outputs[t.Name]
		if !req.Wants(t.Name) || text == "" {
			continue
		}
		if t.Masks && g.cfg.Masks == nil {
			return core.Result{}, core.Errorf(core.ErrUnavailable, "%s output needs the mask decoder (vae-oid.npz) and none is configured%s",
				t.Name, missingPath(g.cfg.MaskDecoderPath))
		}
		if err := Store(&res, t, text, g.cfg.Masks); err != nil {
			return core.Result{}, err
		}
	}
	return res, ctx.Err()
}

func missingPath(path string) string {
	if path == "" {
		return ""
	}
	return fmt.Sprintf(" (%s not found)", path)
}

// Store puts one task's output text into res: Outputs, the caption, and
// for tasks that list objects the parsed objects, their masks decoded by
// masks when the output carries segmentation codes. Both grounders use
// it, so a model's output and the same text sent in a request give the
// same Result.
func Store(res *core.Result, task core.Task, text string, masks MaskDecoder) error {
	if res.Outputs == nil {
		res.Outputs = core.Outputs{}
	}
	res.Outputs[task.Name] = text
	if task.Name == core.TaskCaption {
		res.Caption = text
	}
	if !task.Objects {
		return nil
	}
	found, skipped := ParseDetections(task.Name, text)
	res.Skipped = append(res.Skipped, skipped...)
	var reqs []MaskRequest
	var owners []int // index in res.Objects of each request
	for _, d := range found {
		obj := core.Object{Label: d.Label, Box: d.Box(res.Width, res.Height), BoxNorm: d.BoxNorm(), Source: task.Name}
		if d.Codes != nil && masks != nil {
			reqs = append(reqs, MaskRequest{Codes: d.Codes, Box: obj.Box})
			owners = append(owners, len(res.Objects))
		}
		res.Objects = append(res.Objects, obj)
	}
	if len(reqs) == 0 {
		return nil
	}
	if batch, ok := masks.(MaskBatchDecoder); ok {
		ms, err := batch.Masks(reqs, res.Width, res.Height)
		if err != nil {
			return fmt.Errorf("decode the masks of %s: %w", task.Name, err)
		}
		for i, m := range ms {
			res.Objects[owners[i]].Mask = m
		}
		return nil
	}
	for i, r := range reqs {
		obj := &res.Objects[owners[i]]
		m, err := masks.Mask(r.Codes, r.Box, res.Width, res.Height)
		if err != nil {
			return fmt.Errorf("decode mask of %q: %w", obj.Label, err)
		}
		obj.Mask = m
	}
	return nil
}
