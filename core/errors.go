package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Kind is a class of error and the reply code it maps to. Every error the
// stages return for a reason the caller can act on wraps one kind, made
// with Errorf; the plugin answers with Code(err) and Describe(err). Test
// for a kind with errors.Is(err, core.ErrBadRequest).
type Kind struct {
	name string
	code int
}

// The error kinds, one per reply code of the NATS contract (README), plus
// ErrConfig for a configuration that cannot start.
var (
	// ErrBadRequest: the request is malformed (a bad field, a bad option).
	ErrBadRequest = &Kind{"bad request", 400}
	// ErrNotFound: the request names something that does not exist.
	ErrNotFound = &Kind{"not found", 404}
	// ErrTooLarge: a body, image or text over its limit.
	ErrTooLarge = &Kind{"too large", 413}
	// ErrUnsupportedImage: the bytes are not an image type we read.
	ErrUnsupportedImage = &Kind{"unsupported image type", 415}
	// ErrBadImage: an image type we read, but undecodable or too large.
	ErrBadImage = &Kind{"bad image", 422}
	// ErrInternal: a fault of ours.
	ErrInternal = &Kind{"internal error", 500}
	// ErrUnavailable: the service cannot take the request now: the queue
	// is full, it is stopping, or a model file, library or decoder needed
	// for it is missing.
	ErrUnavailable = &Kind{"unavailable", 503}
	// ErrDeadline: the request's deadline passed.
	ErrDeadline = &Kind{"deadline exceeded", 504}
	// ErrConfig: a configuration value is invalid (reported at start-up).
	ErrConfig = &Kind{"invalid config", 500}
)

// Kinds lists every kind, for documentation and tests.
var Kinds = []*Kind{ErrBadRequest, ErrNotFound, ErrTooLarge, ErrUnsupportedImage, ErrBadImage,
	ErrInternal, ErrUnavailable, ErrDeadline, ErrConfig}

// Error is the kind's name ("bad request").
func (k *Kind) Error() string { return k.name }

// Code is the reply code of the kind.
func (k *Kind) Code() int { return k.code }

// Permanent reports whether retrying can never help: the request or its
// image is at fault, not the service.
func (k *Kind) Permanent() bool { return k.code >= 400 && k.code < 500 }

// classified is an error of a kind. Its text is the detail alone: the
// kind is carried as a value, never spelled into the message, so nothing
// needs to strip it before the message reaches a user.
type classified struct {
	kind *Kind
	err  error
}

func (e *classified) Error() string   { return e.err.Error() }
func (e *classified) Unwrap() []error { return []error{e.kind, e.err} }

// Errorf returns an error of kind k whose text is the formatted detail.
// The format may wrap other errors with %w; they stay reachable through
// errors.Is and errors.As.
func Errorf(k *Kind, format string, args ...any) error {
	return &classified{kind: k, err: fmt.Errorf(format, args...)}
}

// KindOf returns the kind of err: the outermost kind it wraps; context
// errors are ErrDeadline (deadline exceeded) and ErrUnavailable
// (cancelled: the service is stopping); anything else is ErrInternal.
func KindOf(err error) *Kind {
	var k *Kind
	switch {
	case errors.As(err, &k):
		return k
	case errors.Is(err, context.DeadlineExceeded):
		return ErrDeadline
	case errors.Is(err, context.Canceled):
		return ErrUnavailable
	}
	return ErrInternal
}

// Code is the reply code of err (KindOf).
func Code(err error) int { return KindOf(err).code }

// Describe returns the human-readable description of an error for a reply
// header: its text on one line.
func Describe(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
