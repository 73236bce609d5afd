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
)

// Runtime is the process's ONNX Runtime: one shared library and one
// environment, whatever the number of models loaded.
type Runtime struct {
	path      string
	version   string
	providers []string
}

var (
	runtimeMu sync.Mutex
	runtime   *Runtime
)

// defaultLibrary is where `make setup` installs ONNX Runtime.
const defaultLibrary = ".deps/onnxruntime/libonnxruntime.so.1"

// FindLibrary returns the ONNX Runtime library to load: path when given,
// else .deps/onnxruntime/libonnxruntime.so.1 under the working directory or
// next to (or one folder above) the executable, else the system's
// libonnxruntime.so.1 for the dynamic loader to find.
func FindLibrary(path string) string {
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
	for _, d := range dirs {
		p := filepath.Join(d, defaultLibrary)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "libonnxruntime.so.1"
}

// LoadRuntime loads ONNX Runtime from path (see FindLibrary) once per
// process. Asking again for the same library returns the same Runtime;
// asking for another one is an error, since a process can hold only one.
func LoadRuntime(path string) (*Runtime, error) {
	path = FindLibrary(path)
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

// Version is ONNX Runtime's version string ("1.24.3").
func (r *Runtime) Version() string { return r.version }

// Providers lists the execution providers the library was built with.
func (r *Runtime) Providers() []string { return slices.Clone(r.providers) }

// HasCUDA reports whether the library was built with the CUDA execution
// provider. Its provider libraries, CUDA itself and a device may still be
// missing (the npm build lists CUDA but ships without them): only creating
// a session tells, and NewSession then fails with ErrNoCUDA.
func (r *Runtime) HasCUDA() bool {
	return slices.Contains(r.providers, "CUDAExecutionProvider")
}
