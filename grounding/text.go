package grounding

import (
	"context"
	"fmt"
)

// MaskDecoder turns one object's 16 segmentation codes into a mask placed
// in its box (pixels of a width x height image).
type MaskDecoder interface {
	Mask(codes []int, box Box, width, height int) (*Mask, error)
}

// TextConfig configures the text grounder.
type TextConfig struct {
	// Masks decodes segmentation codes; nil makes segment requests fail
	// with ErrUnavailable (detect and caption still work).
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

// Ground parses req.Outputs into a Result.
func (g *TextGrounder) Ground(ctx context.Context, req Request) (Result, error) {
	w, h, err := requestSize(req)
	if err != nil {
		return Result{}, err
	}
	if req.Segment && req.Outputs.Segment != "" && g.cfg.Masks == nil {
		return Result{}, fmt.Errorf("%w: segment output needs the mask decoder (vae-oid.npz) and none is configured%s",
			ErrUnavailable, missingPath(g.cfg.MaskDecoderPath))
	}
	res := Result{Width: w, Height: h, Caption: req.Outputs.Caption, Outputs: req.Outputs}
	if err := addObjects(&res, "detect", req.Outputs.Detect, nil); err != nil {
		return Result{}, err
	}
	if err := addObjects(&res, "segment", req.Outputs.Segment, g.cfg.Masks); err != nil {
		return Result{}, err
	}
	return res, ctx.Err()
}

func missingPath(path string) string {
	if path == "" {
		return ""
	}
	return fmt.Sprintf(" (%s not found)", path)
}

// requestSize returns the original image size of a request.
func requestSize(req Request) (int, int, error) {
	w, h := req.Width, req.Height
	if req.Image != nil && (w == 0 || h == 0) {
		b := req.Image.Bounds()
		w, h = b.Dx(), b.Dy()
	}
	if w <= 0 || h <= 0 {
		return 0, 0, fmt.Errorf("%w: no image and no width/height given", ErrBadRequest)
	}
	return w, h, nil
}

// addObjects parses one detect or segment output into res, decoding masks
// with masks when the output carries segmentation codes.
func addObjects(res *Result, task, text string, masks MaskDecoder) error {
	found, skipped := ParseDetections(task, text)
	res.Skipped = append(res.Skipped, skipped...)
	for _, d := range found {
		obj := Object{Label: d.Label, Box: d.Box(res.Width, res.Height), BoxNorm: d.BoxNorm(), Source: task}
		if d.Codes != nil && masks != nil {
			m, err := masks.Mask(d.Codes, obj.Box, res.Width, res.Height)
			if err != nil {
				return fmt.Errorf("decode mask of %q: %w", d.Label, err)
			}
			obj.Mask = m
		}
		res.Objects = append(res.Objects, obj)
	}
	return nil
}
