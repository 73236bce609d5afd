package grounding

import (
	"bytes"
	"image"
	"image/jpeg"
	"os"
	"testing"

	"paliprompt/core"
	"paliprompt/grounding/groundingtest"
)

// benchJPEG returns the JPEG in PALIPROMPT_BENCH_IMAGE (bench/compare.py
// sets it so that both sides read the same file), else a synthetic
// 4000x3000 photo-sized JPEG.
func benchJPEG(b *testing.B) []byte {
	b.Helper()
	if p := os.Getenv("PALIPROMPT_BENCH_IMAGE"); p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	img := image.NewYCbCr(image.Rect(0, 0, 4000, 3000), image.YCbCrSubsampleRatio420)
	for i := range img.Y {
		img.Y[i] = uint8(i*7 + i/4000*3)
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = uint8(i/2000), uint8(i*3)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkPreprocessLargeJPEG: decode + RGB + resize + normalize of a
// 4000x3000 JPEG to the 448x448 tensor (what the HF slow processor does
// after PIL's decode).
func BenchmarkPreprocessLargeJPEG(b *testing.B) {
	data := benchJPEG(b)
	p := goldenPreprocessor(b, preprocessGolden{Size: []int{448, 448}})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := DecodeImage(data, DecodeOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	img, _, _ := DecodeImage(data, DecodeOptions{})
	b.Run("rgb", func(b *testing.B) {
		for b.Loop() {
			ToRGB(img)
		}
	})
	rgb := ToRGB(img)
	b.Run("resize+normalize", func(b *testing.B) {
		for b.Loop() {
			p.PixelValues(rgb)
		}
	})
	b.Run("total", func(b *testing.B) {
		for b.Loop() {
			img, _, err := DecodeImage(data, DecodeOptions{})
			if err != nil {
				b.Fatal(err)
			}
			p.PixelValues(img)
		}
	})
}

// BenchmarkParseAndMasks times parsing a segment output and decoding one
// mask with the random vae-oid decoder.
func BenchmarkParseAndMasks(b *testing.B) {
	text := "<loc0100><loc0200><loc0700><loc0900>" + seg16(3) + " cat ; <loc0010><loc0020><loc0300><loc0400>" + seg16(40) + " dog"
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			ParseDetections(core.TaskSegment, text)
		}
	})
	d, err := LoadMaskDecoder(groundingtest.FixturePath("models/vae-oid-random.npz"))
	if err != nil {
		b.Skip(err)
	}
	b.Run("mask-decode", func(b *testing.B) {
		for b.Loop() {
			d.Mask(codes(3), core.Box{X0: 100, Y0: 50, X1: 400, Y1: 380}, 560, 420)
		}
	})
}
