//go:build !cgo

package grounding

// jpegDiff is the largest difference from Pillow allowed for a JPEG:
// image/jpeg's inverse DCT is not libjpeg's.
func jpegDiff(withoutCgo int) int { return withoutCgo }
