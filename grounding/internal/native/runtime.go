// Package native holds all of paliprompt's cgo: ONNX Runtime (through
// github.com/yalue/onnxruntime_go plus a small layer over the C API for
// device-bound outputs) and the Hugging Face tokenizer (through
// github.com/daulet/tokenizers). Every type here owns its handles and has a
// Close; C status codes become Go errors at this boundary; no ORT or C type
// is exported.
package native

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"paliprompt/grounding/internal/cudabin"
)

// Runtime is the process's ONNX Runtime: one shared library and one
// environment, whatever the number of models loaded.
type Runtime struct {
	path      string
	version   string
	providers []string

	// The CUDA libraries beside the library, loaded before the CUDA
	// provider is (preloadCUDA). They stay loaded for the process's life:
	// ONNX Runtime keeps the provider, and the provider them.
	cudaOnce   sync.Once
	cudaLibs   []*SharedLibrary
	cudaLibErr error
}

var (
	runtimeMu sync.Mutex
	runtime   *Runtime
)

// Where `make setup` installs ONNX Runtime's CPU build, and `make
// setup-gpu` its CUDA build with the CUDA libraries beside it.
const (
	defaultLibrary = ".deps/onnxruntime/libonnxruntime.so.1"
	cudaLibrary    = ".deps/onnxruntime-gpu/libonnxruntime.so.1"
)

// cudaProvider is the CUDA provider's file, next to the core library (ONNX
// Runtime loads its providers from its own folder).
const cudaProvider = "libonnxruntime_providers_cuda.so"

// FindLibrary returns the ONNX Runtime library to load: path when given;
// else, for CUDA, .deps/onnxruntime-gpu/libonnxruntime.so.1; else (or when
// that is not installed) .deps/onnxruntime/libonnxruntime.so.1; each looked
// for under the working directory or next to (or one folder above) the
// executable; else the system's libonnxruntime.so.1 for the dynamic
// loader to find.
func FindLibrary(path string, cuda bool) string {
	if path != "" {
		return path
	}
	var dirs []string
	if wd, err := os.Getwd(); err == nil {
		dirs = append(dirs, wd, filepath.Dir(wd))
	}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe), filepath.Dir(filepath.Dir(exe)))
	}
	candidates := []string{defaultLibrary}
	if cuda {
		candidates = []string{cudaLibrary, defaultLibrary}
	}
	for _, lib := range candidates {
		for _, d := range dirs {
			p := filepath.Join(d, lib)
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	return "libonnxruntime.so.1"
}

// LoadRuntime loads ONNX Runtime from path (see FindLibrary; cuda prefers
// the CUDA build) once per process. Asking again for the same library
// returns the same Runtime; asking for another one is an error, since a
// process can hold only one.
func LoadRuntime(path string, cuda bool) (*Runtime, error) {
	path = FindLibrary(path, cuda)
	runtimeMu.Lock()
	defer runtimeMu.Unlock()
	if runtime != nil {
		if runtime.path != path {
			return nil, fmt.Errorf("ONNX Runtime is already loaded from %s, cannot also load %s", runtime.path, path)
		}
		return runtime, nil
	}
	if _, err := os.Stat(path); err != nil && filepath.IsAbs(path) {
		return nil, fmt.Errorf("ONNX Runtime library: %w (run `make setup` or set model.onnxruntime_library)", err)
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("load ONNX Runtime %s: %w", path, err)
	}
	if err := loadCAPI(path); err != nil {
		ort.DestroyEnvironment()
		return nil, err
	}
	providers, err := availableProviders()
	if err != nil {
		ort.DestroyEnvironment()
		return nil, fmt.Errorf("list ONNX Runtime execution providers: %w", err)
	}
	runtime = &Runtime{path: path, version: ort.GetVersion(), providers: providers}
	return runtime, nil
}

// Path is the library file loaded.
func (r *Runtime) Path() string { return r.path }

// Version is ONNX Runtime's version string ("1.24.4").
func (r *Runtime) Version() string { return r.version }

// Providers lists the execution providers the library was built with.
func (r *Runtime) Providers() []string { return slices.Clone(r.providers) }

// HasCUDA reports whether the library was built with the CUDA execution
// provider. Its provider library, CUDA itself and a device may still be
// missing: only creating a session tells, and NewSession then fails with
// ErrNoCUDA.
func (r *Runtime) HasCUDA() bool {
	return slices.Contains(r.providers, "CUDAExecutionProvider")
}

// CUDAProvider is the CUDA provider library next to the core library, or
// "" when there is none (a CPU build, or a CUDA build without it).
func (r *Runtime) CUDAProvider() string {
	p := filepath.Join(filepath.Dir(r.path), cudaProvider)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// preloadCUDA loads, once, the libraries beside the core library that the
// CUDA provider needs (cudart, cuBLAS, cuDNN, ...), each after those it
// needs: the provider has no run path, so without them loaded the dynamic
// loader would search only LD_LIBRARY_PATH and the system. Libraries that
// are not beside it are left to the system (a CUDA toolkit installed
// there).
func (r *Runtime) preloadCUDA() ([]*SharedLibrary, error) {
	r.cudaOnce.Do(func() {
		provider := r.CUDAProvider()
		if provider == "" {
			return
		}
		order, err := cudabin.LoadOrder(filepath.Dir(provider), cudaProvider)
		if err != nil {
			r.cudaLibErr = err
			return
		}
		for _, path := range order[:len(order)-1] { // the provider is ONNX Runtime's to load
			lib, err := OpenLibrary(path)
			if err != nil {
				r.cudaLibErr = err
				return
			}
			r.cudaLibs = append(r.cudaLibs, lib)
		}
	})
	return r.cudaLibs, r.cudaLibErr
}
