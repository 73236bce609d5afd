package grounding

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"paliprompt/core"
)

// readDecodeFixture reads grounding/testdata/decode/<name>.
func readDecodeFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "decode", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantRGB reads PIL's RGB for a fixture (made by testdata/decode/make.py).
func wantRGB(t *testing.T, name string) *core.RGB {
	t.Helper()
	img, _, err := DecodeImage(readDecodeFixture(t, filepath.Join("want", name+".png")), DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ToRGB(img)
}

// maxDiff returns the largest per-channel difference of two RGB images
// and how many channel values differ.
func maxDiff(t *testing.T, got, want *core.RGB) (int, int) {
	t.Helper()
	if got.Rect.Size() != want.Rect.Size() {
		t.Fatalf("size %v, want %v", got.Rect.Size(), want.Rect.Size())
	}
	worst, n := 0, 0
	for i := range got.Pix {
		d := int(got.Pix[i]) - int(want.Pix[i])
		if d != 0 {
			n++
		}
		worst = max(worst, d, -d)
	}
	return worst, n
}

func TestDecodeMatchesPIL(t *testing.T) {
	for _, tc := range []struct {
		name    string
		format  string
		maxDiff int // JPEG without cgo: image/jpeg's inverse DCT differs from libjpeg's
	}{
		{"rgb.png", "png", 0},
		{"rgba.png", "png", 0},
		{"la.png", "png", 0},
		{"gray.png", "png", 0},
		{"gray16.png", "png", 0},
		{"palette.png", "png", 0},
		{"palette_trns.png", "png", 0},
		{"rgb_trns.png", "png", 0},
		{"lossy.webp", "webp", 0},
		{"lossy_alpha.webp", "webp", 0},
		{"lossless.webp", "webp", 0},
		{"anim.gif", "gif", 0},
		{"ycc444.jpg", "jpeg", jpegDiff(3)},
		{"ycc422.jpg", "jpeg", jpegDiff(3)},
		{"ycc420.jpg", "jpeg", jpegDiff(3)},
		{"gray.jpg", "jpeg", jpegDiff(1)},
		{"cmyk.jpg", "jpeg", jpegDiff(2)},
		{"ycc420_odd.jpg", "jpeg", jpegDiff(8)},
		{"ycc422_odd.jpg", "jpeg", jpegDiff(8)},
		{"ycc444_odd.jpg", "jpeg", jpegDiff(8)},
		{"progressive420.jpg", "jpeg", jpegDiff(8)},
		{"progressive444.jpg", "jpeg", jpegDiff(8)},
		{"restart_blocks.jpg", "jpeg", jpegDiff(8)},
		{"restart_rows.jpg", "jpeg", jpegDiff(8)},
		{"gray_progressive.jpg", "jpeg", jpegDiff(8)},
		{"cmyk_odd.jpg", "jpeg", jpegDiff(8)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, info, err := DecodeImage(readDecodeFixture(t, tc.name), DecodeOptions{ApplyEXIF: true})
			if err != nil {
				t.Fatal(err)
			}
			if info.Format != tc.format {
				t.Errorf("format %q, want %q", info.Format, tc.format)
			}
			worst, n := maxDiff(t, ToRGB(img), wantRGB(t, tc.name))
			if worst > tc.maxDiff {
				t.Errorf("%d channel values differ from PIL, by up to %d (allowed %d)", n, worst, tc.maxDiff)
			}
		})
	}
}

func TestDecodeEXIFOrientation(t *testing.T) {
	for o := 1; o <= 8; o++ {
		name := "orient" + strconv.Itoa(o) + ".png"
		t.Run(name, func(t *testing.T) {
			img, _, err := DecodeImage(readDecodeFixture(t, name), DecodeOptions{ApplyEXIF: true})
			if err != nil {
				t.Fatal(err)
			}
			if worst, n := maxDiff(t, ToRGB(img), wantRGB(t, name)); n > 0 {
				t.Errorf("%d values differ from PIL's exif_transpose, by up to %d", n, worst)
			}
		})
	}
	t.Run("jpeg", func(t *testing.T) {
		img, _, err := DecodeImage(readDecodeFixture(t, "orient6.jpg"), DecodeOptions{ApplyEXIF: true})
		if err != nil {
			t.Fatal(err)
		}
		if worst, _ := maxDiff(t, ToRGB(img), wantRGB(t, "orient6.jpg")); worst > 3 {
			t.Errorf("differs from PIL's exif_transpose by up to %d", worst)
		}
	})
	t.Run("off", func(t *testing.T) {
		img, _, err := DecodeImage(readDecodeFixture(t, "orient6.png"), DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := img.Bounds().Size(); got != (image.Point{8, 6}) {
			t.Errorf("size %v without ApplyEXIF, want the stored 8x6", got)
		}
	})
}

func TestDecode16BitRGBKeepsHighByte(t *testing.T) {
	src := image.NewRGBA64(image.Rect(0, 0, 3, 1))
	for x, v := range []uint16{0x00ff, 0x1234, 0xfe01} {
		src.SetRGBA64(x, 0, color.RGBA64{v, v, v, 0xffff})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, src); err != nil {
		t.Fatal(err)
	}
	img, _, err := DecodeImage(buf.Bytes(), DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := ToRGB(img).Pix
	want := []uint8{0x00, 0x00, 0x00, 0x12, 0x12, 0x12, 0xfe, 0xfe, 0xfe}
	if !bytes.Equal(got, want) {
		t.Errorf("got %v, want %v (PIL keeps the high byte)", got, want)
	}
}

// pngWithSize returns a valid 1x1 PNG whose IHDR claims w x h pixels.
func pngWithSize(t *testing.T, w, h uint32) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1))); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

