package grounding

import (
	"fmt"
	"image"
	"os"
	"slices"

	"paliprompt/core"
)

// VAEMaskDecoder is big_vision's PaliGemma mask decoder (the decoder half
// of a VQ-VAE, weights in vae-oid.npz), run in pure Go with float64
// accumulation. It implements MaskDecoder.
//
// It is the reference, and what decodes masks without ONNX Runtime (cgo-
// free builds, the text grounder); the model grounder runs the same
// network as an ONNX graph built from Weights (grounding/paligemma),
// about 40 M multiply-adds per mask being far faster in ONNX Runtime's
// convolutions than in these loops.
//
// Architecture (big_vision evaluators/proj/paligemma/transfers/
// segmentation.py; weights in PyTorch layout):
//
//	16 codes -> codebook rows, a 4x4 grid (row-major) of D channels
//	conv1x1 D->128, ReLU
//	2 x residual block: conv3x3 (pad 1), ReLU, conv3x3, ReLU, conv1x1, + input
//	4 x ConvTranspose k4 s2 p1, ReLU: 128->128->64->32->16, 4->64 pixels
//	conv1x1 16->1 (no activation; about -1..1, > 0 is inside)
type VAEMaskDecoder struct {
	path     string
	codebook []float32 // codes x dim
	codes    int
	dim      int
	net      VAEWeights
}

// VAEWeights are the mask decoder's convolutions after the codebook
// lookup (see VAEMaskDecoder), for running the network elsewhere.
type VAEWeights struct {
	First    VAEConv       // 1x1, code dim -> width, then ReLU
	Residual [2][3]VAEConv // each: 3x3 (pad 1), ReLU, 3x3, ReLU, 1x1, + input
	Up       [4]VAEConv    // ConvTranspose k4 s2 pad 1, each then ReLU
	Last     VAEConv       // 1x1 -> 1, no activation
}

// VAEConv holds one convolution's weights in PyTorch (and ONNX) layout:
// (Out, In, K, K) for a convolution, (In, Out, K, K) for a transposed one.
type VAEConv struct {
	In, Out, K   int
	Weight, Bias []float32
}

// MaskGrid is the side of the decoder's code grid, MaskSize the side of
// its output.
const (
	MaskGrid = 4
	MaskSize = 64
)

