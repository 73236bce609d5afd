package paligemma

import (
	"fmt"

	"paliprompt/core"
	"paliprompt/grounding"

	"paliprompt/grounding/internal/native"
)

// ortMaskDecoder runs big_vision's mask decoder (vae-oid.npz) on ONNX
// Runtime, on the model's execution provider: its convolutions become an
// ONNX graph built at load time from the npz's weights (users still
// download only vae-oid.npz); the codebook lookup and the placement in the
// box are grounding's, as for the pure-Go decoder, which stays the
// reference. All masks of one output run as one batch. It implements
// grounding.MaskBatchDecoder.
type ortMaskDecoder struct {
	vae  *grounding.VAEMaskDecoder
	sess *native.Session
	dim  int
}

// The mask decoder graph's input (the codebook rows, [N, dim, 4, 4]) and
// output (the raw masks, [N, 1, 64, 64]).
const (
	maskInput  = "codes_embedded"
	maskOutput = "masks"
	maskOpset  = 17
)

// newORTMaskDecoder builds vae's graph and opens it on rt with sc.
func newORTMaskDecoder(rt *native.Runtime, vae *grounding.VAEMaskDecoder, sc native.SessionConfig) (*ortMaskDecoder, error) {
	_, dim := vae.Codebook()
	model, err := maskDecoderGraph(vae.Weights(), dim)
	if err != nil {
		return nil, fmt.Errorf("mask decoder %s: %w", vae.Path(), err)
	}
	if sc.CUDA != nil {
		cuda := *sc.CUDA
		cuda.NoTF32 = true // within 1e-5 of the float64 reference
		sc.CUDA = &cuda
	}
	s, err := rt.NewSessionFromBytes(vae.Path()+" (as an ONNX graph)", model, sc)
	if err != nil {
		return nil, err
	}
	return &ortMaskDecoder{vae: vae, sess: s, dim: dim}, nil
}

// maskDecoderGraph is the decoder network of grounding.VAEWeights as an
// ONNX model: conv 1x1 + ReLU, two residual blocks (conv 3x3, ReLU,
// conv 3x3, ReLU, conv 1x1, + input), four ConvTranspose k4 s2 pad 1 +
// ReLU, conv 1x1.
func maskDecoderGraph(w grounding.VAEWeights, dim int) ([]byte, error) {
	g := native.NewGraph("vae_oid_mask_decoder")
	g.Input(maskInput, native.Float32, -1, int64(dim), grounding.MaskGrid, grounding.MaskGrid)
	g.Output(maskOutput, native.Float32, -1, 1, grounding.MaskSize, grounding.MaskSize)
	var err error
	values, layers := 0, 0
	value := func() string {
		values++
		return fmt.Sprintf("x%d", values)
	}
	conv := func(x string, c grounding.VAEConv, transposed bool, out string) string {
		layers++
		name := fmt.Sprintf("conv%d", layers)
		wdims := []int64{int64(c.Out), int64(c.In), int64(c.K), int64(c.K)}
		op, attrs := "Conv", []native.Attr{native.IntsAttr("kernel_shape", int64(c.K), int64(c.K))}
		pad := int64(c.K-1) / 2
		if transposed {
			wdims[0], wdims[1] = int64(c.In), int64(c.Out)
			op, pad = "ConvTranspose", 1
			attrs = append(attrs, native.IntsAttr("strides", 2, 2))
		}
		attrs = append(attrs, native.IntsAttr("pads", pad, pad, pad, pad))
		if err == nil {
			err = g.Float32(name+".weight", c.Weight, wdims...)
		}
		if err == nil {
			err = g.Float32(name+".bias", c.Bias, int64(c.Out))
		}
		if out == "" {
			out = value()
		}
		g.Node(op, []string{x, name + ".weight", name + ".bias"}, []string{out}, attrs...)
		return out
	}
	relu := func(x string) string {
		out := value()
		g.Node("Relu", []string{x}, []string{out})
		return out
	}
	x := relu(conv(maskInput, w.First, false, ""))
	for _, block := range w.Residual {
		h := relu(conv(x, block[0], false, ""))
		h = relu(conv(h, block[1], false, ""))
		h = conv(h, block[2], false, "")
		sum := value()
		g.Node("Add", []string{h, x}, []string{sum})
		x = sum
	}
	for _, up := range w.Up {
		x = relu(conv(x, up, true, ""))
	}
	conv(x, w.Last, false, maskOutput)
	if err != nil {
		return nil, err
	}
	return g.Model(maskOpset), nil
}

// Mask implements grounding.MaskDecoder.
func (d *ortMaskDecoder) Mask(codes []int, box core.Box, width, height int) (*core.Mask, error) {
	ms, err := d.Masks([]grounding.MaskRequest{{Codes: codes, Box: box}}, width, height)
	if err != nil {
		return nil, err
	}
	return ms[0], nil
}

// Masks implements grounding.MaskBatchDecoder: one run for all reqs.
func (d *ortMaskDecoder) Masks(reqs []grounding.MaskRequest, width, height int) ([]*core.Mask, error) {
	raw, err := d.decode(reqs)
	if err != nil {
		return nil, err
	}
	out := make([]*core.Mask, len(reqs))
	plane := grounding.MaskSize * grounding.MaskSize
	for i, r := range reqs {
		out[i] = grounding.PlaceMask(raw[i*plane:(i+1)*plane], r.Box, width, height)
	}
	return out, nil
}

// decode runs the network on reqs' codes: the raw 64x64 outputs, one
// after another.
func (d *ortMaskDecoder) decode(reqs []grounding.MaskRequest) ([]float32, error) {
	n := len(reqs)
	cells := d.dim * grounding.MaskGrid * grounding.MaskGrid
	in := make([]float32, n*cells)
	for i, r := range reqs {
		if err := d.vae.Embed(r.Codes, in[i*cells:(i+1)*cells]); err != nil {
			return nil, fmt.Errorf("mask %d: %w", i+1, err)
		}
	}
	raw := make([]float32, n*grounding.MaskSize*grounding.MaskSize)
	it, err := native.NewFloat32([]int64{int64(n), int64(d.dim), grounding.MaskGrid, grounding.MaskGrid}, in)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	ot, err := native.NewFloat32([]int64{int64(n), 1, grounding.MaskSize, grounding.MaskSize}, raw)
	if err != nil {
		return nil, err
	}
	defer ot.Close()
	if err := d.sess.Run([]*native.Tensor{it}, []*native.Tensor{ot}); err != nil {
		return nil, fmt.Errorf("mask decoder: %w", err)
	}
	return raw, nil
}

// Close releases the session.
func (d *ortMaskDecoder) Close() { d.sess.Close() }
