package grounding

import "errors"

// Sentinel errors. Callers test them with errors.Is; every returned error
// wraps one of them with the detail that names the problem. The plugin
// maps them to reply codes.
var (
	// ErrBadRequest: the request itself is malformed (no image, bad option).
	ErrBadRequest = errors.New("grounding: bad request")
	// ErrUnsupportedImage: the bytes are not an image type we read.
	ErrUnsupportedImage = errors.New("grounding: unsupported image type")
	// ErrBadImage: an image type we read, but undecodable or too large.
	ErrBadImage = errors.New("grounding: bad image")
	// ErrUnavailable: a model file, library or decoder needed for the
	// request is missing or failed to load.
	ErrUnavailable = errors.New("grounding: unavailable")
)
