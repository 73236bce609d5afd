package core

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestErrorKinds(t *testing.T) {
	bad := Errorf(ErrBadImage, "image is %dx%d", 3, 3)
	tests := []struct {
		name string
		err  error
		code int
		desc string
	}{
		{"kind", bad, 422, "image is 3x3"},
		{"wrapped with context", fmt.Errorf("decode image: %w", bad), 422, "decode image: image is 3x3"},
		{"outer kind wins", Errorf(ErrUnavailable, "model: %w", Errorf(ErrBadRequest, "x")), 503, "model: x"},
		{"joined lines", errors.Join(bad, Errorf(ErrBadImage, "second\nline")), 422, "image is 3x3; second; line"},
		{"deadline", fmt.Errorf("while grounding: %w", context.DeadlineExceeded), 504, "while grounding: context deadline exceeded"},
		{"cancelled", context.Canceled, 503, "context canceled"},
		{"plain", errors.New("boom"), 500, "boom"},
	}
	for _, tt := range tests {
		if got := Code(tt.err); got != tt.code {
			t.Errorf("%s: code %d, want %d", tt.name, got, tt.code)
		}
		if got := Describe(tt.err); got != tt.desc {
			t.Errorf("%s: description %q, want %q", tt.name, got, tt.desc)
		}
	}
	if !errors.Is(bad, ErrBadImage) || errors.Is(bad, ErrBadRequest) {
		t.Error("errors.Is does not tell kinds apart")
	}
	for _, k := range Kinds {
		if want := k.Code() >= 400 && k.Code() < 500; k.Permanent() != want {
			t.Errorf("%s: permanent %v", k, k.Permanent())
		}
	}
}

func TestProblemsReportEverything(t *testing.T) {
	p := NewProblems("layout")
	p.AtLeast("max_objects", 0, 1)
	p.FloatRange("merge_iou", 2, 0, 1)
	outer := NewProblems("")
	outer.Add("queue.size", "is too small")
	outer.Merge(p.Err())
	err := outer.Err()
	want := "queue.size: is too small\nlayout.max_objects: 0 is too small: must be at least 1\nlayout.merge_iou: 2 is out of range: use 0..1"
	if !errors.Is(err, ErrConfig) || err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if NewProblems("x").Err() != nil {
		t.Error("no problems, yet an error")
	}
}
