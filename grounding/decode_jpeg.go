//go:build cgo

package grounding

import (
	"errors"
	"image"

	"paliprompt/core"
	"paliprompt/grounding/internal/jpeg"
)

// decodeJPEG decodes with libjpeg-turbo as Pillow does: RGB images straight
// into an *core.RGB (libjpeg's upsampling and colour conversion), grey and CMYK
// ones in their own models.
func decodeJPEG(data []byte, scale int) (image.Image, error) {
	img, err := jpeg.Decode(data, scale, func(w, h int) (image.Image, []byte) {
		m := core.NewRGB(image.Rect(0, 0, w, h))
		return m, m.Pix
	})
	if errors.Is(err, jpeg.ErrTruncated) {
		return nil, errors.New("the data ends before the image does")
	}
	return img, err
}

func jpegConfig(data []byte) (image.Config, error) {
	info, err := jpeg.Config(data, 1)
	if err != nil {
		return image.Config{}, err
	}
	return image.Config{Width: info.Width, Height: info.Height}, nil
}
