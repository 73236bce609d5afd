// Package pngenc writes the PNGs of a reply (masks, the preview, colour
// masks) fast. It is a PNG writer, not a codec: 8-bit grey, palette, RGB
// and RGBA, every row with the Up filter. One-channel images (masks) are
// compressed as runs (runs.go), others by klauspost/compress's zlib at its
// fastest level. Any PNG decoder reads the result; the pixels are exactly
// those of the image.
//
// Why not image/png: it tries five filters on every row and picks one
// (most of its time on a mask), and its deflate is several times slower
// than klauspost's. Masks are mostly flat, so Up turns unchanged rows into
// zeros, which runs describe in a few bytes per row.
package pngenc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"sync"

	"github.com/klauspost/compress/zlib"
)

// Encode writes img as a PNG: *image.Gray as 8-bit grey, an opaque
// *image.RGBA as 8-bit RGB, a translucent one or an *image.NRGBA as 8-bit
// RGBA (straight alpha), an opaque *image.Paletted as 8-bit palette
// indices. Other image types go through image/png.
func Encode(w io.Writer, img image.Image) error {
	var err error
	switch m := img.(type) {
	case *image.Gray:
		err = encode(w, m.Rect, gray, m.Pix, m.Stride, 1)
	case *image.RGBA:
		// Written as RGB while every alpha seen is opaque (the packing
		// checks: no pass of its own over the pixels); else again as RGBA
		// (encode writes nothing before it has compressed every row).
		if err = encode(w, m.Rect, rgb, m.Pix, m.Stride, 4); err == errTranslucent {
			err = encode(w, m.Rect, rgba, unpremultiply(m), m.Rect.Dx()*4, 4)
		}
	case *image.NRGBA:
		err = encode(w, m.Rect, rgba, m.Pix, m.Stride, 4)
	case *image.Paletted:
		if len(m.Palette) == 0 || len(m.Palette) > 256 || !opaque(m.Palette) {
			err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(w, img)
			break
		}
		err = encode(w, m.Rect, paletted(m.Palette), m.Pix, m.Stride, 1)
	default:
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(w, img)
	}
	if err != nil {
		return fmt.Errorf("encode PNG: %w", err)
	}
	return nil
}

