package cudabin

// The fixtures of this package are made here, in Go, and committed under
// testdata/ (go test ./grounding/internal/cudabin -update rewrites them;
// TestFixturesUpToDate fails when they drift from this generator):
//
//	testdata/fatbin.so    an ELF shared object whose .nv_fatbin holds two
//	                      fatbins: (1) ELF sm_70 (stored), ELF sm_90a
//	                      (LZ4-compressed, arch-specific by its e_flags), PTX
//	                      sm_90 (an 80-byte entry header with the options
//	                      block, as nvcc writes PTX entries); 8 bytes of
//	                      zero padding; (2) ELF sm_80, ELF sm_86, PTX sm_80.
//	                      NVIDIA's cuobjdump 13.5 (--list-elf --list-ptx)
//	                      lists these six entries.
//	testdata/needs/*.so   libraries that need one another (DT_NEEDED):
//	                      libtop needs libmid and libc.so.6, libmid needs
//	                      libbase; for LoadOrder.
//
// The ELF writer below writes only what debug/elf and the fatbin reader
// look at: the file header, the section headers, .shstrtab, and the
// sections given.

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/ from the generator")

// section is one section of a generated ELF file.
type section struct {
	name string
	typ  elf.SectionType
	data []byte
	link uint32 // section index of a string table
}

// elfHeader is what differs between the ELF files made here: a host
// shared object, or a cubin.
type elfHeader struct {
	typ            elf.Type
	machine        elf.Machine
	osabi, version byte
	flags          uint32
}

var hostLibrary = elfHeader{typ: elf.ET_DYN, machine: elf.EM_X86_64}

// elfFile lays out a little-endian ELF64 file with the given sections
// (index 1 onwards), then .shstrtab.
func elfFile(hdr elfHeader, sections []section) []byte {
	const ehsize, shentsize = 64, 64
	names := []byte{0}
	nameOff := make([]uint32, len(sections)+1)
	for i, s := range sections {
		nameOff[i] = uint32(len(names))
		names = append(append(names, s.name...), 0)
	}
	nameOff[len(sections)] = uint32(len(names))
	names = append(append(names, ".shstrtab"...), 0)
	all := append(sections, section{name: ".shstrtab", typ: elf.SHT_STRTAB, data: names})

	var body bytes.Buffer
	offsets := make([]uint64, len(all))
	for i, s := range all {
		for (ehsize+body.Len())%8 != 0 {
			body.WriteByte(0)
		}
		offsets[i] = uint64(ehsize + body.Len())
		body.Write(s.data)
	}
	for (ehsize+body.Len())%8 != 0 {
		body.WriteByte(0)
	}
	shoff := uint64(ehsize + body.Len())

	var out bytes.Buffer
	le := binary.LittleEndian
	ident := [16]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT), hdr.osabi, hdr.version}
	out.Write(ident[:])
	binary.Write(&out, le, struct {
		Type, Machine                                        uint16
		Version                                              uint32
		Entry, Phoff, Shoff                                  uint64
		Flags                                                uint32
		Ehsize, Phentsize, Phnum, Shentsize, Shnum, Shstrndx uint16
	}{uint16(hdr.typ), uint16(hdr.machine), uint32(elf.EV_CURRENT), 0, 0, shoff, hdr.flags,
		ehsize, 56, 0, shentsize, uint16(len(all) + 1), uint16(len(all))})
	out.Write(body.Bytes())
	out.Write(make([]byte, shentsize)) // section 0: none
	for i, s := range all {
		binary.Write(&out, le, elf.Section64{Name: nameOff[i], Type: uint32(s.typ), Off: offsets[i],
			Size: uint64(len(s.data)), Link: s.link, Addralign: 8, Flags: uint64(elf.SHF_ALLOC)})
	}
	return out.Bytes()
}

// cudaELFHeader is a minimal cubin for sm (CUDA ELF ABI version 7, one
// empty .text section): e_flags hold the architecture, the virtual
// architecture and, for sm_XXa, 0x800.
func cudaELFHeader(sm int, specific bool) []byte {
	flags := uint32(sm) | uint32(sm)<<16 | 0x500
	if specific {
		flags |= elfAccelerators
	}
	return elfFile(elfHeader{typ: elf.ET_EXEC, machine: elf.EM_CUDA, osabi: elfOSABICUDA, version: 7, flags: flags},
		[]section{{name: ".text", typ: elf.SHT_PROGBITS}})
}

// lz4Compress writes an LZ4 block that stores runs of one repeated byte as
// matches at distance 1 and the rest as literals: enough to exercise both
// halves of lz4Prefix.
func lz4Compress(src []byte) []byte {
	var out []byte
	lengthBytes := func(n int) {
		for ; n >= 255; n -= 255 {
			out = append(out, 255)
		}
		out = append(out, byte(n))
	}
	seq := func(lit []byte, match int) {
		token := byte(min(len(lit), 15)) << 4
		if match > 0 {
			token |= byte(min(match-4, 15))
		}
		out = append(out, token)
		if len(lit) >= 15 {
			lengthBytes(len(lit) - 15)
		}
		out = append(out, lit...)
		if match > 0 {
			out = append(out, 1, 0)
			if match-4 >= 15 {
				lengthBytes(match - 4 - 15)
			}
		}
	}
	start := 0
	for i := 0; i < len(src); {
		run := 1
		for i+run < len(src) && src[i+run] == src[i] {
			run++
		}
		// A run of 6+ (the byte itself as a literal, then 5+ copies) and
		// never in the last 12 bytes: LZ4's end-of-block rules.
		if run >= 6 && i+run <= len(src)-12 {
			seq(src[start:i+1], run-1)
			i += run
			start = i
			continue
		}
		i += run
	}
	seq(src[start:], 0)
	return out
}

