package grounding

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"paliprompt/core"
)

// npyBytes encodes a float32 array as a version 1 .npy file.
func npyBytes(shape []int, data []float32) []byte {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = fmt.Sprint(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", tuple)
	for (10+len(header)+1)%64 != 0 {
		header += " "
	}
	header += "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(header)))
	b.WriteString(header)
	for _, v := range data {
		binary.Write(&b, binary.LittleEndian, math.Float32bits(v))
	}
	return b.Bytes()
}

type testArray struct {
	shape []int
	fill  func(i int) float32
}

// vaeArrays returns the arrays of a small decoder in vae-oid layout
// (codebook 8 x 6, residual width 5), all weights from fill.
func vaeArrays(fill func(name string, i int) float32) map[string]testArray {
	a := map[string]testArray{}
	add := func(name string, shape ...int) {
		a[name] = testArray{shape, func(i int) float32 { return fill(name, i) }}
	}
	add("_vq_vae._embedding", 8, 6)
	add("decoder.0.weight", 128, 6, 1, 1)
	add("decoder.0.bias", 128)
	for _, r := range []string{"decoder.2.net", "decoder.3.net"} {
		add(r+".0.weight", 5, 128, 3, 3)
		add(r+".0.bias", 5)
		add(r+".2.weight", 5, 5, 3, 3)
		add(r+".2.bias", 5)
		add(r+".4.weight", 128, 5, 1, 1)
		add(r+".4.bias", 128)
	}
	chans := []int{128, 128, 64, 32, 16}
	for i, name := range []string{"decoder.4", "decoder.6", "decoder.8", "decoder.10"} {
		add(name+".weight", chans[i], chans[i+1], 4, 4)
		add(name+".bias", chans[i+1])
	}
	add("decoder.12.weight", 1, 16, 1, 1)
	add("decoder.12.bias", 1)
	return a
}

func writeNPZ(t testing.TB, path string, arrays map[string]testArray) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, a := range arrays {
		n := 1
		for _, d := range a.shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = a.fill(i)
		}
		w, err := zw.Create(name + ".npy")
		if err != nil {
			t.Fatal(err)
		}
		w.Write(npyBytes(a.shape, data))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestMaskDecoderBiasOnly(t *testing.T) {
	// With all weights zero, every layer outputs its bias through ReLU, so
	// the decoder's output is decoder.12.bias everywhere.
	path := filepath.Join(t.TempDir(), "vae.npz")
	writeNPZ(t, path, vaeArrays(func(name string, i int) float32 {
		if name == "decoder.12.bias" {
			return 0.25
		}
		return 0
	}))
	d, err := LoadMaskDecoder(path)
	if err != nil {
		t.Fatal(err)
	}
	codes := []int{0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7}
	m, err := d.Mask(codes, core.Box{X0: 10.9, Y0: 5.2, X1: 30.99, Y1: 40}, 100, 50)
	if err != nil {
		t.Fatal(err)
	}
	if m.Rect.Min.X != 10 || m.Rect.Min.Y != 5 || m.Rect.Max.X != 30 || m.Rect.Max.Y != 40 {
		t.Errorf("rect %v, want (10,5)-(30,40): corners truncated like big_vision", m.Rect)
	}
	for _, v := range m.Values {
		if v != 0.25 {
			t.Fatalf("value %v, want 0.25", v)
		}
	}
	if m.Area() != 20*35 || m.Soft(15, 20) != 0.625 || m.Inside(9, 20) {
		t.Errorf("area %d soft %v inside-outside %v", m.Area(), m.Soft(15, 20), m.Inside(9, 20))
	}
	empty, err := d.Mask(codes, core.Box{X0: 10.2, Y0: 5, X1: 10.9, Y1: 40}, 100, 50)
	if err != nil || empty.Rect.Dx() != 0 || len(empty.Values) != 0 {
		t.Errorf("sub-pixel box: %v, %v; want an empty mask", empty, err)
	}
	for _, bad := range [][]int{codes[:15], append(append([]int{}, codes[:15]...), 8), append(append([]int{}, codes[:15]...), -1)} {
		if _, err := d.Mask(bad, core.Box{X1: 10, Y1: 10}, 10, 10); !errors.Is(err, core.ErrBadRequest) {
			t.Errorf("codes %v: error %v, want core.ErrBadRequest", bad, err)
		}
	}
}

func TestLoadMaskDecoderErrors(t *testing.T) {
	dir := t.TempDir()
	zero := func(string, int) float32 { return 0 }
	for _, tc := range []struct {
		name   string
		mutate func(map[string]testArray)
		want   string
	}{
		{"missing codebook", func(a map[string]testArray) { delete(a, "_vq_vae._embedding") }, `missing array "_vq_vae._embedding"`},
		{"missing layer", func(a map[string]testArray) { delete(a, "decoder.8.bias") }, `"decoder.8.bias"`},
		{"bad shape", func(a map[string]testArray) {
			a["decoder.6.weight"] = testArray{[]int{128, 64, 3, 3}, func(int) float32 { return 0 }}
		}, `array "decoder.6.weight" has shape [128 64 3 3], want [128 64 4 4]`},
		{"channels do not chain", func(a map[string]testArray) {
			a["decoder.0.weight"] = testArray{[]int{128, 7, 1, 1}, func(int) float32 { return 0 }}
		}, `array "decoder.0.weight" has shape [128 7 1 1], want [128 6 1 1]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := vaeArrays(zero)
			tc.mutate(a)
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".npz")
			writeNPZ(t, path, a)
			_, err := LoadMaskDecoder(path)
			if !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want core.ErrUnavailable naming %s and saying %s", err, path, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, content, want string }{
		{"missing.npz", "", "no such file"},
		{"text.npz", "not a zip", "not a .npz (zip) archive"},
	} {
		path := filepath.Join(dir, tc.name)
		if tc.content != "" {
			os.WriteFile(path, []byte(tc.content), 0o644)
		}
		if _, err := LoadMaskDecoder(path); !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

func TestReadNPY(t *testing.T) {
	a, err := readNPY(npyBytes([]int{2, 3}, []float32{1, 2, 3, 4, 5, -6}))
	if err != nil {
		t.Fatal(err)
	}
	v, err := a.Float32s()
	if err != nil || len(a.Shape) != 2 || a.Shape[1] != 3 || v[5] != -6 {
		t.Fatalf("got shape %v values %v err %v", a.Shape, v, err)
	}
	scalar, err := readNPY(npyBytes(nil, []float32{7}))
	if err != nil || len(scalar.Shape) != 0 {
		t.Fatalf("scalar: %v %v", scalar, err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"magic", []byte("NUMPY"), "bad magic"},
		{"short data", func() []byte { b := npyBytes([]int{4}, []float32{1, 2, 3, 4}); return b[:len(b)-5] }(), "needs 16"},
		{"fortran", bytes.Replace(npyBytes([]int{2}, []float32{1, 2}), []byte("False"), []byte("True "), 1), "Fortran"},
		{"dtype", bytes.Replace(npyBytes([]int{2}, []float32{1, 2}), []byte("<f4"), []byte("<c8"), 1), "unsupported .npy dtype"},
		{"huge", bytes.Replace(npyBytes([]int{2}, []float32{1, 2}), []byte("(2,)"), []byte("(9999999999,)"), 1), "too large"},
	} {
		if _, err := readNPY(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

func FuzzReadNPY(f *testing.F) {
	f.Add(npyBytes([]int{2, 3}, []float32{1, 2, 3, 4, 5, 6}))
	f.Add(npyBytes(nil, []float32{1}))
	f.Add([]byte("\x93NUMPY\x02\x00\x10\x00\x00\x00{'descr': '|u1'}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := readNPY(data)
		if err != nil {
			return
		}
		if _, err := a.Float32s(); err != nil {
			t.Fatalf("readNPY accepted an array Float32s rejects: %v", err)
		}
	})
}
