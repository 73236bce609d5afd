//go:build !cgo

package grounding

import (
	"bytes"
	"image"
	"image/jpeg"
)

// decodeJPEG without cgo: Go's decoder, at full size. Its inverse DCT is
// not libjpeg's (values differ from Pillow's by 1-3 levels); ToRGB still
// upsamples and converts the colours as libjpeg does.
func decodeJPEG(data []byte, _ int) (image.Image, error) { return jpeg.Decode(bytes.NewReader(data)) }

func jpegConfig(data []byte) (image.Config, error) { return jpeg.DecodeConfig(bytes.NewReader(data)) }
