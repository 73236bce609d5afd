package jpeg

import (
	"bytes"
	"errors"
	"image"
	gojpeg "image/jpeg"
	"strings"
	"testing"
)

func encoded(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gojpeg.Encode(&buf, img, &gojpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func rgbSink(w, h int) (image.Image, []byte) {
	m := image.NewRGBA(image.Rect(0, 0, w, h)) // any image: the test reads pix
	pix := make([]byte, w*h*3)
	return m, pix
}

func TestDecodeAndConfig(t *testing.T) {
	colour := image.NewRGBA(image.Rect(0, 0, 33, 17))
	for i := range colour.Pix {
		colour.Pix[i] = 200
	}
	grey := image.NewGray(image.Rect(0, 0, 20, 10))
	for _, tc := range []struct {
		name string
		img  image.Image
		want string // the Go type Decode returns
	}{{"colour", colour, "*image.RGBA"}, {"grey", grey, "*image.Gray"}} { // CMYK: grounding's Pillow fixtures
		data := encoded(t, tc.img)
		for _, scale := range []int{1, 2, 8} {
			info, err := Config(data, scale)
			if err != nil {
				t.Fatal(err)
			}
			b := tc.img.Bounds()
			if w, h := (b.Dx()+scale-1)/scale, (b.Dy()+scale-1)/scale; info.Width != w || info.Height != h {
				t.Errorf("%s 1/%d: %dx%d, want %dx%d", tc.name, scale, info.Width, info.Height, w, h)
			}
			img, err := Decode(data, scale, rgbSink)
			if err != nil {
				t.Fatal(err)
			}
			if got := typeName(img); got != tc.want || img.Bounds().Dx() != info.Width {
				t.Errorf("%s 1/%d: %s %v", tc.name, scale, got, img.Bounds())
			}
		}
	}
}

func typeName(img image.Image) string {
	switch img.(type) {
	case *image.RGBA:
		return "*image.RGBA"
	case *image.Gray:
		return "*image.Gray"
	case *image.CMYK:
		return "*image.CMYK"
	}
	return "other"
}

func TestDecodeErrors(t *testing.T) {
	white := image.NewGray(image.Rect(0, 0, 64, 64))
	for i := range white.Pix {
		white.Pix[i] = uint8(i * 7)
	}
	good := encoded(t, white)
	for _, tc := range []struct {
		name  string
		data  []byte
		scale int
		want  string
	}{
		{"empty", nil, 1, "no data"},
		{"not a jpeg", []byte("\xff\xd8\xffgarbage"), 1, "jpeg:"},
		{"bad scale", good, 3, "scale 1/3"},
		{"cut in the header", good[:20], 1, "jpeg:"},
	} {
		_, err := Decode(tc.data, tc.scale, rgbSink)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.want)
		}
	}
	if _, err := Decode(good[:len(good)-200], 1, rgbSink); !errors.Is(err, ErrTruncated) {
		t.Errorf("cut in the scan: error %v, want ErrTruncated", err)
	}
}
