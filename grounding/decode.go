package grounding

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/png"
	"io"
	"unicode/utf8"

	"paliprompt/core"

	"golang.org/x/image/webp"
)

// DefaultMaxPixels is the pixel limit DecodeImage applies when
// DecodeOptions.MaxPixels is zero: 50 Mpx, well above any camera photo and
// far below what would exhaust memory (a decoded 50 Mpx image is 200 MB).
const DefaultMaxPixels = 50_000_000

// DecodeOptions control DecodeImage.
type DecodeOptions struct {
	// MaxPixels is the largest width*height accepted, checked from the
	// header before any pixel is decoded (decompression bombs). Zero means
	// DefaultMaxPixels; negative means no limit.
	MaxPixels int
	// ApplyEXIF rotates and flips the image by its EXIF orientation tag
	// (JPEG APP1, PNG eXIf, WebP EXIF), so that what is grounded is what a
	// viewer shows. Hugging Face does not do this; parity images carry no
	// orientation.
	ApplyEXIF bool
	// FastMinSize, when set, lets a JPEG decode at 1/2, 1/4 or 1/8 of its
	// size (libjpeg's DCT scaling, several times faster) as long as both
	// sides stay at least this large. It is the opt-in fast mode: the
	// pixels are no longer Pillow's, so the model sees a slightly
	// different image. ImageInfo keeps the full size, and every box stays
	// in its pixels.
	FastMinSize image.Point
}

// ImageInfo describes a decoded image: its format and its size in pixels
// (after the EXIF orientation, when applied). With FastMinSize the image
// itself may be smaller than Width x Height.
type ImageInfo struct {
	Format        string
	Width, Height int
}

// imageFormat is one format DecodeImage reads.
type imageFormat struct {
	name   string
	magic  func([]byte) bool
	decode func(data []byte, scale int) (image.Image, error)
	config func(data []byte) (image.Config, error)
}

