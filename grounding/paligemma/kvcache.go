package paligemma

import (
	"fmt"
	"strings"

	"paliprompt/grounding/internal/native"
)

// kvCache feeds each decoder step its past_key_values and takes its
// present.* outputs, without Go ever copying the cache.
type kvCache interface {
	// bind binds the past of length past and the present outputs of
	// length past+queries.
	bind(b *native.Binding, past, queries int) error
	// advance makes this step's present the next step's past; outs are
	// the values bound with BindOutputTo (the caller no longer owns them).
	advance(outs map[string]*native.Value) error
	Close()
}

func pastName(layer int, kind string) string {
	return fmt.Sprintf("past_key_values.%d.%s", layer, kind)
}

func presentName(layer int, kind string) string {
	return fmt.Sprintf("present.%d.%s", layer, kind)
}

func isPresent(name string) bool { return strings.HasPrefix(name, "present.") }

var kvKinds = [2]string{"key", "value"}

// pingPongKV keeps the cache in two host buffers per tensor, allocated
// once for the longest sequence: each step reads the past from one and
// ONNX Runtime writes the present (past + new positions) into the other,
// then they swap. The tensors are views of a prefix of a buffer ([B, heads,
// length, head_dim] is contiguous), so no step allocates or copies cache
// memory in Go.
type pingPongKV struct {
	spec    *modelSpec
	b       int
	bufs    [2][][]byte // [side][layer*2+kind]
	cur     int
	tensors []*native.Tensor
}

func newPingPongKV(s *modelSpec, b, maxLen int) *pingPongKV {
	size := max(b*s.kvHeads*maxLen*s.headDim*s.kvType.Size(), 1)
	k := &pingPongKV{spec: s, b: b}
	for side := range k.bufs {
		k.bufs[side] = make([][]byte, 2*s.layers)
		for i := range k.bufs[side] {
			k.bufs[side][i] = make([]byte, size)
		}
	}
	return k
}

func (k *pingPongKV) shape(length int) []int64 {
	return []int64{int64(k.b), int64(k.spec.kvHeads), int64(length), int64(k.spec.headDim)}
}

func (k *pingPongKV) bind(b *native.Binding, past, queries int) error {
	k.closeTensors()
	for layer := range k.spec.layers {
		for j, kind := range kvKinds {
			i := layer*2 + j
			in, err := native.NewRaw(k.spec.kvType, k.shape(past), k.bufs[k.cur][i])
			if err != nil {
				return err
			}
			k.tensors = append(k.tensors, in)
			out, err := native.NewRaw(k.spec.kvType, k.shape(past+queries), k.bufs[1-k.cur][i])
			if err != nil {
				return err
			}
			k.tensors = append(k.tensors, out)
			if err := b.BindInput(pastName(layer, kind), in); err != nil {
				return err
			}
			if err := b.BindOutput(presentName(layer, kind), out); err != nil {
				return err
			}
		}
	}
	return nil
}

func (k *pingPongKV) advance(outs map[string]*native.Value) error {
	for _, v := range outs {
		v.Close()
	}
	k.cur = 1 - k.cur
	return nil
}

func (k *pingPongKV) closeTensors() {
	for _, t := range k.tensors {
		t.Close()
	}
	k.tensors = k.tensors[:0]
}

func (k *pingPongKV) Close() { k.closeTensors() }

// boundKV leaves the cache where ONNX Runtime puts it: present.* are
// bound to a memory (the GPU's, so the cache never crosses to the host
// between steps) with BindOutputToDevice and fed back as the next step's
// past_key_values. With host memory the same code runs in CI.
type boundKV struct {
	spec  *modelSpec
	b     int
	mem   *native.MemoryInfo
	past  map[string]*native.Value
	empty []*native.Tensor
	buf   []byte
}

func newBoundKV(s *modelSpec, b int, mem *native.MemoryInfo) *boundKV {
	return &boundKV{spec: s, b: b, mem: mem, past: map[string]*native.Value{}, buf: make([]byte, 1)}
}

func (k *boundKV) bind(b *native.Binding, past, queries int) error {
	for layer := range k.spec.layers {
		for _, kind := range kvKinds {
			name := pastName(layer, kind)
			if past == 0 {
				// Prefill: an empty host tensor (nothing to copy).
				t, err := native.NewRaw(k.spec.kvType, []int64{int64(k.b), int64(k.spec.kvHeads), 0, int64(k.spec.headDim)}, k.buf)
				if err != nil {
					return err
				}
				k.empty = append(k.empty, t)
				if err := b.BindInput(name, t); err != nil {
					return err
				}
			} else {
				v, ok := k.past[name]
				if !ok {
					return fmt.Errorf("no cached %s from the previous step", name)
				}
				if err := b.BindValue(name, v); err != nil {
					return err
				}
			}
			if err := b.BindOutputTo(presentName(layer, kind), k.mem); err != nil {
				return err
			}
		}
	}
	return nil
}

func (k *boundKV) advance(outs map[string]*native.Value) error {
	next := map[string]*native.Value{}
	for layer := range k.spec.layers {
		for _, kind := range kvKinds {
			v, ok := outs[presentName(layer, kind)]
			if !ok {
				return fmt.Errorf("decoder returned no %s", presentName(layer, kind))
			}
			next[pastName(layer, kind)] = v
		}
	}
	k.closePast()
	k.past = next
	return nil
}

func (k *boundKV) closePast() {
	for _, v := range k.past {
		v.Close()
	}
	k.past = nil
}

func (k *boundKV) Close() {
	k.closePast()
	for _, t := range k.empty {
		t.Close()
	}
	k.empty = nil
}
