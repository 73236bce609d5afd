package cudabin

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func elfCode(sm int) Code      { return Code{Kind: ELF, SM: sm} }
func ptxCode(sm int) Code      { return Code{Kind: PTX, SM: sm} }
func specificCode(sm int) Code { return Code{Kind: ELF, SM: sm, Specific: true} }

func TestReadFixture(t *testing.T) {
	lib, err := Read(filepath.Join("testdata", "fatbin.so"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Fatbin{
		{Codes: []Code{elfCode(70), specificCode(90), ptxCode(90)}},
		{Codes: []Code{elfCode(80), elfCode(86), ptxCode(80)}},
	}
	if !reflect.DeepEqual(lib.Fatbins, want) {
		t.Errorf("fatbins %+v\nwant %+v", lib.Fatbins, want)
	}
	wantSummary := "2 fatbins with ELF sm_70 (1) sm_80 (1) sm_86 (1) sm_90a (1); PTX sm_80 (1) sm_90 (1) (in how many fatbins, where not all)"
	if got := lib.String(); got != wantSummary {
		t.Errorf("String() = %q\nwant %q", got, wantSummary)
	}
}

func TestFor(t *testing.T) {
	lib, err := Read(filepath.Join("testdata", "fatbin.so"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		major, minor         int
		native, jit, missing int
	}{
		{7, 0, 1, 0, 1},  // sm_70 code; sm_80 code and PTX do not run on 7.0
		{7, 5, 1, 0, 1},  // sm_70 code runs on 7.5
		{8, 0, 1, 0, 1},  // sm_80 code; nothing in the first fatbin
		{8, 9, 1, 0, 1},  // sm_86 code runs on 8.9
		{9, 0, 1, 1, 0},  // sm_90a exactly; PTX sm_80 compiles for 9.0
		{9, 1, 0, 2, 0},  // sm_90a does not run on 9.1: PTX in both
		{12, 0, 0, 2, 0}, // only PTX
		{6, 1, 0, 0, 2},
	} {
		s := lib.For(c.major, c.minor)
		if s.Native != c.native || s.JIT != c.jit || s.Missing != c.missing || s.Fatbins != 2 || s.OK() != (c.missing == 0) {
			t.Errorf("For(%d, %d) = %+v, want native %d jit %d missing %d", c.major, c.minor, s, c.native, c.jit, c.missing)
		}
	}
	if got := lib.For(9, 0).String(); !strings.Contains(got, "machine code for sm_90 in 1 of 2 fatbins, PTX to compile") {
		t.Errorf("String() = %q", got)
	}
	if got := lib.For(6, 1).String(); !strings.Contains(got, "no code for sm_61 in 2 of 2 fatbins") {
		t.Errorf("String() = %q", got)
	}
}

func TestReadNoFatbin(t *testing.T) {
	lib, err := Read(filepath.Join("testdata", "needs", "libtop.so.1"))
	if err != nil || len(lib.Fatbins) != 0 || lib.String() != "no fatbins (no GPU code in .nv_fatbin)" {
		t.Errorf("library without .nv_fatbin: %+v, %v", lib, err)
	}
	if _, err := Read(filepath.Join("testdata", "missing.so")); err == nil || !strings.Contains(err.Error(), "missing.so") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Read(filepath.Join("testdata", "..", "fatbin.go")); err == nil {
		t.Error("a Go file read as ELF")
	}
}

// fixtureSection returns the .nv_fatbin bytes of the fixture.
func fixtureSection(t testing.TB) []byte {
	f, err := elf.NewFile(bytes.NewReader(fatbinFixture()))
	if err != nil {
		t.Fatal(err)
	}
	data, err := f.Section(".nv_fatbin").Data()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseErrors(t *testing.T) {
	sec := fixtureSection(t)
	corrupt := func(off int, b ...byte) []byte {
		c := bytes.Clone(sec)
		copy(c[off:], b)
		return c
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"not a fatbin", corrupt(0, 1, 2, 3, 4), "not a fatbin"},
		{"version", corrupt(4, 2), "version 2"},
		{"fatbin too long", corrupt(8, 0xff, 0xff, 0xff, 0), "run past the section"},
		{"entry header too short", corrupt(16+4, 8), "run past the fatbin"},
		{"payload too long", corrupt(16+8, 0xff, 0xff, 0xff, 0xff), "run past the fatbin"},
		{"truncated", sec[:len(sec)-40], "run past the section"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(bytes.NewReader(c.data), int64(len(c.data)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	// Entries of other kinds are skipped.
	other := fatbin(entry(ELF, 75, cudaELFHeader(75, false), flags64Linux, 0), entry(unknownKind, 75, []byte("not code"), flags64Linux, 0))
	if fbs, err := Parse(bytes.NewReader(other), int64(len(other))); err != nil || !reflect.DeepEqual(fbs, []Fatbin{{Codes: []Code{elfCode(75)}}}) {
		t.Errorf("fatbin with an entry of another kind: %+v, %v", fbs, err)
	}
	// Trailing zero padding is no fatbin and no error.
	padded := append(bytes.Clone(sec), make([]byte, 13)...)
	if fbs, err := Parse(bytes.NewReader(padded), int64(len(padded))); err != nil || len(fbs) != 2 {
		t.Errorf("padded section: %d fatbins, %v", len(fbs), err)
	}
}

func TestLZ4Prefix(t *testing.T) {
	src := append(cudaELFHeader(90, true), bytes.Repeat([]byte{7}, 300)...)
	src = append(src, "tail bytes that stay literal"...)
	block := lz4Compress(src)
	if len(block) >= len(src) {
		t.Fatalf("test encoder stored %d bytes as %d: no matches exercised", len(src), len(block))
	}
	for _, n := range []int{0, 1, 52, 64, 200, len(src), len(src) + 10} {
		want := src[:min(n, len(src))]
		if got := lz4Prefix(block, n); !bytes.Equal(got, want) {
			t.Errorf("lz4Prefix(%d): %d bytes, differs from the source", n, len(got))
		}
	}
	// Bad back-references end the output early instead of panicking.
	for _, bad := range [][]byte{{0x14, 'a', 0, 0}, {0x14, 'a', 9, 0}, {0xf0}, {0x1f, 'a', 1, 0, 0xff, 0xff}} {
		lz4Prefix(bad, 64)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(fixtureSection(f))
	f.Add([]byte{0x50, 0xed, 0x55, 0xba, 1, 0, 16, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		Parse(bytes.NewReader(data), int64(len(data))) // must not panic or hang
		lz4Prefix(data, 64)
	})
}

func TestLoadOrder(t *testing.T) {
	dir := filepath.Join("testdata", "needs")
	order, err := LoadOrder(dir, "libtop.so.1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range order {
		names = append(names, filepath.Base(p))
	}
	// libc.so.6 is not in the folder: left to the loader.
	if want := []string{"libbase.so.3", "libmid.so.2", "libtop.so.1"}; !reflect.DeepEqual(names, want) {
		t.Errorf("order %v, want %v", names, want)
	}
	if _, err := LoadOrder(dir, "libnone.so"); err == nil || !strings.Contains(err.Error(), "libnone.so") {
		t.Errorf("missing root: %v", err)
	}
}

// gpuDir is where `make setup-gpu` installs the CUDA build.
var gpuDir = filepath.Join("..", "..", "..", ".deps", "onnxruntime-gpu")

func gpuLibrary(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(gpuDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not installed (make setup-gpu)", name)
	}
	return p
}

// TestRealCUDAProvider reads the CUDA provider of onnxruntime-gpu 1.24.4
// (make setup-gpu): what `paliprompt check` reports.
func TestRealCUDAProvider(t *testing.T) {
	lib, err := Read(gpuLibrary(t, "libonnxruntime_providers_cuda.so"))
	if err != nil {
		t.Fatal(err)
	}
	want := "200 fatbins, each with ELF sm_60 sm_70 sm_75 sm_80 sm_86 sm_90a and PTX sm_90"
	if got := lib.String(); got != want {
		t.Errorf("String() = %q\nwant %q", got, want)
	}
	if s := lib.For(7, 0); s.Native != 200 {
		t.Errorf("V100: %v", s)
	}
}

// TestGPUSetupHasVoltaCode: every library make setup-gpu installs that
// carries GPU code has code a V100 (7.0) runs, the reason cuDNN is pinned
// to 9.10 (9.11's libcudnn_ops and libcudnn_cnn start at sm_75). The math
// libraries keep kernels for one architecture in fatbins of their own and
// pick by device at run time, so some sm_70 code is the bar for them, not
// every fatbin (that is the bar for the CUDA provider, above). cuFFT is
// left out: its one fatbin is sm_52 only, since it links its kernels at
// run time (nvJitLink), and PaliGemma does not use it.
func TestGPUSetupHasVoltaCode(t *testing.T) {
	gpuLibrary(t, "INSTALLED")
	if runtime.GOARCH != "amd64" {
		t.Skip("the CUDA wheels are x86-64")
	}
	matches, _ := filepath.Glob(filepath.Join(gpuDir, "lib*.so*"))
	checked := 0
	for _, p := range matches {
		lib, err := Read(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(lib.Fatbins) == 0 || strings.HasPrefix(filepath.Base(p), "libcufft") {
			continue
		}
		checked++
		if s := lib.For(7, 0); s.Native == 0 {
			t.Errorf("%s: %v", filepath.Base(p), s)
		}
	}
	if checked < 5 {
		t.Errorf("only %d libraries with GPU code in %s", checked, gpuDir)
	}
}