// LoadMaskDecoder reads a vae-oid.npz file. Errors wrap ErrUnavailable
// and name the file and the missing array or wrong shape.
func LoadMaskDecoder(path string) (*VAEMaskDecoder, error) {
	fail := func(format string, args ...any) error {
		return core.Errorf(core.ErrUnavailable, "mask decoder %s: %s", path, fmt.Sprintf(format, args...))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, core.Errorf(core.ErrUnavailable, "mask decoder %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fail("%v", err)
	}
	arrays, err := readNPZ(f, st.Size())
	if err != nil {
		return nil, fail("%v", err)
	}
	d, err := newVAEMaskDecoder(arrays)
	if err != nil {
		return nil, fail("%v", err)
	}
	d.path = path
	return d, nil
}

// newVAEMaskDecoder builds the decoder from npz arrays, checking that every
// array is present and that the channel counts chain.
func newVAEMaskDecoder(a map[string]*npyArray) (*VAEMaskDecoder, error) {
	emb, ok := a["_vq_vae._embedding"]
	if !ok {
		return nil, fmt.Errorf("missing array %q (is this a vae-oid.npz file?)", "_vq_vae._embedding")
	}
	if len(emb.Shape) != 2 || emb.Shape[0] < 1 || emb.Shape[1] < 1 {
		return nil, fmt.Errorf("array %q has shape %v, want (codes, dim)", "_vq_vae._embedding", emb.Shape)
	}
	d := &VAEMaskDecoder{codes: emb.Shape[0], dim: emb.Shape[1]}
	var err error
	if d.codebook, err = emb.Float32s(); err != nil {
		return nil, fmt.Errorf("array %q: %w", "_vq_vae._embedding", err)
	}
	l := layerLoader{arrays: a}
	n := &d.net
	n.First = l.conv("decoder.0", d.dim, -1, 1, false)
	width := n.First.Out
	for b, name := range []string{"decoder.2.net", "decoder.3.net"} {
		n.Residual[b][0] = l.conv(name+".0", width, -1, 3, false)
		n.Residual[b][1] = l.conv(name+".2", n.Residual[b][0].Out, -1, 3, false)
		n.Residual[b][2] = l.conv(name+".4", n.Residual[b][1].Out, width, 1, false)
	}
	for i, name := range []string{"decoder.4", "decoder.6", "decoder.8", "decoder.10"} {
		n.Up[i] = l.conv(name, width, -1, 4, true)
		width = n.Up[i].Out
	}
	n.Last = l.conv("decoder.12", width, 1, 1, false)
	return d, l.err
}

// layerLoader reads conv layers from npz arrays, keeping the first error.
type layerLoader struct {
	arrays map[string]*npyArray
	err    error
}

// conv reads <name>.weight and <name>.bias for a k x k convolution with in
// input channels and out outputs (-1: whatever the file has).
func (l *layerLoader) conv(name string, in, out, k int, transposed bool) VAEConv {
	if l.err != nil {
		return VAEConv{}
	}
	w, okW := l.arrays[name+".weight"]
	b, okB := l.arrays[name+".bias"]
	if !okW || !okB {
		l.err = fmt.Errorf("missing array %q or %q", name+".weight", name+".bias")
		return VAEConv{}
	}
	c := VAEConv{In: in, Out: out, K: k}
	if len(w.Shape) == 4 {
		if transposed {
			c.Out = w.Shape[1]
		} else {
			c.Out = w.Shape[0]
		}
		if out >= 0 {
			c.Out = out
		}
	}
	want := []int{c.Out, in, k, k}
	if transposed {
		want = []int{in, c.Out, k, k}
	}
	if !slices.Equal(w.Shape, want) || c.Out < 1 {
		l.err = fmt.Errorf("array %q has shape %v, want %v", name+".weight", w.Shape, want)
		return VAEConv{}
	}
	if !slices.Equal(b.Shape, []int{c.Out}) {
		l.err = fmt.Errorf("array %q has shape %v, want [%d]", name+".bias", b.Shape, c.Out)
		return VAEConv{}
	}
	if c.Weight, l.err = w.Float32s(); l.err != nil {
		return VAEConv{}
	}
	c.Bias, l.err = b.Float32s()
	return c
}

// Path is the file the decoder was loaded from.
func (d *VAEMaskDecoder) Path() string { return d.path }

// Codebook is the size of the decoder's code book: codes x dim.
func (d *VAEMaskDecoder) Codebook() (codes, dim int) { return d.codes, d.dim }

// Weights are the decoder's convolutions (shared, not copied).
func (d *VAEMaskDecoder) Weights() VAEWeights { return d.net }

// Embed writes the codebook rows of 16 codes into dst (dim x 4 x 4,
// channels first, the grid row-major): the decoder's input. Codes out of
// range are ErrBadRequest.
func (d *VAEMaskDecoder) Embed(codes []int, dst []float32) error {
	if len(codes) != MaskGrid*MaskGrid {
		return core.Errorf(core.ErrBadRequest, "mask needs %d segmentation codes, got %d", MaskGrid*MaskGrid, len(codes))
	}
	for cell, code := range codes {
		if code < 0 || code >= d.codes {
			return core.Errorf(core.ErrBadRequest, "segmentation code %d is out of range 0..%d", code, d.codes-1)
		}
		row := d.codebook[code*d.dim : (code+1)*d.dim]
		for ch, v := range row {
			dst[ch*MaskGrid*MaskGrid+cell] = v
		}
	}
	return nil
}

// Decode runs the decoder on 16 codes and returns its raw 64x64 output,
// row-major.
func (d *VAEMaskDecoder) Decode(codes []int) ([]float32, error) {
	x := make([]float32, d.dim*MaskGrid*MaskGrid)
	if err := d.Embed(codes, x); err != nil {
		return nil, err
	}
	n := &d.net
	size := MaskGrid
	x = relu(conv2d(x, size, n.First))
	for _, block := range n.Residual {
		h := relu(conv2d(x, size, block[0]))
		h = relu(conv2d(h, size, block[1]))
		h = conv2d(h, size, block[2])
		for i := range h {
			h[i] += x[i]
		}
		x = h
	}
	for _, up := range n.Up {
		x = relu(convTranspose2d(x, size, up))
		size *= 2
	}
	return conv2d(x, size, n.Last), nil
}

// Mask decodes codes and places the result in box (see PlaceMask).
func (d *VAEMaskDecoder) Mask(codes []int, box core.Box, width, height int) (*core.Mask, error) {
	raw, err := d.Decode(codes)
	if err != nil {
		return nil, err
	}
	return PlaceMask(raw, box, width, height), nil
}

// PlaceMask places a raw 64x64 decoder output in box, in the pixel grid of
// a width x height image, the way big_vision's evaluator does: the box
// corners are truncated to whole pixels (int(y0*h), int(x0*w), ...), the
// raw output is resized to the box with PIL's BILINEAR on a float image
// (mode "F"), and the mask keeps those raw values (binary = value > 0,
// soft = clip(value*0.5+0.5, 0, 1)). A box less than a pixel wide or high
// gives an empty mask.
func PlaceMask(raw []float32, box core.Box, width, height int) *core.Mask {
	clampInt := func(v float64, hi int) int { return max(0, min(int(v), hi)) }
	r := image.Rect(clampInt(box.X0, width), clampInt(box.Y0, height), clampInt(box.X1, width), clampInt(box.Y1, height))
	if r.Dx() <= 0 || r.Dy() <= 0 {
		return &core.Mask{}
	}
	return &core.Mask{Rect: r, Values: resizeFloat(raw, MaskSize, MaskSize, r.Dx(), r.Dy(), bilinearFilter)}
}

func relu(x []float32) []float32 {
	for i, v := range x {
		if v < 0 {
			x[i] = 0
		}
	}
	return x
}

// conv2d is a stride-1 convolution with "same" padding ((k-1)/2) over
// size x size planes, channels first.
func conv2d(x []float32, size int, c VAEConv) []float32 {
	plane := size * size
	acc := make([]float64, c.Out*plane)
	pad := (c.K - 1) / 2
	in64 := widen(x)
	for o := range c.Out {
		dst := acc[o*plane : (o+1)*plane]
		for i := range c.In {
			src := in64[i*plane : (i+1)*plane]
			taps := c.Weight[(o*c.In+i)*c.K*c.K:][:c.K*c.K]
			for ky := range c.K {
				dy := ky - pad
				y0, y1 := max(0, -dy), min(size, size-dy)
				for kx := range c.K {
					w := float64(taps[ky*c.K+kx])
					dx := kx - pad
					x0, x1 := max(0, -dx), min(size, size-dx)
					for y := y0; y < y1; y++ {
						d := dst[y*size+x0 : y*size+x1]
						s := src[(y+dy)*size+x0+dx:][:len(d)]
						for j := range d {
							d[j] += w * s[j]
						}
					}
				}
			}
		}
	}
	return finish(acc, c.Bias, plane)
}

// convTranspose2d is PyTorch's ConvTranspose2d with kernel 4, stride 2,
// padding 1: input (iy, ix) reaches output (2*iy-1+ky, 2*ix-1+kx) through
// kernel tap (ky, kx). The output is 2*size on a side.
func convTranspose2d(x []float32, size int, c VAEConv) []float32 {
	const stride, pad = 2, 1
	osize := size * stride
	oplane := osize * osize
	acc := make([]float64, c.Out*oplane)
	in64 := widen(x)
	for i := range c.In {
		src := in64[i*size*size : (i+1)*size*size]
		for o := range c.Out {
			dst := acc[o*oplane : (o+1)*oplane]
			taps := c.Weight[(i*c.Out+o)*c.K*c.K:][:c.K*c.K]
			for ky := range c.K {
				// Input rows whose output row 2*iy-1+ky is inside.
				iy0, iy1 := 0, size
				if ky < pad {
					iy0 = 1
				}
				if ky > pad+stride-1 {
					iy1 = size - 1
				}
				for kx := range c.K {
					w := float64(taps[ky*c.K+kx])
					ix0, ix1 := 0, size
					if kx < pad {
						ix0 = 1
					}
					if kx > pad+stride-1 {
						ix1 = size - 1
					}
					for iy := iy0; iy < iy1; iy++ {
						s := src[iy*size : (iy+1)*size]
						d := dst[(iy*stride-pad+ky)*osize:][:osize]
						for ix := ix0; ix < ix1; ix++ {
							d[ix*stride-pad+kx] += w * s[ix]
						}
					}
				}
			}
		}
	}
	return finish(acc, c.Bias, oplane)
}

func widen(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// finish adds the bias and rounds to float32.
func finish(acc []float64, bias []float32, plane int) []float32 {
	out := make([]float32, len(acc))
	for i, v := range acc {
		out[i] = float32(v + float64(bias[i/plane]))
	}
	return out
}
