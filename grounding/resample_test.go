package grounding

import (
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"testing"

	"paliprompt/core"
)

// TestResizeMatchesPillow checks odd sizes, both pass orders and both
// filters against Pillow (testdata/decode/resize, from make.py).
func TestResizeMatchesPillow(t *testing.T) {
	for i := 0; ; i++ {
		base := filepath.Join("testdata", "decode", "resize", fmt.Sprint(i))
		if _, err := os.Stat(base + ".src.png"); err != nil {
			if i == 0 {
				t.Fatal(err)
			}
			return
		}
		src := decodeFile(t, base+".src.png")
		for _, f := range []struct {
			name string
			code int
		}{{"bicubic", 3}, {"bilinear", 2}} {
			want := decodeFile(t, base+"."+f.name+".png")
			got, err := ResizeRGB(src, want.Rect.Dx(), want.Rect.Dy(), f.code)
			if err != nil {
				t.Fatal(err)
			}
			if worst, n := maxDiff(t, got, want); n > 0 {
				t.Errorf("case %d %s %v -> %v: %d values differ, by up to %d", i, f.name, src.Rect.Size(), want.Rect.Size(), n, worst)
			}
		}
		srcF := readNPYRaw(t, base+".src.npy")
		wantF := readNPYRaw(t, base+".f-bilinear.npy")
		got := resizeFloat(srcF.values, srcF.shape[1], srcF.shape[0], wantF.shape[1], wantF.shape[0], bilinearFilter)
		for j := range got {
			if math.Float32bits(got[j]) != math.Float32bits(wantF.values[j]) {
				t.Errorf("case %d float: value %d is %v, want %v", i, j, got[j], wantF.values[j])
				break
			}
		}
	}
}

type npyFloats struct {
	shape  []int
	values []float32
}

func readNPYRaw(t *testing.T, path string) npyFloats {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := readNPY(b)
	if err != nil {
		t.Fatal(err)
	}
	v, err := a.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return npyFloats{a.Shape, v}
}

func TestResizeRGBErrors(t *testing.T) {
	src := core.NewRGB(image.Rect(0, 0, 4, 4))
	if _, err := ResizeRGB(src, 2, 2, 1); err == nil {
		t.Error("LANCZOS (1) accepted")
	}
	if _, err := ResizeRGB(src, 0, 2, 3); err == nil {
		t.Error("zero width accepted")
	}
}
