// Package groundingtest holds what the tests of grounding and of its model
// grounder share: the repository's fixtures (testdata/, made by tools/)
// and the preprocessing goldens. It imports no package of the project, so
// grounding's own tests can use it.
package groundingtest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
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

// MaskGolden is testdata/goldens/maskdecoder.json: the NumPy reference of
// big_vision's mask decoder on the random vae-oid npz, raw and placed.
type MaskGolden struct {
	Decoder string `json:"decoder"`
	Decode  []struct {
		Name     string `json:"name"`
		Codes    []int  `json:"codes"`
		Output   string `json:"output"`
		Positive int    `json:"positive"`
	} `json:"decode"`
	Placements []struct {
		Codes         string `json:"codes"`
		Locs          [4]int `json:"locs"`
		Width, Height int
		Box           struct{ X0, Y0, X1, Y1 int } `json:"box"`
		Empty         bool                         `json:"empty"`
		Area          int                          `json:"area"`
		Values        string                       `json:"values"`
		Binary        string                       `json:"binary"`
		Soft          string                       `json:"soft"`
	} `json:"placements"`
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

// Float32NPY reads a little-endian float32 .npy file of testdata/ (C
// order, as tools/fixture_io.write_npy writes them) as flat values and
// its shape.
func Float32NPY(t testing.TB, rel string) ([]float32, []int) {
	t.Helper()
	b, err := os.ReadFile(FixturePath(rel))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" || b[6] != 1 {
		t.Fatalf("%s: not a version 1 .npy file", rel)
	}
	n := int(binary.LittleEndian.Uint16(b[8:10]))
	if len(b) < 10+n {
		t.Fatalf("%s: truncated header", rel)
	}
	header, data := string(b[10:10+n]), b[10+n:]
	if !strings.Contains(header, "'descr': '<f4'") || !strings.Contains(header, "'fortran_order': False") {
		t.Fatalf("%s: header %q, want little-endian float32 in C order", rel, header)
	}
	var shape []int
	_, dims, _ := strings.Cut(header, "'shape': (")
	dims, _, _ = strings.Cut(dims, ")")
	size := 1
	for _, d := range strings.Split(dims, ",") {
		if d = strings.TrimSpace(d); d != "" {
			v, err := strconv.Atoi(d)
			if err != nil {
				t.Fatalf("%s: shape %q", rel, dims)
			}
			shape = append(shape, v)
			size *= v
		}
	}
	if len(data) != 4*size {
		t.Fatalf("%s: %d data bytes for shape %v", rel, len(data), shape)
	}
	out := make([]float32, size)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return out, shape
}
