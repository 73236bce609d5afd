package grounding

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
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
}

// imageFormat is one format DecodeImage reads.
type imageFormat struct {
	name         string
	magic        func([]byte) bool
	decode       func(io.Reader) (image.Image, error)
	decodeConfig func(io.Reader) (image.Config, error)
}

// formats are the image types DecodeImage reads. They are matched by magic
// bytes here rather than through image.RegisterFormat, so that no other
// package's registrations change what the service accepts.
var formats = []imageFormat{
	{"jpeg", hasPrefix("\xff\xd8\xff"), jpeg.Decode, jpeg.DecodeConfig},
	{"png", hasPrefix("\x89PNG\r\n\x1a\n"), png.Decode, png.DecodeConfig},
	{"gif", func(b []byte) bool { return hasPrefix("GIF87a")(b) || hasPrefix("GIF89a")(b) }, gif.Decode, gif.DecodeConfig},
	{"webp", func(b []byte) bool { return len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP" }, webp.Decode, webp.DecodeConfig},
}

func hasPrefix(p string) func([]byte) bool {
	return func(b []byte) bool { return bytes.HasPrefix(b, []byte(p)) }
}

// DecodeImage decodes a JPEG, PNG (8 or 16 bit, palette, transparency),
// WebP or GIF (first frame) image and returns it with its format name.
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
func DecodeImage(data []byte, opts DecodeOptions) (image.Image, string, error) {
	f, err := sniffFormat(data)
	if err != nil {
		return nil, "", err
	}
	cfg, err := f.decodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, f.name, core.Errorf(core.ErrBadImage, "corrupt %s header: %v", f.name, err)
	}
	if err := checkPixels(cfg.Width, cfg.Height, opts.MaxPixels); err != nil {
		return nil, f.name, err
	}
	img, err := f.decode(bytes.NewReader(data))
	if err != nil {
		return nil, f.name, core.Errorf(core.ErrBadImage, "truncated or corrupt %s: %v", f.name, err)
	}
	if b := img.Bounds(); b.Empty() {
		return nil, f.name, core.Errorf(core.ErrBadImage, "%s image is empty (%dx%d)", f.name, b.Dx(), b.Dy())
	}
	img = normalizeDecoded(f.name, img)
	if opts.ApplyEXIF {
		if o := exifOrientation(f.name, data); o > 1 {
			img = orient(ToRGB(img), o)
		}
	}
	return img, f.name, nil
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
