package grounding

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// npyArray is one array read from a NumPy .npy file: little-endian data in
// C order.
type npyArray struct {
	Descr string // dtype as numpy writes it: "<f4", "<f8", "|u1", ...
	Shape []int
	Data  []byte
}

// maxNPYElements bounds what a header may promise, so a corrupt or hostile
// file cannot make the reader allocate without limit (vae-oid.npz holds
// about 2.5 M values).
const maxNPYElements = 1 << 28

var npyMagic = []byte("\x93NUMPY")

// npyItemSize is the byte size of the dtypes we read.
var npyItemSize = map[string]int{"<f4": 4, "<f8": 8, "<f2": 2, "|u1": 1, "|i1": 1, "<i4": 4, "<i8": 8, "<u2": 2, "|b1": 1}

// readNPY parses a .npy file (format versions 1, 2 and 3).
func readNPY(b []byte) (*npyArray, error) {
	if !bytes.HasPrefix(b, npyMagic) || len(b) < 10 {
		return nil, errors.New("not a .npy file (bad magic)")
	}
	major := b[6]
	var hlen, start int
	switch major {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(b[8:])), 10
	case 2, 3:
		if len(b) < 12 {
			return nil, errors.New("truncated .npy header")
		}
		n := binary.LittleEndian.Uint32(b[8:])
		if n > uint32(len(b)) {
			return nil, errors.New("truncated .npy header")
		}
		hlen, start = int(n), 12
	default:
		return nil, fmt.Errorf("unsupported .npy format version %d", major)
	}
	if start+hlen > len(b) {
		return nil, errors.New("truncated .npy header")
	}
	a, err := parseNPYHeader(string(b[start : start+hlen]))
	if err != nil {
		return nil, err
	}
	n := 1
	for _, d := range a.Shape {
		if d < 0 || (d > 0 && n > maxNPYElements/d) {
			return nil, fmt.Errorf(".npy shape %v is too large", a.Shape)
		}
		n *= d
	}
	size, ok := npyItemSize[a.Descr]
	if !ok {
		return nil, fmt.Errorf("unsupported .npy dtype %q", a.Descr)
	}
	data := b[start+hlen:]
	if len(data) != n*size {
		return nil, fmt.Errorf(".npy data is %d bytes, shape %v of %s needs %d", len(data), a.Shape, a.Descr, n*size)
	}
	a.Data = data
	return a, nil
}

// parseNPYHeader reads the Python dict literal of a .npy header, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (128, 512), }.
func parseNPYHeader(h string) (*npyArray, error) {
	h = strings.TrimSpace(h)
	if !strings.HasPrefix(h, "{") || !strings.HasSuffix(h, "}") {
		return nil, fmt.Errorf("bad .npy header %q", h)
	}
	descr, err := npyField(h, "descr")
	if err != nil {
		return nil, err
	}
	fortran, err := npyField(h, "fortran_order")
	if err != nil {
		return nil, err
	}
	shape, err := npyField(h, "shape")
	if err != nil {
		return nil, err
	}
	if fortran != "False" {
		return nil, errors.New(".npy array is in Fortran order; only C order is supported")
	}
	a := &npyArray{Descr: strings.Trim(descr, "'\"")}
	if a.Descr == "<u1" || a.Descr == "<i1" || a.Descr == "<b1" {
		a.Descr = "|" + a.Descr[1:]
	}
	dims := strings.Trim(shape, "()")
	for _, d := range strings.Split(dims, ",") {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		v, err := strconv.Atoi(d)
		if err != nil {
			return nil, fmt.Errorf("bad .npy shape %q", shape)
		}
		a.Shape = append(a.Shape, v)
	}
	return a, nil
}

// npyField returns the raw value text of key in a .npy header dict.
func npyField(h, key string) (string, error) {
	k := strings.Index(h, "'"+key+"'")
	if k < 0 {
		return "", fmt.Errorf(".npy header has no %q: %q", key, h)
	}
	rest := strings.TrimSpace(h[k+len(key)+2:])
	if !strings.HasPrefix(rest, ":") {
		return "", fmt.Errorf("bad .npy header %q", h)
	}
	rest = strings.TrimSpace(rest[1:])
	end := strings.IndexByte(rest, ',')
	if strings.HasPrefix(rest, "(") {
		end = strings.IndexByte(rest, ')') + 1
	}
	if end <= 0 {
		return "", fmt.Errorf("bad .npy header %q", h)
	}
	return strings.TrimSpace(rest[:end]), nil
}

// Float32s returns the array's values as float32 (converting f8, f2 and
// integer types).
func (a *npyArray) Float32s() ([]float32, error) {
	size := npyItemSize[a.Descr]
	n := len(a.Data) / max(size, 1)
	out := make([]float32, n)
	le := binary.LittleEndian
	for i := range out {
		p := a.Data[i*size:]
		switch a.Descr {
		case "<f4":
			out[i] = math.Float32frombits(le.Uint32(p))
		case "<f8":
			out[i] = float32(math.Float64frombits(le.Uint64(p)))
		case "<f2":
			out[i] = float16ToFloat32(le.Uint16(p))
		case "|u1", "|b1":
			out[i] = float32(p[0])
		case "|i1":
			out[i] = float32(int8(p[0]))
		case "<u2":
			out[i] = float32(le.Uint16(p))
		case "<i4":
			out[i] = float32(int32(le.Uint32(p)))
		case "<i8":
			out[i] = float32(int64(le.Uint64(p)))
		default:
			return nil, fmt.Errorf("unsupported .npy dtype %q", a.Descr)
		}
	}
	return out, nil
}

// float16ToFloat32 converts an IEEE 754 half-precision value.
func float16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		v := float32(frac) / (1 << 24)
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// readNPZ reads every array of a .npz archive (a zip of .npy files, stored
// or deflated), keyed by name without the ".npy" suffix.
func readNPZ(r io.ReaderAt, size int64) (map[string]*npyArray, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("not a .npz (zip) archive: %w", err)
	}
	out := make(map[string]*npyArray, len(zr.File))
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, ".npy") {
			continue
		}
		if f.UncompressedSize64 > maxNPYElements*8 {
			return nil, fmt.Errorf("%s: %d bytes is too large", f.Name, f.UncompressedSize64)
		}
		b, err := readZipFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		a, err := readNPY(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		out[strings.TrimSuffix(f.Name, ".npy")] = a
	}
	return out, nil
}

func readZipFile(f *zip.File) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, int64(f.UncompressedSize64)+1))
}