func TestDecodeErrors(t *testing.T) {
	rgb := readDecodeFixture(t, "rgb.png")
	jpg := readDecodeFixture(t, "ycc420.jpg")
	for _, tc := range []struct {
		name string
		data []byte
		opts DecodeOptions
		want error
		msg  string
	}{
		{"empty", nil, DecodeOptions{}, core.ErrUnsupportedImage, "empty body"},
		{"text", []byte("hello, this is not an image\n"), DecodeOptions{}, core.ErrUnsupportedImage, "looks like text"},
		{"json", []byte(`{"image_b64": "..."}`), DecodeOptions{}, core.ErrUnsupportedImage, "JSON"},
		{"html", []byte("<!DOCTYPE html><html></html>"), DecodeOptions{}, core.ErrUnsupportedImage, "HTML"},
		{"svg", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>`), DecodeOptions{}, core.ErrUnsupportedImage, "SVG"},
		{"bmp", []byte("BM\x36\x00\x00\x00\x00\x00"), DecodeOptions{}, core.ErrUnsupportedImage, "BMP"},
		{"heic", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"), DecodeOptions{}, core.ErrUnsupportedImage, "HEIC"},
		{"binary", []byte{0, 1, 2, 3, 0xfe, 0xfd}, DecodeOptions{}, core.ErrUnsupportedImage, "unknown format"},
		{"truncated png", rgb[:len(rgb)/2], DecodeOptions{}, core.ErrBadImage, "truncated or corrupt png"},
		{"truncated jpeg", jpg[:len(jpg)/2], DecodeOptions{}, core.ErrBadImage, "jpeg"},
		{"png header only", rgb[:20], DecodeOptions{}, core.ErrBadImage, "corrupt png header"},
		{"bomb", pngWithSize(t, 30000, 30000), DecodeOptions{}, core.ErrBadImage, "image is 30000x30000 = 900 Mpx, limit is 50 Mpx"},
		{"over custom limit", rgb, DecodeOptions{MaxPixels: 1000}, core.ErrBadImage, "image is 40x30 = 1200 px, limit is 1000 px"},
		{"zero size", pngWithSize(t, 0, 10), DecodeOptions{}, core.ErrBadImage, "png"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeImage(tc.data, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

func TestDecodeNoLimit(t *testing.T) {
	if _, _, err := DecodeImage(readDecodeFixture(t, "rgb.png"), DecodeOptions{MaxPixels: -1}); err != nil {
		t.Fatal(err)
	}
}

func TestTIFFOrientationMalformed(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		[]byte("II*\x00"),
		[]byte("II*\x00\xff\xff\xff\xff"),
		[]byte("MM\x00*\x00\x00\x00\x08\xff\xff"),
		[]byte("MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x09\x00\x00"),
	} {
		if o, err := tiffOrientation(b); err == nil {
			t.Errorf("tiffOrientation(%q) = %d, want an error", b, o)
		}
	}
	good := []byte("MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00")
	if o, err := tiffOrientation(good); err != nil || o != 6 {
		t.Errorf("tiffOrientation = %d, %v; want 6", o, err)
	}
}

// FuzzDecodeImage checks that no input makes the decoder panic or hang,
// and that every failure wraps one of the two image sentinels.
func FuzzDecodeImage(f *testing.F) {
	for _, name := range []string{"rgb.png", "palette_trns.png", "ycc420.jpg", "cmyk.jpg", "lossy.webp", "lossless.webp", "anim.gif", "orient6.jpg", "orient5.png"} {
		f.Add(readDecodeFixture(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, _, err := DecodeImage(data, DecodeOptions{MaxPixels: 1 << 20, ApplyEXIF: true})
		if err != nil {
			if !errors.Is(err, core.ErrBadImage) && !errors.Is(err, core.ErrUnsupportedImage) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		rgb := ToRGB(img)
		if len(rgb.Pix) != 3*rgb.Rect.Dx()*rgb.Rect.Dy() {
			t.Fatalf("RGB buffer of %d bytes for %v", len(rgb.Pix), rgb.Rect)
		}
	})
}

// TestDecodeFastMode: with a minimum size a large JPEG decodes at a DCT
// scale that keeps both sides at least that large, and the info keeps the
// full size; other formats and small JPEGs decode at full size.
func TestDecodeFastMode(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 1600, 1200))
	for i := range img.Pix {
		img.Pix[i] = uint8(i / 7)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		min  int
		want image.Point
	}{{0, image.Pt(1600, 1200)}, {300, image.Pt(400, 300)}, {500, image.Pt(800, 600)}, {100, image.Pt(200, 150)}, {1300, image.Pt(1600, 1200)}} {
		got, info, err := DecodeImage(buf.Bytes(), DecodeOptions{FastMinSize: image.Pt(tc.min, tc.min)})
		if err != nil {
			t.Fatal(err)
		}
		want := tc.want
		if jpegDiff(1) > 0 { // image/jpeg has no DCT scaling
			want = image.Pt(1600, 1200)
		}
		if got.Bounds().Size() != want || info.Width != 1600 || info.Height != 1200 {
			t.Errorf("min side %d: image %v, info %+v; want %v and 1600x1200", tc.min, got.Bounds().Size(), info, want)
		}
	}
}
