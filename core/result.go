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

// Timing is the wall time of one stage of a request. Parts, when
// present, break the stage down: one after another, adding up to it (a
// Stopwatch adds an "other" part for the rest), or, when Concurrent is
// more than one, side by side on that many cores (each part its own wall
// time, the stage the wall time of them all).
type Timing struct {
	Stage      string
	Duration   time.Duration
	Parts      []Timing
	Concurrent int
}

// Stopwatch times the consecutive stages of one request: each Lap ends
// the running stage and starts the next, so the laps add up to the time
// since the Stopwatch started. Not safe for concurrent use.
type Stopwatch struct {
	start, last time.Time
	laps        []Timing
}

// NewStopwatch starts a stopwatch.
func NewStopwatch() *Stopwatch {
	now := time.Now()
	return &Stopwatch{start: now, last: now}
}

// Lap ends the running stage, names it and returns its duration.
func (s *Stopwatch) Lap(stage string) time.Duration {
	return s.LapParts(stage, nil)
}

// LapParts ends the running stage with its breakdown: parts that ran one
// after another, completed by an "other" part for the time they do not
// cover (a stage's own work between its parts).
func (s *Stopwatch) LapParts(stage string, parts []Timing) time.Duration {
	now := time.Now()
	t := Timing{Stage: stage, Duration: now.Sub(s.last), Parts: parts}
	if len(parts) > 0 {
		var covered time.Duration
		for _, p := range parts {
			covered += p.Duration
		}
		if rest := t.Duration - covered; rest > 0 {
			t.Parts = append(t.Parts, Timing{Stage: "other", Duration: rest})
		}
	}
	s.laps = append(s.laps, t)
	s.last = now
	return t.Duration
}

// LapConcurrent ends the running stage, whose parts ran side by side on
// workers cores.
func (s *Stopwatch) LapConcurrent(stage string, parts []Timing, workers int) time.Duration {
	now := time.Now()
	d := now.Sub(s.last)
	s.laps = append(s.laps, Timing{Stage: stage, Duration: d, Parts: parts, Concurrent: workers})
	s.last = now
	return d
}

// Laps are the stages timed so far.
func (s *Stopwatch) Laps() []Timing { return s.laps }

// Elapsed is the time since the stopwatch started.
func (s *Stopwatch) Elapsed() time.Duration { return time.Since(s.start) }
