package paligemma

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"paliprompt/grounding/internal/cudabin"
	"paliprompt/grounding/internal/native"
)

// cudaFacts is what the CUDA path has to offer, read without creating a
// session: the provider's GPU code, and the configured device as the
// driver reports it.
type cudaFacts struct {
	provider     string             // the CUDA provider library, "" when none
	code         *cudabin.Library   // its fatbins, nil when unreadable
	codeErr      error              // why they could not be read
	driver       string             // the driver library, "" when none
	driverCUDA   string             // the CUDA version the driver supports
	device       *native.Device     // the configured device, nil when none
	noDevice     string             // why there is no device
	libraries    []*cudabin.Library // the CUDA libraries beside the provider
	librariesErr error
}

// readCUDAFacts gathers the facts for device id: reading the provider's
// fatbins, and asking the driver (libcuda.so.1) about devices.
func readCUDAFacts(rt *native.Runtime, id int) cudaFacts {
	var f cudaFacts
	if f.provider = rt.CUDAProvider(); f.provider != "" {
		f.code, f.codeErr = cudabin.Read(f.provider)
	}
	d, err := native.OpenCUDADriver()
	if err != nil {
		f.noDevice = err.Error()
		return f
	}
	defer d.Close()
	f.driver = d.Path()
	f.driverCUDA, _ = d.Version()
	devs, err := d.Devices()
	switch {
	case err != nil:
		f.noDevice = fmt.Sprintf("the NVIDIA driver %s cannot list devices: %v", display(f.driver), err)
	case len(devs) == 0:
		f.noDevice = fmt.Sprintf("the NVIDIA driver %s sees no CUDA device", display(f.driver))
	case id >= len(devs):
		f.noDevice = fmt.Sprintf("model.device_id is %d, but the NVIDIA driver sees %d device(s)", id, len(devs))
	default:
		f.device = &devs[id]
	}
	if f.device != nil && f.provider != "" {
		f.libraries, f.librariesErr = readLibraries(filepath.Dir(f.provider))
	}
	return f
}

// readLibraries reads the GPU code of the CUDA libraries in dir, but for
// the provider and cuFFT (which links its kernels at run time, so its
// fatbins say nothing).
func readLibraries(dir string) ([]*cudabin.Library, error) {
	paths, _ := filepath.Glob(filepath.Join(dir, "lib*.so*"))
	var libs []*cudabin.Library
	for _, p := range paths {
		base := filepath.Base(p)
		if strings.HasPrefix(base, "libonnxruntime") || strings.HasPrefix(base, "libcufft") {
			continue
		}
		lib, err := cudabin.Read(p)
		if err != nil {
			return nil, err
		}
		if len(lib.Fatbins) > 0 {
			libs = append(libs, lib)
		}
	}
	return libs, nil
}

// providerItem is the check line of the CUDA provider's code.
func (f cudaFacts) providerItem(rt *native.Runtime) (string, error) {
	switch {
	case f.provider == "":
		return fmt.Sprintf("none beside %s (make setup-gpu installs ONNX Runtime's CUDA build)", display(rt.Path())), nil
	case f.codeErr != nil:
		return "", f.codeErr
	}
	return fmt.Sprintf("%s, %s", display(f.provider), f.code), nil
}

// deviceItem is the check line of the device: which it is, and whether the
// provider (and the CUDA libraries beside it) carry code it can run. A
// device without code for it fails; no device is not a failure (the CPU
// takes over).
func (f cudaFacts) deviceItem(id int) (string, error) {
	if f.device == nil {
		return fmt.Sprintf("none found: %s", f.noDevice), nil
	}
	d := f.device
	desc := fmt.Sprintf("%d: %s, compute capability %d.%d, %.1f GiB; NVIDIA driver %s (CUDA %s)",
		id, d.Name, d.Major, d.Minor, float64(d.Memory)/(1<<30), display(f.driver), f.driverCUDA)
	if f.code == nil {
		return desc, nil
	}
	support := f.code.For(d.Major, d.Minor)
	desc += "; CUDA provider: " + support.String()
	if !support.OK() {
		return "", fmt.Errorf("%s: ONNX Runtime's CUDA provider has no kernels for this device", desc)
	}
	if f.librariesErr != nil {
		return "", f.librariesErr
	}
	for _, lib := range f.libraries {
		if s := lib.For(d.Major, d.Minor); s.Native == 0 && s.JIT == 0 {
			return "", fmt.Errorf("%s; but %s has no code for sm_%d%d", desc, display(lib.Path), d.Major, d.Minor)
		}
	}
	if len(f.libraries) > 0 {
		desc += fmt.Sprintf("; the %d CUDA libraries with GPU code beside it have code for it too", len(f.libraries))
	}
	return desc, nil
}

// loadedLibraries lists the ONNX Runtime and CUDA libraries the process
// has loaded, each with the file it came from.
func loadedLibraries() []string {
	var out []string
	for _, p := range native.LoadedLibraries() {
		base := filepath.Base(p)
		for _, prefix := range []string{"libonnxruntime", "libcu", "libnv"} {
			if strings.HasPrefix(base, prefix) {
				out = append(out, fmt.Sprintf("%s from %s", base, display(p)))
				break
			}
		}
	}
	return out
}

// display shortens a path under the working directory to a relative one.
func display(path string) string {
	wd, err := os.Getwd()
	if err != nil || !filepath.IsAbs(path) {
		return path
	}
	if rel, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}
