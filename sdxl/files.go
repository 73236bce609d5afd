package sdxl

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"

	"paliprompt/internal/pngenc"
)

// File is one image of the plan that a consumer format names: its file
// name, the image, and the plan's field for its PNG bytes. sdxl makes the
// images; encoding them (EncodeFiles, or the plugin's own encoder pool)
// is the caller's, so that a caller asks only for what it sends.
type File struct {
	Name  string
	Image image.Image
	PNG   *[]byte
	Kind  FileKind
	// Inline says an A1111 body of the plan carries the image (InlinePNG):
	// a caller that sends the bodies encodes it even if it sends the file
	// on its own.
	Inline bool
}

// FileKind says what an image of the plan is, for callers that choose
// which of them to send.
type FileKind int

const (
	// KindRegionMask is a region's mask (Region.MaskFile).
	KindRegionMask FileKind = iota
	// KindColorMask is Regional Prompter's colour mask: in the plan's
	// regional_prompter, or carried by the A1111 body only.
	KindColorMask
	// KindHint is a conditioning image (Hints), made only when asked for.
	KindHint
)

// planImage is an image of the plan that no JSON field of it holds.
type planImage struct {
	name  string
	image image.Image
	png   []byte
}

// Files lists every image of the plan, in order: the regions' masks, the
// Regional Prompter colour mask, then the hints (edges, segmentation,
// start canvas, crops) that were made. It is the one list of them.
func (p *Plan) Files() []File {
	var out []File
	for i := range p.Regions {
		r := &p.Regions[i]
		out = append(out, File{r.MaskFile, r.image, &r.Mask, KindRegionMask, p.inlined[r.MaskFile]})
	}
	if rp := &p.RegionalPrompter; rp.MaskFile != "" && rp.image != nil {
		out = append(out, File{rp.MaskFile, rp.image, &rp.Mask, KindColorMask, p.inlined[rp.MaskFile]})
	} else if c := p.colorOnly; c != nil {
		out = append(out, File{c.name, c.image, &c.png, KindColorMask, true})
	}
	for _, h := range []*HintImage{p.Hints.Edges, p.Hints.Segmentation, p.Hints.StartCanvas} {
		if h != nil {
			out = append(out, File{h.File, h.image, &h.PNG, KindHint, p.inlined[h.File]})
		}
	}
	for i := range p.Hints.Crops {
		c := &p.Hints.Crops[i]
		out = append(out, File{c.File, c.image, &c.PNG, KindHint, p.inlined[c.File]})
	}
	return out
}

// EncodeFiles encodes every file of the plan to PNG in place; the A1111
// bodies read their images from it.
func (p *Plan) EncodeFiles() error {
	encoded := map[string][]byte{}
	for _, f := range p.Files() {
		data, err := pngenc.Bytes(f.Image)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		*f.PNG, encoded[f.Name] = data, data
	}
	p.ReadPNGsFrom(func(name string) []byte { return encoded[name] })
	return nil
}

// ReadPNGsFrom makes the plan's A1111 bodies read the PNG of each image
// they carry from lookup (by file name) when they are marshalled: for a
// caller that encodes the Files itself and keeps the bytes elsewhere, as
// the plugin's reply does.
func (p *Plan) ReadPNGsFrom(lookup func(name string) []byte) {
	if p.pngs != nil {
		p.pngs.lookup = lookup
	}
}

// MaskFiles lists the file names of Files.
func (p *Plan) MaskFiles() []string {
	var out []string
	for _, f := range p.Files() {
		out = append(out, f.Name)
	}
	return out
}

// InlinePNG is one of the plan's images inside an A1111 body, which the
// API takes as a base64 PNG in the JSON. It names the plan's file and
// reads its PNG only when the body is marshalled (EncodeFiles,
// ReadPNGsFrom), so that each image is encoded once, by whoever encodes
// the plan's files, and only when a body is sent. Decoded from JSON it
// holds the bytes.
type InlinePNG struct {
	File string
	data []byte
	src  *pngSource
}

// pngSource finds the PNG of a plan file by name.
type pngSource struct {
	lookup func(name string) []byte
}

// inline is the InlinePNG of a plan file, which the plan then marks as
// carried by a body (File.Inline).
func (p *Plan) inline(name string) InlinePNG {
	p.inlined[name] = true
	return InlinePNG{File: name, src: p.pngs}
}

// PNG returns the image's PNG bytes, nil while it is not encoded.
func (e InlinePNG) PNG() []byte {
	if e.data == nil && e.src != nil && e.src.lookup != nil {
		return e.src.lookup(e.File)
	}
	return e.data
}

// MarshalJSON writes the PNG as a base64 string; an image not encoded is
// an error, not an empty field the API would fail on later.
func (e InlinePNG) MarshalJSON() ([]byte, error) {
	data := e.PNG()
	if data == nil {
		return nil, fmt.Errorf("sdxl: %s is not encoded (Plan.EncodeFiles or Plan.ReadPNGsFrom)", e.File)
	}
	out := make([]byte, base64.StdEncoding.EncodedLen(len(data))+2)
	out[0], out[len(out)-1] = '"', '"'
	base64.StdEncoding.Encode(out[1:], data)
	return out, nil
}

// UnmarshalJSON reads the base64 PNG.
func (e *InlinePNG) UnmarshalJSON(b []byte) error {
	*e = InlinePNG{}
	return json.Unmarshal(b, &e.data)
}

// contentFileName builds a file-name-safe name for an image of the plan:
// prefix, request id, what it is, and a hash of its pixels, so that a
// name never stands for other contents.
func contentFileName(prefix, id, what string, img image.Image) string {
	hash := pixelHash(img)
	if id = slug(id); id != "" {
		return fmt.Sprintf("%s_%s_%s_%s.png", prefix, id, what, hash)
	}
	return fmt.Sprintf("%s_%s_%s.png", prefix, what, hash)
}

// castagnoli is CRC-32C, which CPUs compute in hardware.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// pixelHash is 8 hex digits of the CRC-32C of an image's type, size,
// palette and pixels: a fraction of a millisecond for a mask, where
// hashing its PNG would mean encoding it first (the caller's job, and
// only when it sends the image).
func pixelHash(img image.Image) string {
	h := crc32.New(castagnoli)
	b := img.Bounds()
	fmt.Fprintf(h, "%T %dx%d\n", img, b.Dx(), b.Dy())
	rows := func(pix []byte, stride, rowBytes int) {
		for y := range b.Dy() {
			h.Write(pix[y*stride : y*stride+rowBytes])
		}
	}
	switch m := img.(type) {
	case *image.Gray:
		rows(m.Pix, m.Stride, b.Dx())
	case *image.NRGBA:
		rows(m.Pix, m.Stride, 4*b.Dx())
	case *image.RGBA:
		rows(m.Pix, m.Stride, 4*b.Dx())
	case *image.Paletted:
		for _, c := range m.Palette {
			r, g, bl, a := c.RGBA()
			h.Write([]byte{byte(r >> 8), byte(g >> 8), byte(bl >> 8), byte(a >> 8)})
		}
		rows(m.Pix, m.Stride, b.Dx())
	default:
		var px [8]byte
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.RGBA64Model.Convert(img.At(x, y)).(color.RGBA64)
				binary.BigEndian.PutUint16(px[0:], c.R)
				binary.BigEndian.PutUint16(px[2:], c.G)
				binary.BigEndian.PutUint16(px[4:], c.B)
				binary.BigEndian.PutUint16(px[6:], c.A)
				h.Write(px[:])
			}
		}
	}
	return fmt.Sprintf("%08x", h.Sum32())
}
