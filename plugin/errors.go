package plugin

import (
	"context"
	"errors"
	"strings"

	"paliprompt/grounding"
	"paliprompt/layouts"
	"paliprompt/sdxl"
)

// Sentinel errors of the plugin. Each maps to a reply code (DESIGN.md);
// grounding's sentinels map alongside them.
var (
	// ErrBadRequest: a malformed request (400).
	ErrBadRequest = errors.New("plugin: bad request")
	// ErrTooLarge: a body, image or text over its limit (413).
	ErrTooLarge = errors.New("plugin: too large")
	// ErrBusy: the queue is full or the service is stopping (503).
	ErrBusy = errors.New("plugin: busy")
)

// Reply codes, as sent in the Nats-Service-Error-Code header.
const (
	CodeBadRequest  = 400
	CodeTooLarge    = 413
	CodeUnsupported = 415
	CodeBadImage    = 422
	CodeInternal    = 500
	CodeUnavailable = 503
	CodeDeadline    = 504
)

// ErrorCode maps an error to its reply code.
func ErrorCode(err error) int {
	switch {
	case errors.Is(err, ErrBadRequest), errors.Is(err, grounding.ErrBadRequest):
		return CodeBadRequest
	case errors.Is(err, ErrTooLarge):
		return CodeTooLarge
	case errors.Is(err, grounding.ErrUnsupportedImage):
		return CodeUnsupported
	case errors.Is(err, grounding.ErrBadImage):
		return CodeBadImage
	case errors.Is(err, ErrBusy), errors.Is(err, grounding.ErrUnavailable), errors.Is(err, context.Canceled):
		return CodeUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return CodeDeadline
	}
	return CodeInternal
}

// permanent reports whether retrying a request can never help: the
// request or its image is bad. Everything else (busy, unavailable,
// deadline, internal) may succeed on another try.
func permanent(code int) bool {
	switch code {
	case CodeBadRequest, CodeTooLarge, CodeUnsupported, CodeBadImage:
		return true
	}
	return false
}

// sentinelTexts are the sentinel messages that describe the class of an
// error; the code already says that, so descriptions leave them out.
var sentinelTexts = []string{
	layouts.ErrBadInput.Error(), sdxl.ErrBadRequest.Error(),
	ErrBadRequest.Error(), ErrTooLarge.Error(), ErrBusy.Error(),
	grounding.ErrBadRequest.Error(), grounding.ErrUnsupportedImage.Error(),
	grounding.ErrBadImage.Error(), grounding.ErrUnavailable.Error(),
}

// Describe returns the human-readable description of an error for a reply:
// the error's text without the sentinel class names.
func Describe(err error) string {
	s := err.Error()
	for _, t := range sentinelTexts {
		s = strings.ReplaceAll(s, t+": ", "")
	}
	// A description travels in a header: one line.
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
