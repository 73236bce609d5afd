// Package cudabin reads what a CUDA library carries without loading it, in
// pure Go: the GPU code in its fatbinaries (the ELF section .nv_fatbin) and
// the libraries it needs (DT_NEEDED), so that `paliprompt check` can say
// whether a card has kernels before CUDA ever runs, and the native layer
// can load CUDA libraries in dependency order.
//
// The fatbin layout (little-endian) is what NVIDIA's tools write and
// cuobjdump reads; it has no published specification:
//
//	fatbin header, 16 bytes: magic 0xBA55ED50 (u32), version 1 (u16),
//	  header size (u16), size of the entries that follow (u64)
//	entry header, 64 bytes or more: kind (u16 at 0: 1 PTX, 2 ELF), header
//	  size (u32 at 4), payload size (u64 at 8), compressed size (u32 at 16),
//	  SM version (u32 at 28, 70 for sm_70), flags (u64 at 40; 0x2000: payload
//	  LZ4-compressed, 0x8000: zstd), then the payload; the next entry
//	  follows the payload.
//
// An ELF entry's own header (decompressed when LZ4) tells arch-specific
// code (sm_90a) apart: CUDA ELF ABI version 7 sets 0x800 in e_flags.
package cudabin

import (
	"cmp"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Kind is what a fatbin entry holds.
type Kind uint16

// Entry kinds.
const (
	PTX Kind = 1 // PTX text, compiled by the driver at load time (JIT)
	ELF Kind = 2 // machine code (a cubin) for one architecture
)

func (k Kind) String() string {
	switch k {
	case PTX:
		return "PTX"
	case ELF:
		return "ELF"
	}
	return fmt.Sprintf("kind %d", uint16(k))
}

// Code is one entry of a fatbin: code of one kind for one architecture.
type Code struct {
	Kind Kind
	// SM is the architecture times ten plus the minor version: 70 for
	// sm_70 (compute capability 7.0), 120 for sm_120.
	SM int
	// Specific marks arch-specific machine code (sm_90a), which runs only on
	// exactly that compute capability.
	Specific bool
}

// String names the architecture: "sm_70", "sm_90a".
func (c Code) String() string {
	if c.Specific {
		return fmt.Sprintf("sm_%da", c.SM)
	}
	return fmt.Sprintf("sm_%d", c.SM)
}

// Fatbin is one fatbinary: the variants of one compiled unit's kernels.
type Fatbin struct {
	Codes []Code
}

// Library is the GPU code found in one shared library.
type Library struct {
	Path    string
	Fatbins []Fatbin
}

const (
	fatbinMagic      = 0xBA55ED50
	fatbinHeaderSize = 16
	entryHeaderSize  = 64
	flagLZ4          = 0x2000
	flagZstd         = 0x8000
	elfOSABICUDA     = 0x33
	elfAccelerators  = 0x800 // e_flags bit of sm_XXa code (ABI version 7)
)

// Read reads the fatbins of the shared library at path. A library without
// a .nv_fatbin section has none (no error).
func Read(path string) (*Library, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	lib := &Library{Path: path}
	sec := f.Section(".nv_fatbin")
	if sec == nil || sec.Type == elf.SHT_NOBITS {
		return lib, nil
	}
	if lib.Fatbins, err = Parse(sec, int64(sec.Size)); err != nil {
		return nil, fmt.Errorf("read %s: .nv_fatbin: %w", path, err)
	}
	return lib, nil
}

// Parse reads the fatbins of a .nv_fatbin section's contents: fatbins one
// after another, zero padding between them allowed.
func Parse(r io.ReaderAt, size int64) ([]Fatbin, error) {
	var out []Fatbin
	for off := int64(0); off < size; {
		var hdr [fatbinHeaderSize]byte
		if err := readAt(r, hdr[:], off, size); err != nil {
			if size-off < fatbinHeaderSize && allZero(r, off, size) {
				break // trailing padding
			}
			return nil, fmt.Errorf("fatbin at offset %d: %w", off, err)
		}
		magic := binary.LittleEndian.Uint32(hdr[0:])
		if magic == 0 {
			off += 8 // padding up to the next 8-byte aligned fatbin
			continue
		}
		if magic != fatbinMagic {
			return nil, fmt.Errorf("offset %d: magic %#x, not a fatbin (%#x)", off, magic, uint32(fatbinMagic))
		}
		if v := binary.LittleEndian.Uint16(hdr[4:]); v != 1 {
			return nil, fmt.Errorf("fatbin at offset %d: version %d, only version 1 is known", off, v)
		}
		start := off + int64(binary.LittleEndian.Uint16(hdr[6:]))
		length := binary.LittleEndian.Uint64(hdr[8:])
		if start < off+fatbinHeaderSize || start > size || length > uint64(size-start) {
			return nil, fmt.Errorf("fatbin at offset %d: %d bytes of entries run past the section's %d", off, length, size)
		}
		end := start + int64(length)
		fb, err := parseEntries(r, start, end)
		if err != nil {
			return nil, fmt.Errorf("fatbin at offset %d: %w", off, err)
		}
		out = append(out, fb)
		off = end
	}
	return out, nil
}

// parseEntries reads the entries of one fatbin, between start and end.
func parseEntries(r io.ReaderAt, start, end int64) (Fatbin, error) {
	var fb Fatbin
	for off := start; off < end; {
		var h [entryHeaderSize]byte
		if err := readAt(r, h[:], off, end); err != nil {
			return fb, fmt.Errorf("entry at offset %d: %w", off, err)
		}
		kind := Kind(binary.LittleEndian.Uint16(h[0:]))
		hsize := int64(binary.LittleEndian.Uint32(h[4:]))
		psize := binary.LittleEndian.Uint64(h[8:])
		if hsize < entryHeaderSize || hsize > end-off || psize > uint64(end-off-hsize) {
			return fb, fmt.Errorf("entry at offset %d: header %d and payload %d bytes run past the fatbin", off, hsize, psize)
		}
		if kind == PTX || kind == ELF {
			c := Code{Kind: kind, SM: int(binary.LittleEndian.Uint32(h[28:]))}
			if kind == ELF {
				compressed := int64(binary.LittleEndian.Uint32(h[16:]))
				flags := binary.LittleEndian.Uint64(h[40:])
				c.Specific = archSpecific(r, off+hsize, min(int64(psize), max(compressed, 0)), int64(psize), flags)
			}
			fb.Codes = append(fb.Codes, c)
		}
		off += hsize + int64(psize)
	}
	return fb, nil
}

// archSpecific reads the ELF header of an entry's payload (decompressing
// its start when LZ4-compressed) and reports whether it is sm_XXa code.
// A header it cannot read (zstd, another ABI version) counts as generic.
func archSpecific(r io.ReaderAt, off, compressed, size int64, flags uint64) bool {
	const elfHeader = 64
	var head []byte
	switch {
	case flags&flagZstd != 0:
		return false
	case flags&flagLZ4 != 0:
		src := make([]byte, min(compressed, 512))
		if readAt(r, src, off, off+size) != nil {
			return false
		}
		head = lz4Prefix(src, elfHeader)
	default:
		head = make([]byte, min(size, elfHeader))
		if readAt(r, head, off, off+size) != nil {
			return false
		}
	}
	if len(head) < 0x34 || string(head[:4]) != elf.ELFMAG || head[elf.EI_OSABI] != elfOSABICUDA || head[elf.EI_ABIVERSION] != 7 {
		return false
	}
	return binary.LittleEndian.Uint32(head[0x30:])&elfAccelerators != 0
}

// lz4Prefix decodes the first n bytes of an LZ4 block (the format of
// NVIDIA's fatbin compression). Only the ELF header is needed, and the
// LZ4 libraries decode whole blocks: hence this small decoder. Bad input
// ends the output early; it never panics.
func lz4Prefix(src []byte, n int) []byte {
	out := make([]byte, 0, n)
	length := func(i, l int) (int, int) {
		if l != 15 {
			return i, l
		}
		for i < len(src) {
			b := src[i]
			i++
			l += int(b)
			if b != 255 {
				break
			}
		}
		return i, l
	}
	for i := 0; i < len(src) && len(out) < n; {
		token := src[i]
		i++
		var lit int
		i, lit = length(i, int(token>>4))
		lit = min(lit, len(src)-i)
		out = append(out, src[i:i+lit]...)
		i += lit
		if len(out) >= n || i+2 > len(src) {
			break
		}
		back := int(src[i]) | int(src[i+1])<<8
		i += 2
		var match int
		i, match = length(i, int(token&15))
		if back == 0 || back > len(out) {
			break
		}
		for k := 0; k < match+4 && len(out) < n; k++ {
			out = append(out, out[len(out)-back])
		}
	}
	return out[:min(len(out), n)]
}

var errShort = errors.New("truncated")

// readAt fills b from r at off, never reading at or past limit.
func readAt(r io.ReaderAt, b []byte, off, limit int64) error {
	if off < 0 || int64(len(b)) > limit-off {
		return errShort
	}
	if _, err := r.ReadAt(b, off); err != nil {
		return fmt.Errorf("%w: %v", errShort, err)
	}
	return nil
}

func allZero(r io.ReaderAt, off, size int64) bool {
	if off < 0 || off > size {
		return false
	}
	b := make([]byte, size-off)
	if _, err := r.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 })
}

