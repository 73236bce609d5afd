package grounding

import (
	"fmt"
	"image"
	"os"
	"slices"

	"paliprompt/core"
)

// VAEMaskDecoder is big_vision's PaliGemma mask decoder (the decoder half
// of a VQ-VAE, weights in vae-oid.npz), run in pure Go. It implements
// MaskDecoder.
//
// Pure Go rather than an ONNX graph: the network is small (about 40 M
// multiply-adds per mask, a few ms), reading the npz directly keeps the
// file the user downloads as the only artefact, and the text grounder can
// decode masks on machines without ONNX Runtime.
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
	first    convLayer
	res      [2][3]convLayer
	up       [4]convLayer
	last     convLayer
}

// convLayer holds one convolution's weights in PyTorch layout:
// (out, in, k, k) for a convolution, (in, out, k, k) for a transposed one.
type convLayer struct {
	in, out, k int
	weight     []float32
	bias       []float32
}

// maskGrid is the side of the decoder's code grid, maskSize its output.
const (
	maskGrid = 4
	maskSize = 64
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
	d.first = l.conv("decoder.0", d.dim, -1, 1, false)
	width := d.first.out
	for b, name := range []string{"decoder.2.net", "decoder.3.net"} {
		d.res[b][0] = l.conv(name+".0", width, -1, 3, false)
		d.res[b][1] = l.conv(name+".2", d.res[b][0].out, -1, 3, false)
		d.res[b][2] = l.conv(name+".4", d.res[b][1].out, width, 1, false)
	}
	for i, name := range []string{"decoder.4", "decoder.6", "decoder.8", "decoder.10"} {
		d.up[i] = l.conv(name, width, -1, 4, true)
		width = d.up[i].out
	}
	d.last = l.conv("decoder.12", width, 1, 1, false)
	return d, l.err
}

// layerLoader reads conv layers from npz arrays, keeping the first error.
type layerLoader struct {
	arrays map[string]*npyArray
	err    error
}

// conv reads <name>.weight and <name>.bias for a k x k convolution with in
// input channels and out outputs (-1: whatever the file has).
func (l *layerLoader) conv(name string, in, out, k int, transposed bool) convLayer {
	if l.err != nil {
		return convLayer{}
	}
	w, okW := l.arrays[name+".weight"]
	b, okB := l.arrays[name+".bias"]
	if !okW || !okB {
		l.err = fmt.Errorf("missing array %q or %q", name+".weight", name+".bias")
		return convLayer{}
	}
	c := convLayer{in: in, out: out, k: k}
	if len(w.Shape) == 4 {
		if transposed {
			c.out = w.Shape[1]
		} else {
			c.out = w.Shape[0]
		}
		if out >= 0 {
			c.out = out
		}
	}
	want := []int{c.out, in, k, k}
	if transposed {
		want = []int{in, c.out, k, k}
	}
	if !slices.Equal(w.Shape, want) || c.out < 1 {
		l.err = fmt.Errorf("array %q has shape %v, want %v", name+".weight", w.Shape, want)
		return convLayer{}
	}
	if !slices.Equal(b.Shape, []int{c.out}) {
		l.err = fmt.Errorf("array %q has shape %v, want [%d]", name+".bias", b.Shape, c.out)
		return convLayer{}
	}
	if c.weight, l.err = w.Float32s(); l.err != nil {
		return convLayer{}
	}
	c.bias, l.err = b.Float32s()
	return c
}

// Path is the file the decoder was loaded from.
func (d *VAEMaskDecoder) Path() string { return d.path }

// Codebook is the size of the decoder's code book: codes x dim.
func (d *VAEMaskDecoder) Codebook() (codes, dim int) { return d.codes, d.dim }

