package native

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ModelIO lists a model's graph inputs and outputs, read straight from the
// .onnx protobuf without creating a session: the session constructor needs
// the names up front, and loading a multi-GB decoder twice just to learn
// them would double the load time and peak memory.
type ModelIO struct {
	Inputs, Outputs []IOInfo
}

// IOInfo is one graph input or output.
type IOInfo struct {
	Name  string
	DType DType
	// Shape has -1 for symbolic or unknown dimensions.
	Shape []int64
}

// DType is an ONNX tensor element type.
type DType int32

// The element types paliprompt's models use (onnx.TensorProto.DataType).
const (
	Float32 DType = 1
	Int64   DType = 7
	Float16 DType = 10
)

// Size is the element size in bytes (0 for types we do not handle).
func (d DType) Size() int {
	switch d {
	case Float32:
		return 4
	case Int64:
		return 8
	case Float16:
		return 2
	}
	return 0
}

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Int64:
		return "int64"
	case Float16:
		return "float16"
	}
	return fmt.Sprintf("onnx type %d", int32(d))
}

// ReadModelIO reads the inputs and outputs of an .onnx file. Large
// initializers are skipped without being read into memory.
func ReadModelIO(path string) (ModelIO, error) {
	f, err := os.Open(path)
	if err != nil {
		return ModelIO{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ModelIO{}, err
	}
	return readModelIO(f, st.Size())
}

// readModelIO reads the inputs and outputs of the size bytes of a model in r.
func readModelIO(f io.ReaderAt, size int64) (ModelIO, error) {
	var io ModelIO
	r := &pbReader{r: f, end: size}
	found := false
	err := r.fields(func(num int, wire int, sub *pbReader) error {
		if num != 7 || wire != 2 { // ModelProto.graph
			return nil
		}
		found = true
		return sub.fields(func(num int, wire int, sub *pbReader) error {
			if wire != 2 || (num != 11 && num != 12) { // GraphProto.input, .output
				return nil
			}
			info, err := readValueInfo(sub)
			if err != nil {
				return err
			}
			if num == 11 {
				io.Inputs = append(io.Inputs, info)
			} else {
				io.Outputs = append(io.Outputs, info)
			}
			return nil
		})
	})
	if err != nil {
		return ModelIO{}, fmt.Errorf("not a valid ONNX model: %w", err)
	}
	if !found {
		return ModelIO{}, errors.New("not a valid ONNX model: no graph")
	}
	return io, nil
}

// readValueInfo reads a ValueInfoProto: name (1), type (2) -> tensor_type
// (1) -> elem_type (1), shape (2) -> dim (1) -> dim_value (1) | dim_param (2).
func readValueInfo(r *pbReader) (IOInfo, error) {
	var info IOInfo
	err := r.fields(func(num, wire int, sub *pbReader) error {
		switch {
		case num == 1 && wire == 2:
			b, err := sub.bytes()
			info.Name = string(b)
			return err
		case num == 2 && wire == 2:
			return sub.fields(func(num, wire int, sub *pbReader) error {
				if num != 1 || wire != 2 {
					return nil
				}
				return sub.fields(func(num, wire int, sub *pbReader) error {
					switch {
					case num == 1 && wire == 0:
						info.DType = DType(sub.value)
					case num == 2 && wire == 2:
						return sub.fields(func(num, wire int, sub *pbReader) error {
							if num != 1 || wire != 2 {
								return nil
							}
							dim := int64(-1)
							err := sub.fields(func(num, wire int, sub *pbReader) error {
								if num == 1 && wire == 0 {
									dim = int64(sub.value)
								}
								return nil
							})
							info.Shape = append(info.Shape, dim)
							return err
						})
					}
					return nil
				})
			})
		}
		return nil
	})
	return info, err
}

// pbReader walks the protobuf fields in [off, end) of r.
type pbReader struct {
	r     io.ReaderAt
	off   int64
	end   int64
	value uint64 // for varint fields handed to a callback
}

var errTruncated = errors.New("truncated protobuf")

func (p *pbReader) varint() (uint64, error) {
	var v uint64
	var b [1]byte
	for shift := uint(0); shift < 64; shift += 7 {
		if p.off >= p.end {
			return 0, errTruncated
		}
		if _, err := p.r.ReadAt(b[:], p.off); err != nil {
			return 0, err
		}
		p.off++
		v |= uint64(b[0]&0x7f) << shift
		if b[0] < 0x80 {
			return v, nil
		}
	}
	return 0, errors.New("bad varint")
}

// fields calls fn for each field. For length-delimited fields (wire 2) sub
// covers the payload; for varints sub.value holds the value. Payloads fn
// does not read are skipped.
func (p *pbReader) fields(fn func(num, wire int, sub *pbReader) error) error {
	for p.off < p.end {
		key, err := p.varint()
		if err != nil {
			return err
		}
		num, wire := int(key>>3), int(key&7)
		sub := &pbReader{r: p.r}
		switch wire {
		case 0:
			if sub.value, err = p.varint(); err != nil {
				return err
			}
		case 1:
			p.off += 8
		case 5:
			p.off += 4
		case 2:
			n, err := p.varint()
			if err != nil {
				return err
			}
			if n > uint64(p.end-p.off) {
				return errTruncated
			}
			sub.off, sub.end = p.off, p.off+int64(n)
			p.off = sub.end
		default:
			return fmt.Errorf("unsupported protobuf wire type %d", wire)
		}
		if p.off > p.end {
			return errTruncated
		}
		if err := fn(num, wire, sub); err != nil {
			return err
		}
	}
	return nil
}

func (p *pbReader) bytes() ([]byte, error) {
	if p.end-p.off > 1<<20 {
		return nil, errors.New("name too long")
	}
	b := make([]byte, p.end-p.off)
	_, err := p.r.ReadAt(b, p.off)
	return b, err
}
