// Package grounding turns a reference image into what PaliGemma sees in it:
// a caption, free-form answers, and objects with boxes and masks.
//
// It owns image decoding and preprocessing, the parser of PaliGemma's
// output strings and the segmentation mask decoder, and the Grounder
// interface the plugin calls. It knows nothing of NATS, layouts or SDXL:
// later stages read the core.Result a Grounder returns.
//
// Two grounders implement the interface: the text grounder here, which
// parses PaliGemma output text produced elsewhere (users who run the model
// on another machine, and tests that need no model), and the model
// grounder of package grounding/paligemma (PaliGemma on ONNX Runtime, the
// only code with cgo).
package grounding

import (
	"context"
	"image"

	"paliprompt/core"
)

// Grounder grounds one image. Implementations are safe for use by one
// goroutine at a time; the plugin serializes calls in front of them.
type Grounder interface {
	Ground(ctx context.Context, req Request) (core.Result, error)
}

// Describer is implemented by grounders that can report what they run on,
// for `paliprompt check` and the service stats.
type Describer interface {
	Describe() Info
}

// Info describes a grounder for humans and the service stats.
type Info struct {
	Kind     string // "model" or "text"
	ModelDir string // empty for the text grounder
	// Provider is the execution provider actually in use ("cpu", "cuda:0").
	Provider string
	// Status is "ready", or why the grounder cannot run ("model not loaded: ...").
	Status string
}

// Request asks a grounder about one image.
type Request struct {
	// Image is the decoded reference image. It may be nil for the text
	// grounder when Width and Height are given.
	Image image.Image
	// Width and Height are the size of the original image in pixels; boxes
	// in the Result are in this pixel grid. When zero they come from Image.
	Width, Height int

	// Tasks are the passes to run, in core.Tasks order.
	Tasks []core.TaskName
	// Args are the tasks' prefix arguments. Without object names, the
	// names come from the caption (the caption pass then runs first), else
	// from the grounder's configured fallback list.
	Args core.PrefixArgs
	// Prefixes are extra PaliGemma prefixes run on the same image, in the
	// same batch where the model allows (e.g. "answer en what is the art
	// style of this image?"). Their answers come back in Result.Answers.
	Prefixes []string

	// Outputs carries PaliGemma output text produced elsewhere, by task;
	// the text grounder reads it, the model grounder ignores it.
	Outputs core.Outputs
}

// Wants reports whether the request asks for the task.
func (r Request) Wants(name core.TaskName) bool {
	for _, t := range r.Tasks {
		if t == name {
			return true
		}
	}
	return false
}

// Size returns the original image size of a request.
func (r Request) Size() (int, int, error) {
	w, h := r.Width, r.Height
	if r.Image != nil && (w == 0 || h == 0) {
		b := r.Image.Bounds()
		w, h = b.Dx(), b.Dy()
	}
	if w <= 0 || h <= 0 {
		return 0, 0, core.Errorf(core.ErrBadRequest, "no image and no width/height given")
	}
	return w, h, nil
}
