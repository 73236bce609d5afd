package paligemma

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"paliprompt/grounding/groundingtest"
	"paliprompt/grounding/internal/cudabin"
	"paliprompt/grounding/internal/native"
)

// v100 is the device a V100 driver reports (its memory as the 16 GB
// SXM2 card's).
var v100 = native.Device{Name: "Tesla V100-SXM2-16GB", Major: 7, Minor: 0, Memory: 16945512448}

func readCode(t *testing.T, path string) *cudabin.Library {
	t.Helper()
	lib, err := cudabin.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return lib
}

// sm is a library with one fatbin of machine code for sm_<n>.
func sm(n int) *cudabin.Library {
	return &cudabin.Library{Path: "lib.so", Fatbins: []cudabin.Fatbin{{Codes: []cudabin.Code{{Kind: cudabin.ELF, SM: n}}}}}
}

// ptx60 is a library with PTX for sm_60 only, which compiles for 7.0.
var ptx60 = &cudabin.Library{Path: "libptx.so", Fatbins: []cudabin.Fatbin{{Codes: []cudabin.Code{{Kind: cudabin.PTX, SM: 60}}}}}

// TestDeviceItem: the check line of a device, for devices the driver
// could report, against the cudabin fixture (two fatbins: ELF sm_70,
// sm_90a and PTX sm_90; ELF sm_80, sm_86 and PTX sm_80).
func TestDeviceItem(t *testing.T) {
	fixture := readCode(t, filepath.Join("..", "internal", "cudabin", "testdata", "fatbin.so"))
	h100 := native.Device{Name: "NVIDIA H100 80GB HBM3", Major: 9, Minor: 0, Memory: 85045231616}
	for _, c := range []struct {
		name    string
		facts   cudaFacts
		want    string
		wantErr bool
	}{
		{"no driver", cudaFacts{noDevice: "load the NVIDIA driver's CUDA library: libcuda.so.1: cannot open shared object file"},
			"none found: load the NVIDIA driver's CUDA library", false},
		{"V100, kernels missing", cudaFacts{device: &v100, code: fixture, driver: "/usr/lib/libcuda.so.1", driverCUDA: "12.4"},
			"no code for sm_70 in 1 of 2 fatbins", true},
		{"H100, PTX", cudaFacts{device: &h100, code: fixture, driver: "/usr/lib/libcuda.so.1", driverCUDA: "12.8"},
			"0: NVIDIA H100 80GB HBM3, compute capability 9.0, 79.2 GiB; NVIDIA driver /usr/lib/libcuda.so.1 (CUDA 12.8); CUDA provider: machine code for sm_90 in 1 of 2 fatbins, PTX to compile for it at load time (slow the first time) in 1", false},
		{"V100, a library without its code", cudaFacts{device: &v100, code: sm(70),
			libraries: []*cudabin.Library{sm(70), {Path: "libcudnn_ops.so.9", Fatbins: sm(75).Fatbins}}},
			"but libcudnn_ops.so.9 has no code for sm_70", true},
		{"V100, every library with its code", cudaFacts{device: &v100, code: sm(70), libraries: []*cudabin.Library{sm(70), ptx60}},
			"machine code for sm_70 in all 1 fatbins; the 2 CUDA libraries", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.facts.deviceItem(0)
			if c.wantErr {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("error %v, want one containing %q", err, c.want)
				}
				return
			}
			if err != nil || !strings.Contains(got, c.want) {
				t.Errorf("deviceItem = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

// TestDeviceItemV100: what check prints for a V100 with the libraries of
// make setup-gpu (the README's example line), the device as a V100 driver
// reports it.
func TestDeviceItemV100(t *testing.T) {
	dir := filepath.Join(groundingtest.Root(), ".deps", "onnxruntime-gpu")
	provider := filepath.Join(dir, "libonnxruntime_providers_cuda.so")
	if _, err := os.Stat(provider); err != nil {
		t.Skip("make setup-gpu has not run")
	}
	libs, err := readLibraries(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := cudaFacts{provider: provider, code: readCode(t, provider), device: &v100, driver: "/usr/lib/x86_64-linux-gnu/libcuda.so.1", driverCUDA: "12.4", libraries: libs}
	got, err := f.deviceItem(0)
	want := "0: Tesla V100-SXM2-16GB, compute capability 7.0, 15.8 GiB; NVIDIA driver /usr/lib/x86_64-linux-gnu/libcuda.so.1 (CUDA 12.4); " +
		"CUDA provider: machine code for sm_70 in all 200 fatbins; the 8 CUDA libraries with GPU code beside it have code for it too"
	if err != nil || got != want {
		t.Errorf("deviceItem = %q, %v\nwant %q", got, err, want)
	}
}
