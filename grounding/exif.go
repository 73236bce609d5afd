package grounding

import (
	"bytes"
	"encoding/binary"
	"image"

	"paliprompt/core"
)

// exifOrientation returns the EXIF orientation tag (1..8) of an encoded
// image, or 0 when there is none or it cannot be read. A broken EXIF block
// never fails the decode: the image is then used as stored.
func exifOrientation(format string, data []byte) int {
	var tiff []byte
	switch format {
	case "jpeg":
		tiff = jpegEXIF(data)
	case "png":
		tiff = pngEXIF(data)
	case "webp":
		tiff = webpEXIF(data)
	}
	o, err := tiffOrientation(tiff)
	if err != nil {
		return 0
	}
	return o
}

var exifHeader = []byte("Exif\x00\x00")

// jpegEXIF returns the TIFF block of the first APP1 Exif segment.
func jpegEXIF(data []byte) []byte {
	for i := 2; i+4 <= len(data); {
		if data[i] != 0xff {
			return nil
		}
		marker := data[i+1]
		if marker == 0xff { // fill byte
			i++
			continue
		}
		if marker == 0xda || marker == 0xd9 { // start of scan, end of image
			return nil
		}
		n := int(binary.BigEndian.Uint16(data[i+2:]))
		if n < 2 || i+2+n > len(data) {
			return nil
		}
		seg := data[i+4 : i+2+n]
		if marker == 0xe1 && bytes.HasPrefix(seg, exifHeader) {
			return seg[len(exifHeader):]
		}
		i += 2 + n
	}
	return nil
}

// pngEXIF returns the eXIf chunk (a bare TIFF block).
func pngEXIF(data []byte) []byte {
	for i := 8; i+12 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[i:]))
		typ := string(data[i+4 : i+8])
		if n < 0 || n > len(data)-i-12 {
			return nil
		}
		switch typ {
		case "eXIf":
			return data[i+8 : i+8+n]
		case "IDAT", "IEND": // eXIf must come before the image data
			return nil
		}
		i += 12 + n
	}
	return nil
}

// webpEXIF returns the EXIF chunk of an extended WebP file.
func webpEXIF(data []byte) []byte {
	for i := 12; i+8 <= len(data); {
		n := int(binary.LittleEndian.Uint32(data[i+4:]))
		if n < 0 || n > len(data)-i-8 {
			return nil
		}
		if string(data[i:i+4]) == "EXIF" {
			return bytes.TrimPrefix(data[i+8:i+8+n], exifHeader)
		}
		i += 8 + n + n&1 // chunks are padded to even sizes
	}
	return nil
}

// tiffOrientation reads tag 0x0112 (Orientation) from IFD0 of a TIFF block.
func tiffOrientation(t []byte) (int, error) {
	if len(t) < 8 {
		return 0, errNoEXIF
	}
	var bo binary.ByteOrder
	switch string(t[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return 0, errNoEXIF
	}
	ifd := int64(bo.Uint32(t[4:]))
	if ifd < 8 || ifd+2 > int64(len(t)) {
		return 0, errNoEXIF
	}
	count := int(bo.Uint16(t[ifd:]))
	for e := range count {
		off := ifd + 2 + int64(e)*12
		if off+12 > int64(len(t)) {
			break
		}
		if bo.Uint16(t[off:]) != 0x0112 {
			continue
		}
		// Type SHORT (3), count 1: the value sits in the first two bytes
		// of the value field.
		if bo.Uint16(t[off+2:]) != 3 {
			return 0, errNoEXIF
		}
		o := int(bo.Uint16(t[off+8:]))
		if o < 1 || o > 8 {
			return 0, errNoEXIF
		}
		return o, nil
	}
	return 0, errNoEXIF
}

// orient returns src transformed by EXIF orientation o (2..8) so that it
// displays upright:
//
//	2 mirror horizontally   3 rotate 180         4 mirror vertically
//	5 transpose             6 rotate 90 clockwise
//	7 transverse            8 rotate 90 counter-clockwise
func orient(src *core.RGB, o int) *core.RGB {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := core.NewRGB(image.Rect(0, 0, dw, dh))
	// For each destination pixel, the source pixel it shows.
	from := func(x, y int) (int, int) {
		switch o {
		case 2:
			return w - 1 - x, y
		case 3:
			return w - 1 - x, h - 1 - y
		case 4:
			return x, h - 1 - y
		case 5:
			return y, x
		case 6:
			return y, h - 1 - x
		case 7:
			return w - 1 - y, h - 1 - x
		case 8:
			return w - 1 - y, x
		}
		return x, y
	}
	for y := range dh {
		row := dst.Pix[y*dst.Stride:]
		for x := range dw {
			sx, sy := from(x, y)
			s := src.Pix[sy*src.Stride+3*sx:]
			row[3*x], row[3*x+1], row[3*x+2] = s[0], s[1], s[2]
		}
	}
	return dst
}
