package paligemma

import (
	"fmt"

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

// kvNames are the cache's input and output names, layer by layer, key
// then value (made once: every step binds them all).
type kvNames struct{ past, present []string }

func newKVNames(layers int) kvNames {
	var n kvNames
	for layer := range layers {
		for _, kind := range kvKinds {
			n.past = append(n.past, pastName(layer, kind))
			n.present = append(n.present, presentName(layer, kind))
		}
	}
	return n
}

func pastName(layer int, kind string) string {
	return fmt.Sprintf("past_key_values.%d.%s", layer, kind)
}

func presentName(layer int, kind string) string {
	return fmt.Sprintf("present.%d.%s", layer, kind)
}

var kvKinds = [2]string{"key", "value"}

// pingPongKV keeps the cache in two host buffers per tensor, allocated
// once for the longest sequence: each step reads the past from one and
// ONNX Runtime writes the present (past + new positions) into the other,
// then they swap. The tensors are views of a prefix of a buffer ([B, heads,
// length, head_dim] is contiguous), so no step allocates or copies cache
// memory in Go; a step's present tensors are the next step's past ones.
type pingPongKV struct {
	spec          *modelSpec
	b             int
	names         kvNames
	bufs          [2][][]byte // [side][layer*2+kind]
	cur           int
	past, present []*native.Tensor // [layer*2+kind]
}

func newPingPongKV(s *modelSpec, b, maxLen int) *pingPongKV {
	size := max(b*s.kvHeads*maxLen*s.headDim*s.kvType.Size(), 1)
	k := &pingPongKV{spec: s, b: b, names: newKVNames(s.layers)}
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
	n := len(k.names.past)
	closeAll(k.past)
	k.past = nil
	if len(k.present) == n && k.present[0].Shape()[2] == int64(past) {
		// Last step's present, in the buffers of side cur since the swap.
		k.past = k.present
	} else {
		closeAll(k.present)
	}
	k.present = nil
	for i := range n {
		if len(k.past) < n {
			in, err := native.NewRaw(k.spec.kvType, k.shape(past), k.bufs[k.cur][i])
			if err != nil {
				return err
			}
			k.past = append(k.past, in)
		}
		out, err := native.NewRaw(k.spec.kvType, k.shape(past+queries), k.bufs[1-k.cur][i])
		if err != nil {
			return err
		}
		k.present = append(k.present, out)
		if err := b.BindInput(k.names.past[i], k.past[i]); err != nil {
			return err
		}
		if err := b.BindOutput(k.names.present[i], out); err != nil {
			return err
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

func closeAll(ts []*native.Tensor) {
	for _, t := range ts {
		t.Close()
	}
}

func (k *pingPongKV) Close() {
	closeAll(k.past)
	closeAll(k.present)
	k.past, k.present = nil, nil
}

// boundKV leaves the cache where ONNX Runtime puts it: present.* are
// bound to a memory (the GPU's, so the cache never crosses to the host
// between steps) with BindOutputToDevice and fed back as the next step's
// past_key_values. With host memory the same code runs in CI.
type boundKV struct {
	spec  *modelSpec
	b     int
	mem   *native.MemoryInfo
	names kvNames
	past  []*native.Value // [layer*2+kind], nil before the prefill
	empty []*native.Tensor
	buf   []byte
}

func newBoundKV(s *modelSpec, b int, mem *native.MemoryInfo) *boundKV {
	return &boundKV{spec: s, b: b, mem: mem, names: newKVNames(s.layers), buf: make([]byte, 1)}
}

func (k *boundKV) bind(b *native.Binding, past, queries int) error {
	for i, name := range k.names.past {
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
			if i >= len(k.past) {
				return fmt.Errorf("no cached %s from the previous step", name)
			}
			if err := b.BindValue(name, k.past[i]); err != nil {
				return err
			}
		}
		// Again every step: ONNX Runtime allocates each present anew.
		if err := b.BindOutputTo(k.names.present[i], k.mem); err != nil {
			return err
		}
	}
	return nil
}

func (k *boundKV) advance(outs map[string]*native.Value) error {
	next := make([]*native.Value, len(k.names.present))
	for i, name := range k.names.present {
		v, ok := outs[name]
		if !ok {
			for _, v := range outs {
				v.Close()
			}
			return fmt.Errorf("decoder returned no %s", name)
		}
		next[i] = v
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