// Codes lists the distinct codes of every fatbin, machine code first, each
// kind by architecture.
func (l *Library) Codes() []Code {
	var all []Code
	for _, fb := range l.Fatbins {
		for _, c := range fb.Codes {
			if !slices.Contains(all, c) {
				all = append(all, c)
			}
		}
	}
	slices.SortFunc(all, func(a, b Code) int {
		return cmp.Or(-cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.SM, b.SM), cmp.Compare(rank(a.Specific), rank(b.Specific)))
	})
	return all
}

func rank(specific bool) int {
	if specific {
		return 1
	}
	return 0
}

// String summarizes the library's code: "200 fatbins, each with ELF sm_60
// sm_70 and PTX sm_90", or per code in how many fatbins it is when they
// differ.
func (l *Library) String() string {
	n := len(l.Fatbins)
	if n == 0 {
		return "no fatbins (no GPU code in .nv_fatbin)"
	}
	count := map[Code]int{}
	for _, fb := range l.Fatbins {
		seen := map[Code]bool{}
		for _, c := range fb.Codes {
			if !seen[c] {
				seen[c] = true
				count[c]++
			}
		}
	}
	uniform := true
	byKind := map[Kind][]string{}
	var kinds []Kind
	for _, c := range l.Codes() {
		if !slices.Contains(kinds, c.Kind) {
			kinds = append(kinds, c.Kind)
		}
		name := c.String()
		if count[c] < n {
			uniform = false
			name += fmt.Sprintf(" (%d)", count[c])
		}
		byKind[c.Kind] = append(byKind[c.Kind], name)
	}
	var parts []string
	for _, k := range kinds {
		parts = append(parts, k.String()+" "+strings.Join(byKind[k], " "))
	}
	if uniform {
		return fmt.Sprintf("%d fatbins, each with %s", n, strings.Join(parts, " and "))
	}
	return fmt.Sprintf("%d fatbins with %s (in how many fatbins, where not all)", n, strings.Join(parts, "; "))
}