// formats are the image types DecodeImage reads. They are matched by magic
// bytes here rather than through image.RegisterFormat, so that no other
// package's registrations change what the service accepts. Only JPEG
// decodes at a scale.
var formats = []imageFormat{
	{"jpeg", hasPrefix("\xff\xd8\xff"), decodeJPEG, jpegConfig},
	{"png", hasPrefix("\x89PNG\r\n\x1a\n"), fullSize(png.Decode), configOf(png.DecodeConfig)},
	{"gif", func(b []byte) bool { return hasPrefix("GIF87a")(b) || hasPrefix("GIF89a")(b) }, fullSize(gif.Decode), configOf(gif.DecodeConfig)},
	{"webp", func(b []byte) bool { return len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP" }, fullSize(webp.Decode), configOf(webp.DecodeConfig)},
}

func fullSize(decode func(io.Reader) (image.Image, error)) func([]byte, int) (image.Image, error) {
	return func(data []byte, _ int) (image.Image, error) { return decode(bytes.NewReader(data)) }
}

func configOf(config func(io.Reader) (image.Config, error)) func([]byte) (image.Config, error) {
	return func(data []byte) (image.Config, error) { return config(bytes.NewReader(data)) }
}

func hasPrefix(p string) func([]byte) bool {
	return func(b []byte) bool { return bytes.HasPrefix(b, []byte(p)) }
}

// DecodeImage decodes a JPEG, PNG (8 or 16 bit, palette, transparency),
// WebP or GIF (first frame) image and returns it with its format and size.
// JPEGs decode with libjpeg-turbo as Pillow does (grounding/internal/jpeg;
// image/jpeg in builds without cgo).
//
// Errors wrap ErrUnsupportedImage when the bytes are not one of these
// formats (naming what they look like instead), and ErrBadImage when the
// image is larger than the pixel limit or truncated or corrupt (naming the
// format and the decoder's complaint).
//
// The returned image keeps its decoded colour model; ToRGB converts it the
// way PIL does. When an EXIF orientation other than 1 is applied the image
// comes back already converted by ToRGB (rotating first would need one
// rotation per colour model; converting first gives the same pixels).
func DecodeImage(data []byte, opts DecodeOptions) (image.Image, ImageInfo, error) {
	f, err := sniffFormat(data)
	if err != nil {
		return nil, ImageInfo{}, err
	}
	info := ImageInfo{Format: f.name}
	cfg, err := f.config(data)
	if err != nil {
		return nil, info, core.Errorf(core.ErrBadImage, "corrupt %s header: %v", f.name, err)
	}
	if err := checkPixels(cfg.Width, cfg.Height, opts.MaxPixels); err != nil {
		return nil, info, err
	}
	info.Width, info.Height = cfg.Width, cfg.Height
	img, err := f.decode(data, dctScale(cfg, opts.FastMinSize))
	if err != nil {
		return nil, info, core.Errorf(core.ErrBadImage, "truncated or corrupt %s: %v", f.name, err)
	}
	if b := img.Bounds(); b.Empty() {
		return nil, info, core.Errorf(core.ErrBadImage, "%s image is empty (%dx%d)", f.name, b.Dx(), b.Dy())
	}
	img = normalizeDecoded(f.name, img)
	if opts.ApplyEXIF {
		if o := exifOrientation(f.name, data); o > 1 {
			img = orient(ToRGB(img), o)
			if o >= 5 { // the orientations that turn the image a quarter
				info.Width, info.Height = info.Height, info.Width
			}
		}
	}
	return img, info, nil
}

// dctScale is the largest JPEG scale (1, 2, 4, 8) that keeps both sides
// at least min; 1 without a minimum.
func dctScale(cfg image.Config, min image.Point) int {
	if min.X <= 0 || min.Y <= 0 {
		return 1
	}
	scale := 1
	for s := 2; s <= 8; s *= 2 {
		if cfg.Width/s >= min.X && cfg.Height/s >= min.Y {
			scale = s
		}
	}
	return scale
}

// normalizeDecoded converts what the generic colour conversion cannot
// tell apart: lossy WebP decodes to image.YCbCr like JPEG does, but its
// planes are limited-range BT.601, so it is converted here with libwebp's
// arithmetic.
func normalizeDecoded(format string, img image.Image) image.Image {
	if format != "webp" {
		return img
	}
	switch m := img.(type) {
	case *image.YCbCr:
		return webpToRGB(m, nil, 0)
	case *image.NYCbCrA:
		return webpToRGB(&m.YCbCr, m.A[m.AOffset(m.Rect.Min.X, m.Rect.Min.Y):], m.AStride)
	}
	return img
}

// checkPixels rejects images whose header promises more pixels than the limit.
func checkPixels(w, h, limit int) error {
	if limit == 0 {
		limit = DefaultMaxPixels
	}
	if w <= 0 || h <= 0 {
		return core.Errorf(core.ErrBadImage, "image header says %dx%d pixels", w, h)
	}
	if limit > 0 && int64(w)*int64(h) > int64(limit) {
		return core.Errorf(core.ErrBadImage, "image is %dx%d = %s, limit is %s",
			w, h, megapixels(int64(w)*int64(h)), megapixels(int64(limit)))
	}
	return nil
}

func megapixels(n int64) string {
	if n < 100_000 {
		return fmt.Sprintf("%d px", n)
	}
	if n >= 10_000_000 || n%1_000_000 == 0 {
		return fmt.Sprintf("%d Mpx", (n+500_000)/1_000_000)
	}
	return fmt.Sprintf("%.1f Mpx", float64(n)/1e6)
}

// sniffFormat picks the decoder from the magic bytes, or says what the
// bytes look like when no decoder fits.
func sniffFormat(data []byte) (imageFormat, error) {
	for _, f := range formats {
		if f.magic(data) {
			return f, nil
		}
	}
	return imageFormat{}, core.Errorf(core.ErrUnsupportedImage, "%s", describeBytes(data))
}

// otherFormats are recognisable types we do not read, for error messages.
var otherFormats = []struct {
	name  string
	magic func([]byte) bool
}{
	{"a BMP image", hasPrefix("BM")},
	{"a TIFF image", func(b []byte) bool { return hasPrefix("II*\x00")(b) || hasPrefix("MM\x00*")(b) }},
	{"a HEIC/AVIF image", func(b []byte) bool { return len(b) >= 12 && string(b[4:8]) == "ftyp" }},
	{"a JPEG XL image", func(b []byte) bool { return hasPrefix("\xff\x0a")(b) || hasPrefix("\x00\x00\x00\x0cJXL ")(b) }},
	{"a JPEG 2000 image", hasPrefix("\x00\x00\x00\x0cjP  ")},
	{"an ICO image", hasPrefix("\x00\x00\x01\x00")},
	{"a PDF document", hasPrefix("%PDF")},
	{"a ZIP archive", hasPrefix("PK\x03\x04")},
	{"a gzip archive", hasPrefix("\x1f\x8b")},
	{"a RIFF file that is not WebP", hasPrefix("RIFF")},
}

// describeBytes names what data looks like, for an unsupported-type error.
func describeBytes(data []byte) string {
	const want = "want JPEG, PNG, WebP or GIF"
	if len(data) == 0 {
		return "no image data (empty body)"
	}
	for _, o := range otherFormats {
		if o.magic(data) {
			return fmt.Sprintf("%s, %s", o.name, want)
		}
	}
	head := data[:min(len(data), 512)]
	if looksLikeText(head) {
		trimmed := bytes.TrimSpace(head)
		kind := "text"
		switch {
		case bytes.HasPrefix(trimmed, []byte("{")) || bytes.HasPrefix(trimmed, []byte("[")):
			kind = "JSON (send it with Content-Type: application/json)"
		case bytes.Contains(bytes.ToLower(trimmed), []byte("<svg")):
			kind = "an SVG image (vector images are not supported)"
		case bytes.HasPrefix(trimmed, []byte("<")):
			kind = "HTML or XML"
		}
		return fmt.Sprintf("not an image (looks like %s), %s", kind, want)
	}
	return fmt.Sprintf("not an image (unknown format, starts with % x), %s", head[:min(len(head), 8)], want)
}

// looksLikeText reports whether b is valid UTF-8 without control characters
// other than whitespace. A cut multi-byte rune at the end is allowed.
func looksLikeText(b []byte) bool {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return len(b)-i < utf8.UTFMax && !utf8.FullRune(b[i:])
		}
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' {
			return false
		}
		i += n
	}
	return true
}

// errNoEXIF is returned by the EXIF readers when there is no orientation.
var errNoEXIF = errors.New("no EXIF orientation")
