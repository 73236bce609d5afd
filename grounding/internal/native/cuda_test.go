package native

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeDriver is a stand-in for libcuda.so.1 with the driver API calls
// paliprompt makes, answering like a driver with one V100 (or, built with
// -DNO_DEVICE, like a driver whose cuInit finds no device; -DBROKEN, like
// one that fails). It tests the binding (symbols, attribute numbers, name
// buffer, error names): no real driver has run this code here.
const fakeDriver = `
#include <string.h>
#include <stddef.h>
int cuInit(unsigned flags) {
#if defined(NO_DEVICE)
	return 100;
#elif defined(BROKEN)
	return 999;
#else
	return flags == 0 ? 0 : 1;
#endif
}
int cuDriverGetVersion(int *v) { *v = 12040; return 0; }
int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuDeviceGet(int *d, int ordinal) { if (ordinal != 0) return 101; *d = 7; return 0; }
int cuDeviceGetName(char *name, int len, int d) { strncpy(name, "Tesla V100-SXM2-16GB", len); return d == 7 ? 0 : 101; }
int cuDeviceGetAttribute(int *v, int attr, int d) {
	if (d != 7) return 101;
	if (attr == 75) { *v = 7; return 0; }
	if (attr == 76) { *v = 0; return 0; }
	return 1;
}
int cuDeviceTotalMem_v2(size_t *bytes, int d) { *bytes = (size_t)16945512448ULL; return 0; }
int cuGetErrorName(int r, const char **s) {
	*s = r == 100 ? "CUDA_ERROR_NO_DEVICE" : r == 101 ? "CUDA_ERROR_INVALID_DEVICE" : "CUDA_ERROR_UNKNOWN";
	return 0;
}
int cuGetErrorString(int r, const char **s) { *s = r == 100 ? "no CUDA-capable device is detected" : "unknown error"; return 0; }
`

func buildFakeDriver(t *testing.T, name string, defines ...string) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "fake.c")
	if err := os.WriteFile(src, []byte(fakeDriver), 0o644); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, name)
	args := append([]string{"-shared", "-fPIC", "-o", lib, src}, defines...)
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("build the fake driver: %v\n%s", err, out)
	}
	return lib
}

func TestCUDADriverFake(t *testing.T) {
	d, err := openCUDADriver(buildFakeDriver(t, "libcuda-one.so.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if v, err := d.Version(); err != nil || v != "12.4" {
		t.Errorf("Version() = %q, %v", v, err)
	}
	devs, err := d.Devices()
	want := Device{Ordinal: 0, Name: "Tesla V100-SXM2-16GB", Major: 7, Minor: 0, Memory: 16945512448}
	if err != nil || len(devs) != 1 || devs[0] != want {
		t.Errorf("Devices() = %+v, %v; want [%+v]", devs, err, want)
	}
	if !strings.HasSuffix(d.Path(), "libcuda-one.so.1") {
		t.Errorf("Path() = %q", d.Path())
	}

	none, err := openCUDADriver(buildFakeDriver(t, "libcuda-none.so.1", "-DNO_DEVICE"))
	if err != nil {
		t.Fatal(err)
	}
	defer none.Close()
	if devs, err := none.Devices(); err != nil || len(devs) != 0 {
		t.Errorf("driver without devices: %+v, %v", devs, err)
	}

	broken, err := openCUDADriver(buildFakeDriver(t, "libcuda-broken.so.1", "-DBROKEN"))
	if err != nil {
		t.Fatal(err)
	}
	defer broken.Close()
	_, err = broken.Devices()
	var cerr *CUDAError
	if !errors.As(err, &cerr) || cerr.Call != "cuInit" || cerr.Code != 999 || cerr.Name != "CUDA_ERROR_UNKNOWN" {
		t.Errorf("failing cuInit: %v", err)
	}
}

func TestCUDADriverMissing(t *testing.T) {
	if _, err := openCUDADriver(filepath.Join(t.TempDir(), "libcuda.so.1")); err == nil || !strings.Contains(err.Error(), "load the NVIDIA driver's CUDA library") {
		t.Errorf("missing driver: %v", err)
	}
	// A library that is not a driver: its missing symbol is named.
	lib := buildFakeDriver(t, "libnotcuda.so.1", "-DcuInit=notInit")
	if _, err := openCUDADriver(lib); err == nil || !strings.Contains(err.Error(), "cuInit is missing") {
		t.Errorf("library without cuInit: %v", err)
	}
}

// TestRealDriver reports the machine's driver and devices: no GPU and no
// driver here, a GPU under make test-gpu on a GPU host.
func TestRealDriver(t *testing.T) {
	d, err := OpenCUDADriver()
	if err != nil {
		t.Logf("no driver: %v", err)
		return
	}
	defer d.Close()
	devs, err := d.Devices()
	t.Logf("driver %s: devices %+v, %v", d.Path(), devs, err)
}

func TestLoadedLibraries(t *testing.T) {
	rt := runtimeForTest(t)
	abs, _ := filepath.Abs(rt.Path())
	if !slices.ContainsFunc(LoadedLibraries(), func(p string) bool { a, _ := filepath.Abs(p); return a == abs }) {
		t.Errorf("%s not among the loaded libraries %v", abs, LoadedLibraries())
	}
	if _, err := OpenLibrary(filepath.Join(t.TempDir(), "libnone.so")); err == nil || !strings.Contains(err.Error(), "libnone.so") {
		t.Errorf("missing library: %v", err)
	}
}

// TestPreloadCUDA: with the CUDA build (make test-gpu), the libraries the
// provider needs are loaded from beside it, in dependency order, before
// the provider is; without it there is nothing to preload.
func TestPreloadCUDA(t *testing.T) {
	rt := runtimeForTest(t)
	libs, err := rt.preloadCUDA()
	if err != nil {
		t.Fatal(err)
	}
	if rt.CUDAProvider() == "" {
		if len(libs) != 0 {
			t.Errorf("preloaded %d libraries without a CUDA provider", len(libs))
		}
		return
	}
	var names []string
	for _, l := range libs {
		names = append(names, filepath.Base(l.Path()))
		if filepath.Dir(l.Path()) != filepath.Dir(rt.Path()) {
			t.Errorf("%s loaded from outside %s", l.Path(), filepath.Dir(rt.Path()))
		}
	}
	for _, want := range []string{"libcudart.so.12", "libcublasLt.so.12", "libcublas.so.12", "libcudnn.so.9", "libcufft.so.11", "libcurand.so.10"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s not preloaded: %v", want, names)
		}
	}
	loaded := LoadedLibraries()
	for _, l := range libs {
		if !slices.Contains(loaded, l.Path()) {
			t.Errorf("%s preloaded but not among the loaded libraries", l.Path())
		}
	}
}
