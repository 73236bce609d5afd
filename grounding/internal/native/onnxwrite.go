package native

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Graph builds a small ONNX model in memory (the mask decoder's, from
// vae-oid.npz at load time), for NewSessionFromBytes: only what such a
// graph needs of the protobuf schema (onnx/onnx.proto): nodes with int
// attributes, float32 initializers as raw_data, typed inputs and outputs.
type Graph struct {
	name                   string
	nodes, inits, in, outs [][]byte
}

// NewGraph starts an empty graph.
func NewGraph(name string) *Graph { return &Graph{name: name} }

// Attr is a node attribute.
type Attr struct {
	name string
	ints []int64
	one  bool // a single int (AttributeProto.i) rather than a list
}

// IntAttr is an INT attribute.
func IntAttr(name string, v int64) Attr { return Attr{name: name, ints: []int64{v}, one: true} }

// IntsAttr is an INTS attribute.
func IntsAttr(name string, v ...int64) Attr { return Attr{name: name, ints: v} }

// Input declares a graph input; a negative dimension is symbolic, named
// name_<axis>.
func (g *Graph) Input(name string, dtype DType, shape ...int64) {
	g.in = append(g.in, valueInfo(name, dtype, shape))
}

// Output declares a graph output (shape as for Input).
func (g *Graph) Output(name string, dtype DType, shape ...int64) {
	g.outs = append(g.outs, valueInfo(name, dtype, shape))
}

// Float32 adds a float32 initializer; len(data) must be the product of dims.
func (g *Graph) Float32(name string, data []float32, dims ...int64) error {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	if n != int64(len(data)) {
		return fmt.Errorf("initializer %s: %d values for dims %v", name, len(data), dims)
	}
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	var t pbWriter
	for _, d := range dims {
		t.varint(1, uint64(d)) // TensorProto.dims
	}
	t.varint(2, uint64(Float32)) // data_type
	t.bytes(8, []byte(name))     // name
	t.bytes(9, raw)              // raw_data (little-endian)
	g.inits = append(g.inits, t.b)
	return nil
}

// Node adds a node of the default domain.
func (g *Graph) Node(op string, inputs, outputs []string, attrs ...Attr) {
	var n pbWriter
	for _, s := range inputs {
		n.bytes(1, []byte(s)) // NodeProto.input
	}
	for _, s := range outputs {
		n.bytes(2, []byte(s)) // output
	}
	n.bytes(3, fmt.Appendf(nil, "%s_%d", op, len(g.nodes))) // name
	n.bytes(4, []byte(op))                                  // op_type
	for _, a := range attrs {
		var w pbWriter
		w.bytes(1, []byte(a.name)) // AttributeProto.name
		if a.one {
			w.varint(3, uint64(a.ints[0])) // i
			w.varint(20, 2)                // type INT
		} else {
			for _, v := range a.ints {
				w.varint(8, uint64(v)) // ints
			}
			w.varint(20, 7) // type INTS
		}
		n.bytes(5, w.b) // attribute
	}
	g.nodes = append(g.nodes, n.b)
}

// Model serializes the graph as a ModelProto of the given opset.
func (g *Graph) Model(opset int64) []byte {
	var gr pbWriter
	for _, n := range g.nodes {
		gr.bytes(1, n) // GraphProto.node
	}
	gr.bytes(2, []byte(g.name))
	for _, t := range g.inits {
		gr.bytes(5, t) // initializer
	}
	for _, v := range g.in {
		gr.bytes(11, v)
	}
	for _, v := range g.outs {
		gr.bytes(12, v)
	}
	var op pbWriter
	op.varint(2, uint64(opset)) // OperatorSetIdProto.version (domain "": ai.onnx)
	var m pbWriter
	m.varint(1, onnxIRVersion)       // ModelProto.ir_version
	m.bytes(2, []byte("paliprompt")) // producer_name
	m.bytes(7, gr.b)                 // graph
	m.bytes(8, op.b)                 // opset_import
	return m.b
}

// onnxIRVersion 8 is the IR of opsets 14-18 (onnx/docs/Versioning.md).
const onnxIRVersion = 8

// valueInfo is a ValueInfoProto of a tensor: name, type.tensor_type
// {elem_type, shape.dim[] {dim_value | dim_param}}.
func valueInfo(name string, dtype DType, shape []int64) []byte {
	var sh pbWriter
	for axis, d := range shape {
		var dim pbWriter
		if d >= 0 {
			dim.varint(1, uint64(d))
		} else {
			dim.bytes(2, fmt.Appendf(nil, "%s_%d", name, axis))
		}
		sh.bytes(1, dim.b)
	}
	var tt pbWriter
	tt.varint(1, uint64(dtype))
	tt.bytes(2, sh.b)
	var typ pbWriter
	typ.bytes(1, tt.b)
	var v pbWriter
	v.bytes(1, []byte(name))
	v.bytes(2, typ.b)
	return v.b
}

// pbWriter appends protobuf fields.
type pbWriter struct{ b []byte }

func (w *pbWriter) varint(field int, v uint64) {
	w.b = binary.AppendUvarint(w.b, uint64(field)<<3)
	w.b = binary.AppendUvarint(w.b, v)
}

func (w *pbWriter) bytes(field int, p []byte) {
	w.b = binary.AppendUvarint(w.b, uint64(field)<<3|2)
	w.b = binary.AppendUvarint(w.b, uint64(len(p)))
	w.b = append(w.b, p...)
}