// Bytes returns img encoded by Encode.
func Bytes(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	if err := Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// errTranslucent stops an RGB encoding at the first pixel that is not
// opaque.
var errTranslucent = errors.New("translucent pixel")

// colorType is a PNG colour type, its bytes per pixel, and the palette
// of colour type 3.
type colorType struct {
	code, channels byte
	palette        []byte // PLTE: r, g, b per entry
}

func paletted(p color.Palette) colorType {
	plte := make([]byte, 0, 3*len(p))
	for _, c := range p {
		r, g, b, _ := c.RGBA()
		plte = append(plte, byte(r>>8), byte(g>>8), byte(b>>8))
	}
	return colorType{3, 1, plte}
}

func opaque(p color.Palette) bool {
	for _, c := range p {
		if _, _, _, a := c.RGBA(); a != 0xffff {
			return false
		}
	}
	return true
}

var (
	gray = colorType{0, 1, nil}
	rgb  = colorType{2, 3, nil}
	rgba = colorType{6, 4, nil}
)

// zlibWriters reuse deflate state (about a megabyte each) across images.
var zlibWriters = sync.Pool{New: func() any {
	w, _ := zlib.NewWriterLevel(nil, zlib.BestSpeed)
	return w
}}

// encode writes the PNG of pixels laid out with stride bytes per row and
// srcBytes bytes per pixel (4 for RGBA sources written as RGB: then a
// translucent pixel stops it with errTranslucent).
func encode(w io.Writer, r image.Rectangle, ct colorType, pix []byte, stride, srcBytes int) error {
	width, height := r.Dx(), r.Dy()
	if width <= 0 || height <= 0 {
		return fmt.Errorf("image is empty (%dx%d)", width, height)
	}
	var idat bytes.Buffer
	var zw interface{ Write([]byte) (int, error) }
	runs := ct.channels == 1 // masks and colour masks: runs
	if runs {
		zw = newRunWriter(height * 16)
	} else {
		z := zlibWriters.Get().(*zlib.Writer)
		defer zlibWriters.Put(z)
		z.Reset(&idat)
		zw = z
	}
	rowBytes := width * int(ct.channels)
	zero := make([]byte, rowBytes) // row -1: Up on row 0 is no filter
	packed := make([][]byte, 2)    // RGBA rows packed to RGB, when needed
	line := make([]byte, 1+rowBytes)
	line[0] = 2 // Up
	prev := zero
	for y := range height {
		cur := pix[y*stride : y*stride+rowBytes]
		if srcBytes != int(ct.channels) {
			if packed[y%2] == nil {
				packed[y%2] = make([]byte, rowBytes)
			}
			cur = packed[y%2]
			src := pix[y*stride:]
			alpha := byte(255)
			for x := range width {
				p := src[x*4 : x*4+4]
				cur[x*3], cur[x*3+1], cur[x*3+2] = p[0], p[1], p[2]
				alpha &= p[3]
			}
			if alpha != 255 {
				return errTranslucent
			}
		}
		if runs {
			zw.(*runWriter).writeUp(cur, prev, line[1:])
			prev = cur
			continue
		}
		subtract(line[1:], cur, prev)
		if _, err := zw.Write(line); err != nil {
			return err
		}
		prev = cur
	}
	if runs {
		idat.Write(zw.(*runWriter).Close())
	} else if err := zw.(*zlib.Writer).Close(); err != nil {
		return err
	}
	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], uint32(width))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(height))
	ihdr[8], ihdr[9] = 8, ct.code // bit depth, colour type; compression, filter, interlace 0
	bw := &chunkWriter{w: w}
	bw.raw([]byte("\x89PNG\r\n\x1a\n"))
	bw.chunk("IHDR", ihdr[:])
	if ct.palette != nil {
		bw.chunk("PLTE", ct.palette)
	}
	bw.chunk("IDAT", idat.Bytes())
	bw.chunk("IEND", nil)
	return bw.err
}

// subtract sets dst[i] = a[i] - b[i] (mod 256), eight bytes at a time:
// the sum of the high bits is taken apart so no borrow crosses a byte.
func subtract(dst, a, b []byte) {
	const high = 0x8080808080808080
	i := 0
	for ; i+8 <= len(a); i += 8 {
		x := binary.LittleEndian.Uint64(a[i:])
		y := binary.LittleEndian.Uint64(b[i:])
		binary.LittleEndian.PutUint64(dst[i:], ((x|high)-(y&^high))^((x^^y)&high))
	}
	for ; i < len(a); i++ {
		dst[i] = a[i] - b[i]
	}
}

// unpremultiply returns an RGBA image's pixels with straight alpha, as
// image/png converts them (color.NRGBAModel).
func unpremultiply(m *image.RGBA) []byte {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	out := make([]byte, w*h*4)
	for y := range h {
		row := m.Pix[y*m.Stride:]
		for x := range w {
			p := row[x*4 : x*4+4]
			c := color.NRGBAModel.Convert(color.RGBA{p[0], p[1], p[2], p[3]}).(color.NRGBA)
			copy(out[(y*w+x)*4:], []byte{c.R, c.G, c.B, c.A})
		}
	}
	return out
}

// chunkWriter writes PNG chunks, keeping the first error.
type chunkWriter struct {
	w   io.Writer
	err error
}

func (c *chunkWriter) raw(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

func (c *chunkWriter) chunk(typ string, data []byte) {
	var head [8]byte
	binary.BigEndian.PutUint32(head[:4], uint32(len(data)))
	copy(head[4:], typ)
	crc := crc32.NewIEEE()
	crc.Write(head[4:])
	crc.Write(data)
	var tail [4]byte
	binary.BigEndian.PutUint32(tail[:], crc.Sum32())
	c.raw(head[:])
	c.raw(data)
	c.raw(tail[:])
}