// Decode runs the decoder on 16 codes and returns its raw 64x64 output,
// row-major.
func (d *VAEMaskDecoder) Decode(codes []int) ([]float32, error) {
	if len(codes) != maskGrid*maskGrid {
		return nil, core.Errorf(core.ErrBadRequest, "mask needs %d segmentation codes, got %d", maskGrid*maskGrid, len(codes))
	}
	x := make([]float32, d.dim*maskGrid*maskGrid)
	for cell, code := range codes {
		if code < 0 || code >= d.codes {
			return nil, core.Errorf(core.ErrBadRequest, "segmentation code %d is out of range 0..%d", code, d.codes-1)
		}
		row := d.codebook[code*d.dim : (code+1)*d.dim]
		for ch, v := range row {
			x[ch*maskGrid*maskGrid+cell] = v
		}
	}
	size := maskGrid
	x = relu(conv2d(x, size, d.first))
	for _, block := range d.res {
		h := relu(conv2d(x, size, block[0]))
		h = relu(conv2d(h, size, block[1]))
		h = conv2d(h, size, block[2])
		for i := range h {
			h[i] += x[i]
		}
		x = h
	}
	for _, up := range d.up {
		x = relu(convTranspose2d(x, size, up))
		size *= 2
	}
	return conv2d(x, size, d.last), nil
}

// Mask decodes codes and places the result in box, in the pixel grid of a
// width x height image, the way big_vision's evaluator does: the box
// corners are truncated to whole pixels (int(y0*h), int(x0*w), ...), the
// raw 64x64 output is resized to the box with PIL's BILINEAR on a float
// image (mode "F"), and Mask keeps those raw values (binary = value > 0,
// soft = clip(value*0.5+0.5, 0, 1)). A box less than a pixel wide or high
// gives an empty mask.
func (d *VAEMaskDecoder) Mask(codes []int, box core.Box, width, height int) (*core.Mask, error) {
	raw, err := d.Decode(codes)
	if err != nil {
		return nil, err
	}
	return placeMask(raw, box, width, height), nil
}

// placeMask resizes a raw 64x64 decoder output into box (see Mask).
func placeMask(raw []float32, box core.Box, width, height int) *core.Mask {
	clampInt := func(v float64, hi int) int { return max(0, min(int(v), hi)) }
	r := image.Rect(clampInt(box.X0, width), clampInt(box.Y0, height), clampInt(box.X1, width), clampInt(box.Y1, height))
	if r.Dx() <= 0 || r.Dy() <= 0 {
		return &core.Mask{}
	}
	return &core.Mask{Rect: r, Values: resizeFloat(raw, maskSize, maskSize, r.Dx(), r.Dy(), bilinearFilter)}
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
func conv2d(x []float32, size int, c convLayer) []float32 {
	plane := size * size
	acc := make([]float64, c.out*plane)
	pad := (c.k - 1) / 2
	in64 := widen(x)
	for o := range c.out {
		dst := acc[o*plane : (o+1)*plane]
		for i := range c.in {
			src := in64[i*plane : (i+1)*plane]
			taps := c.weight[(o*c.in+i)*c.k*c.k:][:c.k*c.k]
			for ky := range c.k {
				dy := ky - pad
				y0, y1 := max(0, -dy), min(size, size-dy)
				for kx := range c.k {
					w := float64(taps[ky*c.k+kx])
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
	return finish(acc, c.bias, plane)
}

// convTranspose2d is PyTorch's ConvTranspose2d with kernel 4, stride 2,
// padding 1: input (iy, ix) reaches output (2*iy-1+ky, 2*ix-1+kx) through
// kernel tap (ky, kx). The output is 2*size on a side.
func convTranspose2d(x []float32, size int, c convLayer) []float32 {
	const stride, pad = 2, 1
	osize := size * stride
	oplane := osize * osize
	acc := make([]float64, c.out*oplane)
	in64 := widen(x)
	for i := range c.in {
		src := in64[i*size*size : (i+1)*size*size]
		for o := range c.out {
			dst := acc[o*oplane : (o+1)*oplane]
			taps := c.weight[(i*c.out+o)*c.k*c.k:][:c.k*c.k]
			for ky := range c.k {
				// Input rows whose output row 2*iy-1+ky is inside.
				iy0, iy1 := 0, size
				if ky < pad {
					iy0 = 1
				}
				if ky > pad+stride-1 {
					iy1 = size - 1
				}
				for kx := range c.k {
					w := float64(taps[ky*c.k+kx])
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
	return finish(acc, c.bias, oplane)
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