// entry is one fatbin entry. PTX entries get an 80-byte header with the
// options block nvcc writes (at 64: offset and length of the ptxas
// options, "-w  "); stored payloads have compressed size 0.
func entry(kind Kind, sm int, payload []byte, flags uint64, uncompressed int) []byte {
	le := binary.LittleEndian
	size := entryHeaderSize
	if kind == PTX {
		size += 16
	}
	h := make([]byte, size)
	le.PutUint16(h[0:], uint16(kind))
	le.PutUint16(h[2:], 0x0101)
	le.PutUint32(h[4:], uint32(size))
	padded := (len(payload) + 7) &^ 7
	le.PutUint64(h[8:], uint64(padded))
	if flags&flagLZ4 != 0 {
		le.PutUint32(h[16:], uint32(len(payload)))
		le.PutUint64(h[56:], uint64(uncompressed))
	}
	major, minor := 1, 7 // cubin code version 1.7
	if kind == PTX {
		major, minor = 8, 0 // PTX ISA 8.0
		le.PutUint32(h[20:], entryHeaderSize)
		le.PutUint32(h[64:], entryHeaderSize+8)
		le.PutUint32(h[68:], 4)
		copy(h[72:], "-w  ")
	}
	le.PutUint16(h[24:], uint16(minor))
	le.PutUint16(h[26:], uint16(major))
	le.PutUint32(h[28:], uint32(sm))
	le.PutUint64(h[40:], flags)
	return append(append(h, payload...), make([]byte, padded-len(payload))...)
}

func fatbin(entries ...[]byte) []byte {
	body := bytes.Join(entries, nil)
	h := make([]byte, fatbinHeaderSize)
	binary.LittleEndian.PutUint32(h[0:], fatbinMagic)
	binary.LittleEndian.PutUint16(h[4:], 1)
	binary.LittleEndian.PutUint16(h[6:], fatbinHeaderSize)
	binary.LittleEndian.PutUint64(h[8:], uint64(len(body)))
	return append(h, body...)
}

const (
	flags64Linux = 0x11 // 64-bit code, Linux host
	unknownKind  = 0x40
)

func fatbinFixture() []byte {
	ptx90 := []byte(".version 8.0\n.target sm_90\n.address_size 64\n")
	ptx80 := []byte(".version 8.0\n.target sm_80\n.address_size 64\n")
	sm90a := cudaELFHeader(90, true)
	first := fatbin(
		entry(ELF, 70, cudaELFHeader(70, false), flags64Linux, 0),
		entry(ELF, 90, lz4Compress(sm90a), flags64Linux|flagLZ4, len(sm90a)),
		entry(PTX, 90, ptx90, flags64Linux, 0),
	)
	second := fatbin(
		entry(ELF, 80, cudaELFHeader(80, false), flags64Linux, 0),
		entry(ELF, 86, cudaELFHeader(86, false), flags64Linux, 0),
		entry(PTX, 80, ptx80, flags64Linux, 0),
	)
	data := append(append(first, make([]byte, 8)...), second...)
	return elfFile(hostLibrary, []section{
		{name: ".text", typ: elf.SHT_PROGBITS, data: []byte{0xc3}},
		{name: ".nv_fatbin", typ: elf.SHT_PROGBITS, data: data},
	})
}

// neededFixture is a library named soname that needs the given libraries.
func neededFixture(soname string, needed ...string) []byte {
	strs := []byte{0}
	var dyn []elf.Dyn64
	add := func(tag elf.DynTag, s string) {
		dyn = append(dyn, elf.Dyn64{Tag: int64(tag), Val: uint64(len(strs))})
		strs = append(append(strs, s...), 0)
	}
	for _, n := range needed {
		add(elf.DT_NEEDED, n)
	}
	add(elf.DT_SONAME, soname)
	dyn = append(dyn, elf.Dyn64{Tag: int64(elf.DT_NULL)})
	var d bytes.Buffer
	binary.Write(&d, binary.LittleEndian, dyn)
	return elfFile(hostLibrary, []section{
		{name: ".dynstr", typ: elf.SHT_STRTAB, data: strs},
		{name: ".dynamic", typ: elf.SHT_DYNAMIC, data: d.Bytes(), link: 1},
	})
}

// fixtures are the files of testdata/, as the generator makes them.
func fixtures() map[string][]byte {
	return map[string][]byte{
		"fatbin.so":           fatbinFixture(),
		"needs/libtop.so.1":   neededFixture("libtop.so.1", "libmid.so.2", "libc.so.6"),
		"needs/libmid.so.2":   neededFixture("libmid.so.2", "libbase.so.3"),
		"needs/libbase.so.3":  neededFixture("libbase.so.3", "libc.so.6"),
		"needs/libother.so.1": neededFixture("libother.so.1"),
	}
}

func TestFixturesUpToDate(t *testing.T) {
	for name, want := range fixtures() {
		path := filepath.Join("testdata", filepath.FromSlash(name))
		if *update {
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from its generator (go test -update rewrites it): %v", path, err)
		}
	}
}
