// Package grounding turns a reference image into what PaliGemma sees in it:
// a caption, free-form answers, and objects with boxes and masks.
//
// It owns image decoding and preprocessing, the tokenizer, the ONNX Runtime
// sessions and the generation loop, the parser of PaliGemma's output
// strings and the segmentation mask decoder. It knows nothing of NATS,
// layouts or SDXL: the plugin calls a Grounder, later stages read a Result.
//
// Two grounders implement the interface: the model grounder (PaliGemma on
// ONNX Runtime) and the text grounder, which parses PaliGemma output text
// produced elsewhere (users who run the model on another machine, and tests
// that need no model).
package grounding

import (
	"context"
	"image"
	"time"
)

// Grounder grounds one image. Implementations are safe for use by one
// goroutine at a time; the plugin serializes calls in front of them.
type Grounder interface {
	Ground(ctx context.Context, req Request) (Result, error)
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
	// Lang is the language of caption and answer prompts ("en").
	Lang string

	// Caption, Detect and Segment select the passes to run.
	Caption, Detect, Segment bool
	// Objects names what to detect and segment. When empty, the names come
	// from the caption (the caption pass then runs first), else from the
	// grounder's configured fallback list.
	Objects []string
	// Prefixes are extra PaliGemma prefixes run on the same image, in the
	// same batch where the model allows (e.g. "answer en what is the art
	// style of this image?"). Their answers come back in Result.Answers.
	Prefixes []string

	// Outputs carries PaliGemma output text produced elsewhere; the text
	// grounder reads it, the model grounder ignores it.
	Outputs Outputs
}

// Outputs are PaliGemma's raw output strings for the three standard tasks.
type Outputs struct {
	Caption string `json:"caption,omitempty"`
	Detect  string `json:"detect,omitempty"`
	Segment string `json:"segment,omitempty"`
}

// Result is what a grounder found in one image.
type Result struct {
	// Width and Height of the original image in pixels.
	Width, Height int
	Caption       string
	Answers       []Answer
	Objects       []Object
	// Skipped lists output fragments that could not be parsed into objects.
	Skipped []Skipped
	// Outputs are the raw output strings, as decoded from the model.
	Outputs Outputs
	Timings []Timing
}

// Answer is the output of one free-form prefix.
type Answer struct {
	Prefix string
	Text   string
}

// Object is one detected or segmented object.
type Object struct {
	Label string
	// Box is in pixels of the original image; BoxNorm is the same box as
	// fractions of the image size (0..1).
	Box     Box
	BoxNorm Box
	// Source is the task that produced the object: "detect" or "segment".
	Source string
	// Mask is the segmentation mask, nil for detections.
	Mask *Mask
}

// Box is an axis-aligned rectangle, X0 <= X1 and Y0 <= Y1.
type Box struct {
	X0, Y0, X1, Y1 float64
}

// Width of the box.
func (b Box) Width() float64 { return b.X1 - b.X0 }

// Height of the box.
func (b Box) Height() float64 { return b.Y1 - b.Y0 }

// Area of the box.
func (b Box) Area() float64 { return b.Width() * b.Height() }

// Skipped is an output fragment the parser could not use, and why.
type Skipped struct {
	Task     string // "detect" or "segment"
	Fragment string
	Reason   string
}

// Timing is the wall time of one stage.
type Timing struct {
	Stage    string
	Duration time.Duration
}
