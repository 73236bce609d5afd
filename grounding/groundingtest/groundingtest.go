// Package groundingtest holds what the tests of grounding and of its model
// grounder share: the repository's fixtures (testdata/, made by tools/)
// and the preprocessing goldens. It imports no package of the project, so
// grounding's own tests can use it.
package groundingtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// root is the repository root, found from this file's place in it.
var root = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}()

// Root returns the repository root.
func Root() string { return root }

// FixturePath is a path under the repository's testdata/.
func FixturePath(rel string) string { return filepath.Join(root, "testdata", filepath.FromSlash(rel)) }

// ReadGolden reads a JSON golden of testdata/goldens into v, skipping the
// test when `make fixtures` has not made it.
func ReadGolden(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(FixturePath("goldens/" + name))
	if err != nil {
		t.Skipf("no golden %s (make fixtures): %v", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// PreprocessGolden is testdata/goldens/preprocess.json.
type PreprocessGolden struct {
	Size   []int     `json:"size"`
	LUT    []float32 `json:"lut"`
	Images []struct {
		Image             string `json:"image"`
		Width, Height     int
		RGB               string `json:"rgb"`
		RGBSHA256         string `json:"rgb_sha256"`
		Resized           string `json:"resized"`
		ResizedSHA256     string `json:"resized_sha256"`
		PixelValuesSHA256 string `json:"pixel_values_sha256"`
		Samples           []struct {
			C, Y, X int
			Value   float32
		} `json:"samples"`
	} `json:"images"`
}

// GoldenImage returns the file to read a golden image from as
// transformers saw it: for JPEGs the PNG of PIL's decode (Go's JPEG
// decoder differs from libjpeg-turbo by a level or two), else the image.
func GoldenImage(t testing.TB, image string) string {
	t.Helper()
	var pre PreprocessGolden
	ReadGolden(t, "preprocess.json", &pre)
	for _, c := range pre.Images {
		if c.Image == image && c.RGB != "" {
			return FixturePath(c.RGB)
		}
	}
	return FixturePath(image)
}

// SegTokens spells 16 consecutive segmentation tokens from code start:
// "<seg010><seg011>...<seg025>".
func SegTokens(start int) string {
	var b strings.Builder
	for i := range 16 {
		fmt.Fprintf(&b, "<seg%03d>", start+i)
	}
	return b.String()
}
