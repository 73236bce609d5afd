package core

import "time"

// Result is what a grounder found in one image: the value every later
// stage reads (layouts builds its Layout from it, the plugin its reply).
type Result struct {
	// Width and Height of the original image in pixels.
	Width, Height int
	// Caption is the caption task's output, when it was asked for.
	Caption string
	// Answers are the outputs of free-form prefixes (style questions).
	Answers []Answer
	Objects []Object
	// Skipped lists output fragments that could not be parsed into objects.
	Skipped []Skipped
	// Outputs are the raw output strings, by task.
	Outputs Outputs
	Timings []Timing
}

// Outputs are PaliGemma's raw output strings by task (the text the model
// decoded, or the text a request brought). In JSON an object keyed by task
// name: {"caption": "...", "detect": "..."}.
type Outputs map[TaskName]string

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
	Source TaskName
	// Mask is the segmentation mask, nil for detections.
	Mask *Mask
}

// Skipped is an output fragment the parser could not use, and why.
type Skipped struct {
	Task     TaskName
	Fragment string
	Reason   string
}

// Timing is the wall time of one stage.
type Timing struct {
	Stage    string
	Duration time.Duration
}
