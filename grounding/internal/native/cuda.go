package native

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *pp_dlerror(void) {
	const char *e = dlerror();
	return strdup(e ? e : "unknown dlopen error");
}

// pp_dlopen loads a shared library; global makes its symbols visible to
// the libraries loaded after it (CUDA libraries look each other up).
static void *pp_dlopen(const char *path, int global, char **err) {
	void *h = dlopen(path, RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL));
	if (!h) *err = pp_dlerror();
	return h;
}
static void pp_dlclose(void *h) { dlclose(h); }

// pp_loaded lists the path of every object loaded in the process,
// NUL-separated, in a malloc'd buffer.
typedef struct { char *buf; size_t len, cap; } pp_names;
static int pp_collect(struct dl_phdr_info *info, size_t size, void *data) {
	pp_names *n = (pp_names *)data;
	const char *name = info->dlpi_name;
	if (!name || !*name) return 0;
	size_t l = strlen(name) + 1;
	if (n->len + l > n->cap) {
		size_t cap = (n->cap + l) * 2;
		char *buf = (char *)realloc(n->buf, cap);
		if (!buf) return 1;
		n->buf = buf;
		n->cap = cap;
	}
	memcpy(n->buf + n->len, name, l);
	n->len += l;
	return 0;
}
static char *pp_loaded(size_t *len) {
	pp_names n = {0};
	dl_iterate_phdr(pp_collect, &n);
	*len = n.len;
	return n.buf;
}

// The CUDA driver API, called through dlopen: paliprompt neither links
// nor needs the driver; it asks it about devices when it is there.
typedef int CUresult;
typedef int CUdevice;
typedef struct {
	void *h;
	CUresult (*init)(unsigned int);
	CUresult (*driver_version)(int *);
	CUresult (*device_count)(int *);
	CUresult (*device_get)(CUdevice *, int);
	CUresult (*device_name)(char *, int, CUdevice);
	CUresult (*device_attribute)(int *, int, CUdevice);
	CUresult (*device_total_mem)(size_t *, CUdevice);
	CUresult (*error_name)(CUresult, const char **);
	CUresult (*error_string)(CUresult, const char **);
} pp_cuda;

static char *pp_cuda_open(const char *name, pp_cuda *d) {
	char *err = NULL;
	d->h = pp_dlopen(name, 0, &err);
	if (!d->h) return err;
	struct { void **fn; const char *sym; } syms[] = {
		{(void **)&d->init, "cuInit"},
		{(void **)&d->driver_version, "cuDriverGetVersion"},
		{(void **)&d->device_count, "cuDeviceGetCount"},
		{(void **)&d->device_get, "cuDeviceGet"},
		{(void **)&d->device_name, "cuDeviceGetName"},
		{(void **)&d->device_attribute, "cuDeviceGetAttribute"},
		{(void **)&d->device_total_mem, "cuDeviceTotalMem_v2"},
		{(void **)&d->error_name, "cuGetErrorName"},
		{(void **)&d->error_string, "cuGetErrorString"},
	};
	for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
		*syms[i].fn = dlsym(d->h, syms[i].sym);
		if (!*syms[i].fn) {
			size_t l = strlen(syms[i].sym) + 64;
			char *msg = (char *)malloc(l);
			snprintf(msg, l, "%s is missing from the driver library", syms[i].sym);
			dlclose(d->h);
			d->h = NULL;
			return msg;
		}
	}
	return NULL;
}

static CUresult pp_cu_init(pp_cuda *d) { return d->init(0); }
static CUresult pp_cu_driver_version(pp_cuda *d, int *v) { return d->driver_version(v); }
static CUresult pp_cu_device_count(pp_cuda *d, int *n) { return d->device_count(n); }
static CUresult pp_cu_device(pp_cuda *d, int ordinal, char *name, int cap, int *major, int *minor, size_t *mem) {
	CUdevice dev;
	CUresult r = d->device_get(&dev, ordinal);
	if (r) return r;
	if ((r = d->device_name(name, cap, dev))) return r;
	name[cap - 1] = 0;
	if ((r = d->device_attribute(major, 75, dev))) return r; // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
	if ((r = d->device_attribute(minor, 76, dev))) return r; // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
	return d->device_total_mem(mem, dev);
}
static const char *pp_cu_error_name(pp_cuda *d, CUresult r) {
	const char *s = NULL;
	return d->error_name(r, &s) == 0 && s ? s : "CUDA_ERROR_UNKNOWN";
}
static const char *pp_cu_error_string(pp_cuda *d, CUresult r) {
	const char *s = NULL;
	return d->error_string(r, &s) == 0 && s ? s : "";
}
*/
import "C"

import (
	"fmt"
	"path/filepath"
	"strings"
	"unsafe"
)

