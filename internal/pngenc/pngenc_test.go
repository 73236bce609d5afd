package pngenc

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"testing"
)

// TestPixelsSurvive: what image/png decodes from Encode's output is the
// image, for every type and shape Encode writes itself.
func TestPixelsSurvive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(pix []byte, flat bool) {
		for i := range pix {
			if flat && i%7 != 0 {
				pix[i] = pix[max(i-1, 0)]
				continue
			}
			pix[i] = byte(rng.IntN(256))
		}
	}
	grayImg := func(w, h int) *image.Gray {
		g := image.NewGray(image.Rect(0, 0, w, h))
		fill(g.Pix, true)
		return g
	}
	opaque := func(w, h int) *image.RGBA {
		m := image.NewRGBA(image.Rect(0, 0, w, h))
		fill(m.Pix, false)
		for i := 3; i < len(m.Pix); i += 4 {
			m.Pix[i] = 255
		}
		return m
	}
	translucent := image.NewRGBA(image.Rect(0, 0, 9, 5))
	for i := range translucent.Pix {
		if i%4 == 3 {
			translucent.Pix[i] = byte(i * 13)
		}
	}
	for i := 0; i < len(translucent.Pix); i += 4 {
		a := translucent.Pix[i+3]
		translucent.Pix[i], translucent.Pix[i+1], translucent.Pix[i+2] = a/2, a, a/3
	}
	nrgba := image.NewNRGBA(image.Rect(0, 0, 7, 3))
	fill(nrgba.Pix, false)
	paletted := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.Black, color.White})
	paletted.Pix[5] = 1
	colours := image.NewPaletted(image.Rect(0, 0, 30, 20), color.Palette{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 9, 200, 255}, color.RGBA{1, 2, 3, 255}})
	for i := range colours.Pix {
		colours.Pix[i] = uint8(i / 70 % 3)
	}
	translucentPalette := image.NewPaletted(image.Rect(0, 0, 3, 3), color.Palette{color.NRGBA{255, 0, 0, 128}, color.White})
	tests := []struct {
		name string
		img  image.Image
	}{
		{"gray 1x1", grayImg(1, 1)},
		{"gray odd", grayImg(333, 77)},
		{"gray sub-image", grayImg(50, 40).SubImage(image.Rect(3, 5, 41, 39))},
		{"rgb", opaque(129, 65)},
		{"rgb sub-image", opaque(40, 40).SubImage(image.Rect(10, 10, 30, 25))},
		{"rgba translucent", translucent},
		{"nrgba", nrgba},
		{"paletted", paletted},
		{"paletted colours", colours},
		{"paletted with alpha (image/png)", translucentPalette},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := Bytes(tt.img)
			if err != nil {
				t.Fatal(err)
			}
			got, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			var ref bytes.Buffer
			if err := png.Encode(&ref, tt.img); err != nil {
				t.Fatal(err)
			}
			want, _ := png.Decode(&ref)
			b := tt.img.Bounds()
			if got.Bounds().Dx() != b.Dx() || got.Bounds().Dy() != b.Dy() {
				t.Fatalf("bounds %v, want %v", got.Bounds(), b)
			}
			for y := range b.Dy() {
				for x := range b.Dx() {
					g := color.NRGBAModel.Convert(got.At(x, y))
					w := color.NRGBAModel.Convert(want.At(want.Bounds().Min.X+x, want.Bounds().Min.Y+y))
					if g != w {
						t.Fatalf("pixel (%d, %d) = %v, want %v", x, y, g, w)
					}
				}
			}
			if _, ok := tt.img.(*image.Gray); ok {
				if _, ok := got.(*image.Gray); !ok {
					t.Errorf("grey image decoded as %T", got)
				}
			}
		})
	}
	if _, err := Bytes(image.NewGray(image.Rect(0, 0, 0, 3))); err == nil {
		t.Error("empty image encoded")
	}
}

// BenchmarkEncode compares Encode with image/png on a 1152x896 soft mask
// (SDXL's 1152x896 bucket) and prints the sizes.
func BenchmarkEncode(b *testing.B) {
	g := image.NewGray(image.Rect(0, 0, 1152, 896))
	for y := range 896 {
		for x := range 1152 {
			d := (x-576)*(x-576) + (y-448)*(y-448)
			switch {
			case d < 300*300:
				g.Pix[y*1152+x] = 255
			case d < 324*324:
				g.Pix[y*1152+x] = uint8(255 * (324*324 - d) / (324*324 - 300*300))
			}
		}
	}
	for _, c := range []struct {
		name string
		enc  func() ([]byte, error)
	}{
		{"pngenc", func() ([]byte, error) { return Bytes(g) }},
		{"image-png-default", func() ([]byte, error) {
			var buf bytes.Buffer
			err := png.Encode(&buf, g)
			return buf.Bytes(), err
		}},
		{"image-png-best-speed", func() ([]byte, error) {
			var buf bytes.Buffer
			err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, g)
			return buf.Bytes(), err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var n int
			for b.Loop() {
				data, err := c.enc()
				if err != nil {
					b.Fatal(err)
				}
				n = len(data)
			}
			b.ReportMetric(float64(n), "bytes")
		})
	}
}

func TestSubtract(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := range 40 {
		a, b, got := make([]byte, n), make([]byte, n), make([]byte, n)
		for i := range a {
			a[i], b[i] = byte(rng.IntN(256)), byte(rng.IntN(256))
		}
		subtract(got, a, b)
		for i := range a {
			if got[i] != a[i]-b[i] {
				t.Fatalf("n %d: byte %d: %d - %d = %d", n, i, a[i], b[i], got[i])
			}
		}
	}
}

func TestCommonPrefixAndSuffix(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for n := range 40 {
		a := make([]byte, n)
		for i := range a {
			a[i] = byte(rng.IntN(3))
		}
		for k := range n + 1 {
			b := append([]byte(nil), a...)
			if k < n {
				b[k]++
			}
			wantP, wantS := 0, 0
			for wantP < n && a[wantP] == b[wantP] {
				wantP++
			}
			for wantS < n && a[n-1-wantS] == b[n-1-wantS] {
				wantS++
			}
			if got := commonPrefix(a, b); got != wantP {
				t.Fatalf("n %d change %d: prefix %d, want %d", n, k, got, wantP)
			}
			if got := commonSuffix(a, b); got != wantS {
				t.Fatalf("n %d change %d: suffix %d, want %d", n, k, got, wantS)
			}
		}
	}
}

// FuzzEncodeGray: whatever the pixels, image/png reads back the same grey
// image (the run-length stream and its checksum are valid).
func FuzzEncodeGray(f *testing.F) {
	f.Add(uint8(7), uint8(5), []byte{0, 0, 0, 255, 255, 255, 3})
	f.Add(uint8(200), uint8(3), bytes.Repeat([]byte{0}, 600))
	f.Fuzz(func(t *testing.T, w, h uint8, data []byte) {
		if w == 0 || h == 0 {
			return
		}
		g := image.NewGray(image.Rect(0, 0, int(w), int(h)))
		for i := range g.Pix {
			if len(data) > 0 {
				g.Pix[i] = data[i%len(data)]
				if i/len(data)%3 == 1 {
					g.Pix[i] = 0
				}
			}
		}
		enc, err := Bytes(g)
		if err != nil {
			t.Fatal(err)
		}
		got, err := png.Decode(bytes.NewReader(enc))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.(*image.Gray).Pix, g.Pix) {
			t.Fatal("pixels differ")
		}
	})
}
