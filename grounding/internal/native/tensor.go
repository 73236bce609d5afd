package native

import (
	"fmt"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// Tensor is an ONNX Runtime tensor over Go memory: ONNX Runtime reads
// inputs from it and writes bound outputs into it in place.
type Tensor struct {
	v     ort.Value
	shape []int64
	dtype DType
	f32   []float32
	i64   []int64
	raw   []byte
}

// NewFloat32 wraps data (len = product of shape) as a float32 tensor.
func NewFloat32(shape []int64, data []float32) (*Tensor, error) {
	v, err := ort.NewTensor(ort.NewShape(shape...), data)
	if err != nil {
		return nil, fmt.Errorf("float32 tensor %v: %w", shape, err)
	}
	return &Tensor{v: v, shape: shape, dtype: Float32, f32: data}, nil
}

// NewInt64 wraps data as an int64 tensor.
func NewInt64(shape []int64, data []int64) (*Tensor, error) {
	v, err := ort.NewTensor(ort.NewShape(shape...), data)
	if err != nil {
		return nil, fmt.Errorf("int64 tensor %v: %w", shape, err)
	}
	return &Tensor{v: v, shape: shape, dtype: Int64, i64: data}, nil
}

// NewRaw wraps bytes as a tensor of any element type. It is how float16
// tensors are made: onnxruntime_go cannot allocate float16 outputs itself.
func NewRaw(dtype DType, shape []int64, data []byte) (*Tensor, error) {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	if need := n * int64(dtype.Size()); dtype.Size() == 0 || int64(len(data)) < need {
		return nil, fmt.Errorf("%s tensor %v needs %d bytes, have %d", dtype, shape, need, len(data))
	}
	// onnxruntime_go wants at least one byte even for an empty tensor
	// (a prefill's zero-length past); ONNX Runtime accepts a larger buffer.
	size := max(n*int64(dtype.Size()), 1)
	if int64(len(data)) < size {
		return nil, fmt.Errorf("%s tensor %v needs a buffer of at least one byte", dtype, shape)
	}
	v, err := ort.NewCustomDataTensor(ort.NewShape(shape...), data[:size], ort.TensorElementDataType(dtype))
	if err != nil {
		return nil, fmt.Errorf("%s tensor %v: %w", dtype, shape, err)
	}
	return &Tensor{v: v, shape: shape, dtype: dtype, raw: data}, nil
}

// Float32s returns the float32 data (nil for other types).
func (t *Tensor) Float32s() []float32 { return t.f32 }

// Shape returns the tensor's dimensions.
func (t *Tensor) Shape() []int64 { return t.shape }

// Close releases the ONNX Runtime value (not the Go memory).
func (t *Tensor) Close() {
	if t != nil && t.v != nil {
		t.v.Destroy()
		t.v = nil
	}
}

// ioBindingPointer returns the C OrtIoBinding of an onnxruntime_go
// IoBinding (v1.27.0: a struct whose only field is that pointer).
func ioBindingPointer(b *ort.IoBinding) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(b))
}
