package grounding

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"paliprompt/core"
	"paliprompt/grounding/groundingtest"
)

var fixturePath = groundingtest.FixturePath

type preprocessGolden = groundingtest.PreprocessGolden

func loadPreprocessGolden(t testing.TB) preprocessGolden {
	t.Helper()
	var g preprocessGolden
	groundingtest.ReadGolden(t, "preprocess.json", &g)
	return g
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func decodeFile(t testing.TB, path string) *core.RGB {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := DecodeImage(data, DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ToRGB(img)
}

func goldenPreprocessor(t testing.TB, g preprocessGolden) *Preprocessor {
	t.Helper()
	var c preprocessorConfig
	c.Size.Height, c.Size.Width = g.Size[0], g.Size[1]
	p, err := newPreprocessor(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPreprocessMatchesTransformers(t *testing.T) {
	g := loadPreprocessGolden(t)
	p := goldenPreprocessor(t, g)
	for u, want := range g.LUT {
		for c := range 3 {
			if got := p.lut[c][u]; math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("lut[%d][%d] = %v, want %v", c, u, got, want)
			}
		}
	}
	for _, tc := range g.Images {
		t.Run(filepath.Base(tc.Image), func(t *testing.T) {
			rgb := decodeFile(t, fixturePath(tc.Image))
			if got := sha(rgb.Pix); got != tc.RGBSHA256 && tc.RGB != "" && jpegDiff(3) > 0 {
				// JPEG without cgo: image/jpeg's IDCT differs from libjpeg by
				// a level or two; the resize is tested exactly from PIL's decode.
				want := decodeFile(t, fixturePath(tc.RGB))
				if worst, n := maxDiff(t, rgb, want); worst > jpegDiff(3) {
					t.Errorf("JPEG decode differs from PIL in %d values, by up to %d", n, worst)
				}
				rgb = want
			} else if got != tc.RGBSHA256 {
				t.Errorf("RGB conversion sha256 %s, want %s", got, tc.RGBSHA256)
			}
			resized := p.Resize(rgb)
			if got := sha(resized.Pix); got != tc.ResizedSHA256 {
				worst, n := maxDiff(t, resized, decodeFile(t, fixturePath(tc.Resized)))
				t.Errorf("resized sha256 %s, want %s (%d values differ, by up to %d)", got, tc.ResizedSHA256, n, worst)
			}
			pv := make([]float32, 3*p.Width*p.Height)
			p.Normalize(resized, pv)
			raw := make([]byte, 4*len(pv))
			for i, v := range pv {
				binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
			}
			if got := sha(raw); got != tc.PixelValuesSHA256 {
				t.Errorf("pixel_values sha256 %s, want %s", got, tc.PixelValuesSHA256)
			}
			for _, s := range tc.Samples {
				if got := pv[(s.C*p.Height+s.Y)*p.Width+s.X]; got != s.Value {
					t.Errorf("pixel_values[%d,%d,%d] = %v, want %v", s.C, s.Y, s.X, got, s.Value)
				}
			}
		})
	}
}

func TestPreprocessorConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, json, want string }{
		{"no size", `{}`, "size must have positive height and width"},
		{"bad resample", `{"size": {"height": 8, "width": 8}, "resample": 1}`, "resample 1 is not supported"},
		{"bad mean", `{"size": {"height": 8, "width": 8}, "image_mean": [0.5]}`, "image_mean and image_std need 3 values"},
		{"not json", `size: 8`, "parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
			if err := os.WriteFile(path, []byte(tc.json), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadPreprocessor(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	if _, err := LoadPreprocessor(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: error %v does not name the file", err)
	}
}
