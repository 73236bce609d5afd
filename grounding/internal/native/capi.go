package native

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include "onnxruntime_c_api.h"

// The OrtApi of the library onnxruntime_go loaded: dlopen of the same path
// returns the same handle, so both layers talk to one runtime.
static const OrtApi *pp_api = NULL;

static const char *pp_load_api(const char *path) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) return dlerror();
	const OrtApiBase *(*get_base)(void) = (const OrtApiBase *(*)(void))dlsym(h, "OrtGetApiBase");
	if (!get_base) return "OrtGetApiBase not found";
	pp_api = get_base()->GetApi(ORT_API_VERSION);
	if (!pp_api) return "the library does not provide ONNX Runtime C API version " "24";
	return NULL;
}

// pp_error turns a status into a malloc'd message (NULL for success).
static char *pp_error(OrtStatus *st) {
	if (!st) return NULL;
	const char *msg = pp_api->GetErrorMessage(st);
	char *out = (char *)malloc(strlen(msg) + 1);
	strcpy(out, msg);
	pp_api->ReleaseStatus(st);
	return out;
}

static char *pp_providers(char ***out, int *n) { return pp_error(pp_api->GetAvailableProviders(out, n)); }
static void pp_release_providers(char **p, int n) { OrtStatus *st = pp_api->ReleaseAvailableProviders(p, n); if (st) pp_api->ReleaseStatus(st); }

static char *pp_cpu_memory(OrtMemoryInfo **out) {
	return pp_error(pp_api->CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, out));
}
static char *pp_device_memory(const char *name, int device, OrtMemoryInfo **out) {
	return pp_error(pp_api->CreateMemoryInfo(name, OrtDeviceAllocator, device, OrtMemTypeDefault, out));
}
static void pp_release_memory(OrtMemoryInfo *m) { pp_api->ReleaseMemoryInfo(m); }

static char *pp_bind_input(void *b, const char *name, void *v) {
	return pp_error(pp_api->BindInput((OrtIoBinding *)b, name, (const OrtValue *)v));
}
static char *pp_bind_output_to(void *b, const char *name, OrtMemoryInfo *m) {
	return pp_error(pp_api->BindOutputToDevice((OrtIoBinding *)b, name, m));
}

// pp_bound_outputs returns the binding's output values in bind order.
static char *pp_bound_outputs(void *b, OrtValue ***out, size_t *n) {
	OrtAllocator *a;
	char *err = pp_error(pp_api->GetAllocatorWithDefaultOptions(&a));
	if (err) return err;
	OrtValue **vals = NULL;
	err = pp_error(pp_api->GetBoundOutputValues((const OrtIoBinding *)b, a, &vals, n));
	if (err) return err;
	*out = (OrtValue **)malloc(sizeof(OrtValue *) * (*n ? *n : 1));
	for (size_t i = 0; i < *n; i++) (*out)[i] = vals[i];
	if (vals) { OrtStatus *st = pp_api->AllocatorFree(a, vals); if (st) pp_api->ReleaseStatus(st); }
	return NULL;
}

static void pp_release_value(OrtValue *v) { pp_api->ReleaseValue(v); }

static char *pp_value_shape(OrtValue *v, int64_t *dims, size_t cap, size_t *n) {
	OrtTensorTypeAndShapeInfo *info;
	char *err = pp_error(pp_api->GetTensorTypeAndShape(v, &info));
	if (err) return err;
	err = pp_error(pp_api->GetDimensionsCount(info, n));
	if (!err && *n <= cap) err = pp_error(pp_api->GetDimensions(info, dims, *n));
	pp_api->ReleaseTensorTypeAndShapeInfo(info);
	return err;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

var (
	capiOnce sync.Once
	capiErr  error
)

// loadCAPI gets the C API of the library at path (already loaded by
// onnxruntime_go) for the calls onnxruntime_go does not wrap.
func loadCAPI(path string) error {
	capiOnce.Do(func() {
		cpath := C.CString(path)
		defer C.free(unsafe.Pointer(cpath))
		if msg := C.pp_load_api(cpath); msg != nil {
			capiErr = fmt.Errorf("load ONNX Runtime C API from %s: %s", path, C.GoString(msg))
		}
	})
	return capiErr
}

// cError converts a message returned by the C helpers into an error.
func cError(msg *C.char) error {
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return errors.New(C.GoString(msg))
}

func availableProviders() ([]string, error) {
	var list **C.char
	var n C.int
	if err := cError(C.pp_providers(&list, &n)); err != nil {
		return nil, err
	}
	defer C.pp_release_providers(list, n)
	out := make([]string, int(n))
	for i, p := range unsafe.Slice(list, int(n)) {
		out[i] = C.GoString(p)
	}
	return out, nil
}

// MemoryInfo says where ONNX Runtime should put an output.
type MemoryInfo struct {
	m    *C.OrtMemoryInfo
	name string
}

// CPUMemory is host memory allocated by ONNX Runtime.
func CPUMemory() (*MemoryInfo, error) {
	var m *C.OrtMemoryInfo
	if err := cError(C.pp_cpu_memory(&m)); err != nil {
		return nil, fmt.Errorf("create CPU memory info: %w", err)
	}
	return &MemoryInfo{m: m, name: "cpu"}, nil
}

// CUDAMemory is device memory of CUDA device id.
func CUDAMemory(id int) (*MemoryInfo, error) {
	name := C.CString("Cuda")
	defer C.free(unsafe.Pointer(name))
	var m *C.OrtMemoryInfo
	if err := cError(C.pp_device_memory(name, C.int(id), &m)); err != nil {
		return nil, fmt.Errorf("create CUDA memory info for device %d: %w", id, err)
	}
	return &MemoryInfo{m: m, name: fmt.Sprintf("cuda:%d", id)}, nil
}

// String names the memory ("cpu", "cuda:0").
func (m *MemoryInfo) String() string { return m.name }

// Close releases the memory info.
func (m *MemoryInfo) Close() {
	if m != nil && m.m != nil {
		C.pp_release_memory(m.m)
		m.m = nil
	}
}

// Value is an output ONNX Runtime allocated (on the host or a device). Go
// never reads its data; it is only passed back as an input.
type Value struct {
	v *C.OrtValue
}

// Shape returns the value's dimensions.
func (v *Value) Shape() ([]int64, error) {
	dims := make([]int64, 8)
	var n C.size_t
	if err := cError(C.pp_value_shape(v.v, (*C.int64_t)(unsafe.Pointer(&dims[0])), 8, &n)); err != nil {
		return nil, err
	}
	if int(n) > len(dims) {
		return nil, fmt.Errorf("value has %d dimensions", int(n))
	}
	return dims[:int(n)], nil
}

// Close releases the value.
func (v *Value) Close() {
	if v != nil && v.v != nil {
		C.pp_release_value(v.v)
		v.v = nil
	}
}

func bindInputRaw(binding unsafe.Pointer, name string, v unsafe.Pointer) error {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	return cError(C.pp_bind_input(binding, cname, v))
}

func bindOutputTo(binding unsafe.Pointer, name string, m *MemoryInfo) error {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	return cError(C.pp_bind_output_to(binding, cname, m.m))
}

// boundOutputs returns the binding's outputs in bind order; the caller owns them.
func boundOutputs(binding unsafe.Pointer) ([]*Value, error) {
	var vals **C.OrtValue
	var n C.size_t
	if err := cError(C.pp_bound_outputs(binding, &vals, &n)); err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(vals))
	out := make([]*Value, int(n))
	for i, v := range unsafe.Slice(vals, int(n)) {
		out[i] = &Value{v: v}
	}
	return out, nil
}