// SharedLibrary is a library loaded with dlopen.
type SharedLibrary struct {
	h    unsafe.Pointer
	path string
}

// OpenLibrary loads the shared library at path, its symbols visible to the
// libraries loaded after it.
func OpenLibrary(path string) (*SharedLibrary, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var msg *C.char
	h := C.pp_dlopen(cpath, 1, &msg)
	if h == nil {
		return nil, fmt.Errorf("load %s: %w", path, cError(msg))
	}
	return &SharedLibrary{h: h, path: path}, nil
}

// Path is the file loaded.
func (l *SharedLibrary) Path() string { return l.path }

// Close unloads the library (the loader keeps it while another library
// still needs it).
func (l *SharedLibrary) Close() {
	if l != nil && l.h != nil {
		C.pp_dlclose(l.h)
		l.h = nil
	}
}

// LoadedLibraries lists the file of every shared object loaded in the
// process, in load order, as the dynamic loader found it.
func LoadedLibraries() []string {
	var n C.size_t
	buf := C.pp_loaded(&n)
	if buf == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(buf))
	return strings.Split(strings.TrimSuffix(C.GoStringN(buf, C.int(n)), "\x00"), "\x00")
}

// CUDADriver is the NVIDIA driver's CUDA library (libcuda.so.1), opened
// to ask about devices. It comes with the driver, never with paliprompt.
type CUDADriver struct {
	d    C.pp_cuda
	path string
}

// Device is one CUDA device as the driver reports it.
type Device struct {
	Ordinal      int
	Name         string
	Major, Minor int // compute capability
	Memory       uint64
}

// CUDAError is a CUDA driver API call that failed.
type CUDAError struct {
	Call string
	Code int
	Name string // CUDA_ERROR_NO_DEVICE
	Text string // "no CUDA-capable device is detected"
}

func (e *CUDAError) Error() string {
	return fmt.Sprintf("%s: %s (%s)", e.Call, e.Name, e.Text)
}

// cudaErrorNoDevice is CUDA_ERROR_NO_DEVICE: a driver but no device.
const cudaErrorNoDevice = 100

// OpenCUDADriver loads libcuda.so.1 from the system's library path (the
// driver installs it there) and initializes it.
func OpenCUDADriver() (*CUDADriver, error) { return openCUDADriver("libcuda.so.1") }

func openCUDADriver(name string) (*CUDADriver, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	d := &CUDADriver{path: name}
	if err := cError(C.pp_cuda_open(cname, &d.d)); err != nil {
		return nil, fmt.Errorf("load the NVIDIA driver's CUDA library: %w", err)
	}
	if lib := loadedPath(filepath.Base(name)); lib != "" {
		d.path = lib
	}
	return d, nil
}

// loadedPath is the file a loaded library named base came from.
func loadedPath(base string) string {
	for _, p := range LoadedLibraries() {
		if filepath.Base(p) == base {
			return p
		}
	}
	return ""
}

func (d *CUDADriver) err(call string, r C.CUresult) error {
	if r == 0 {
		return nil
	}
	return &CUDAError{Call: call, Code: int(r), Name: C.GoString(C.pp_cu_error_name(&d.d, r)), Text: C.GoString(C.pp_cu_error_string(&d.d, r))}
}

// Path is the driver library loaded.
func (d *CUDADriver) Path() string { return d.path }

// Version is the CUDA version the driver supports ("12.4").
func (d *CUDADriver) Version() (string, error) {
	var v C.int
	if err := d.err("cuDriverGetVersion", C.pp_cu_driver_version(&d.d, &v)); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10), nil
}

// Devices lists the CUDA devices; none (and no error) when the driver
// finds no device.
func (d *CUDADriver) Devices() ([]Device, error) {
	if r := C.pp_cu_init(&d.d); r != 0 {
		if r == cudaErrorNoDevice {
			return nil, nil
		}
		return nil, d.err("cuInit", r)
	}
	var n C.int
	if err := d.err("cuDeviceGetCount", C.pp_cu_device_count(&d.d, &n)); err != nil {
		return nil, err
	}
	var out []Device
	for i := range int(n) {
		var name [256]C.char
		var major, minor C.int
		var mem C.size_t
		if err := d.err(fmt.Sprintf("device %d", i), C.pp_cu_device(&d.d, C.int(i), &name[0], C.int(len(name)), &major, &minor, &mem)); err != nil {
			return nil, err
		}
		out = append(out, Device{Ordinal: i, Name: C.GoString(&name[0]), Major: int(major), Minor: int(minor), Memory: uint64(mem)})
	}
	return out, nil
}

// Close unloads the driver library.
func (d *CUDADriver) Close() {
	if d != nil && d.d.h != nil {
		C.pp_dlclose(d.d.h)
		d.d.h = nil
	}
}
