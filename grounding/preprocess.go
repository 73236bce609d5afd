package grounding

import (
	"encoding/json"
	"fmt"
	"image"
	"os"

	"paliprompt/core"
)

// Preprocessor turns an image into the vision encoder's pixel_values the
// way transformers' slow SigLIP image processor does (the reference the
// goldens come from): convert to RGB (ToRGB), resize with PIL's filter
// (ResizeRGB), then per channel
//
//	v = float32(float64(u) * rescale_factor)
//	value = (v - float32(mean)) / float32(std)   (float32 arithmetic)
//
// laid out C-order [3, height, width]. Its settings come from the model
// folder's preprocessor_config.json.
type Preprocessor struct {
	Width, Height int
	Resample      int // PIL code: 2 bilinear, 3 bicubic
	// lut maps each uint8 value of each channel to its float32 value.
	lut [3][256]float32
}

// preprocessorConfig is the part of preprocessor_config.json we read.
type preprocessorConfig struct {
	Size struct {
		Height int `json:"height"`
		Width  int `json:"width"`
	} `json:"size"`
	ImageMean     []float64 `json:"image_mean"`
	ImageStd      []float64 `json:"image_std"`
	RescaleFactor *float64  `json:"rescale_factor"`
	Resample      *int      `json:"resample"`
	DoResize      *bool     `json:"do_resize"`
	DoRescale     *bool     `json:"do_rescale"`
	DoNormalize   *bool     `json:"do_normalize"`
}

// LoadPreprocessor reads a preprocessor_config.json.
func LoadPreprocessor(path string) (*Preprocessor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, core.Errorf(core.ErrUnavailable, "read preprocessor config: %v", err)
	}
	var c preprocessorConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, core.Errorf(core.ErrUnavailable, "parse %s: %v", path, err)
	}
	p, err := newPreprocessor(c)
	if err != nil {
		return nil, core.Errorf(core.ErrUnavailable, "%s: %v", path, err)
	}
	return p, nil
}

func newPreprocessor(c preprocessorConfig) (*Preprocessor, error) {
	if c.Size.Height <= 0 || c.Size.Width <= 0 {
		return nil, fmt.Errorf("size must have positive height and width, got %dx%d", c.Size.Width, c.Size.Height)
	}
	if c.DoResize != nil && !*c.DoResize {
		return nil, fmt.Errorf("do_resize false is not supported (the vision encoder needs a fixed size)")
	}
	p := &Preprocessor{Width: c.Size.Width, Height: c.Size.Height, Resample: 3}
	if c.Resample != nil {
		p.Resample = *c.Resample
	}
	if _, err := filterForPIL(p.Resample); err != nil {
		return nil, err
	}
	scale := 1.0 / 255
	if c.RescaleFactor != nil {
		scale = *c.RescaleFactor
	}
	if c.DoRescale != nil && !*c.DoRescale {
		scale = 1
	}
	mean, std := []float64{0.5, 0.5, 0.5}, []float64{0.5, 0.5, 0.5}
	if c.ImageMean != nil {
		mean = c.ImageMean
	}
	if c.ImageStd != nil {
		std = c.ImageStd
	}
	normalize := c.DoNormalize == nil || *c.DoNormalize
	if normalize && (len(mean) != 3 || len(std) != 3) {
		return nil, fmt.Errorf("image_mean and image_std need 3 values, got %d and %d", len(mean), len(std))
	}
	for ch := range 3 {
		for u := range 256 {
			v := float32(float64(u) * scale)
			if normalize {
				if std[ch] == 0 {
					return nil, fmt.Errorf("image_std[%d] is 0", ch)
				}
				v = (v - float32(mean[ch])) / float32(std[ch])
			}
			p.lut[ch][u] = v
		}
	}
	return p, nil
}

// Resize returns the image at the model's size (uint8 RGB, PIL's resize).
func (p *Preprocessor) Resize(img image.Image) *core.RGB {
	f, _ := filterForPIL(p.Resample) // checked by the constructor
	return resizeRGB(ToRGB(img), p.Width, p.Height, f)
}

// PixelValues returns the image's pixel_values, C-order [3, Height, Width].
func (p *Preprocessor) PixelValues(img image.Image) []float32 {
	out := make([]float32, 3*p.Width*p.Height)
	p.Normalize(p.Resize(img), out)
	return out
}

// Normalize writes the pixel values of a model-sized RGB image into dst,
// C-order [3, Height, Width].
func (p *Preprocessor) Normalize(rgb *core.RGB, dst []float32) {
	plane := p.Width * p.Height
	for y := range p.Height {
		row := rgb.Pix[y*rgb.Stride:]
		for x := range p.Width {
			i := y*p.Width + x
			dst[i] = p.lut[0][row[3*x]]
			dst[plane+i] = p.lut[1][row[3*x+1]]
			dst[2*plane+i] = p.lut[2][row[3*x+2]]
		}
	}
}
