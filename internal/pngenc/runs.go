package pngenc

import (
	"encoding/binary"
	"math/bits"
)

// runWriter is the zlib stream of one-channel images (masks, colour
// masks): deflate with the fixed Huffman codes and only run-length
// matches (distance 1), the Adler-32 worked out a run at a time. Up
// filtered, a mask is mostly runs of zeros, so this costs about the
// number of runs, where a general deflate costs every byte; the stream
// is a little larger than zlib's fastest level, and any inflater reads it.
type runWriter struct {
	out    []byte
	acc    uint64 // bits not yet written, the oldest lowest
	nacc   uint
	s1, s2 uint64 // Adler-32 halves, reduced lazily
	last   int    // the last byte written, -1 before the first
}

const adlerMod = 65521

func newRunWriter(sizeHint int) *runWriter {
	w := &runWriter{out: make([]byte, 0, sizeHint), s1: 1, last: -1}
	w.out = append(w.out, 0x78, 0x01) // zlib: deflate, 32 KiB window, fastest
	w.put(1, 1)                       // the one and final block,
	w.put(1, 2)                       // with the fixed codes
	return w
}

// put writes the n low bits of v.
func (w *runWriter) put(v uint64, n uint) {
	w.acc |= v << w.nacc
	w.nacc += n
	if w.nacc >= 32 {
		w.out = binary.LittleEndian.AppendUint32(w.out, uint32(w.acc))
		w.acc >>= 32
		w.nacc -= 32
	}
}

// The fixed Huffman codes (RFC 1951 3.2.6), bit-reversed for an LSB-first
// stream, and the length codes' bases and extra bits.
var (
	litCode [286]uint16
	litBits [286]uint8
	lenSym  [259]uint16 // length 3..258 -> symbol 257..285
)

var (
	lenBase  = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra = [29]uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
)

func init() {
	for s := range litCode {
		var code, n int
		switch {
		case s < 144:
			code, n = 0x30+s, 8
		case s < 256:
			code, n = 0x190+s-144, 9
		case s < 280:
			code, n = s-256, 7
		default:
			code, n = 0xc0+s-280, 8
		}
		litCode[s] = bits.Reverse16(uint16(code)) >> (16 - n)
		litBits[s] = uint8(n)
	}
	for k := range lenBase {
		end := 259
		if k+1 < len(lenBase) {
			end = lenBase[k+1]
		}
		for l := lenBase[k]; l < end && l <= 258; l++ {
			lenSym[l] = uint16(257 + k)
		}
	}
	lenSym[258] = 285
}

func (w *runWriter) literal(b byte) {
	w.put(uint64(litCode[b]), uint(litBits[b]))
}

// repeat writes n more copies of the last byte as matches at distance 1
// (literals below three).
func (w *runWriter) repeat(n int) {
	for n >= 3 {
		l := min(n, 258)
		if n-l > 0 && n-l < 3 { // leave a match's worth for the rest
			l = n - 3
		}
		s := lenSym[l]
		k := s - 257
		w.put(uint64(litCode[s]), uint(litBits[s]))
		if e := lenExtra[k]; e > 0 {
			w.put(uint64(l-lenBase[k]), e)
		}
		w.put(0, 5) // distance code 0: distance 1
		n -= l
	}
	for range n {
		w.literal(byte(w.last))
	}
}

// writeUp compresses one Up-filtered row: the filter byte, then cur -
// prev, which is zero wherever the rows agree. Only the span between the
// first and the last differing byte is subtracted (into buf); the rest
// are runs of zeros.
func (w *runWriter) writeUp(cur, prev, buf []byte) {
	_, _ = w.Write([]byte{2})
	lo := commonPrefix(cur, prev)
	if lo == len(cur) {
		w.zeros(len(cur))
		return
	}
	hi := len(cur) - commonSuffix(cur[lo:], prev[lo:])
	w.zeros(lo)
	diff := buf[:hi-lo]
	subtract(diff, cur[lo:hi], prev[lo:hi])
	_, _ = w.Write(diff)
	w.zeros(len(cur) - hi)
}

// zeros writes n zero bytes.
func (w *runWriter) zeros(n int) {
	if n == 0 {
		return
	}
	w.adler(0, n)
	if w.last == 0 {
		w.repeat(n)
		return
	}
	w.literal(0)
	w.last = 0
	w.repeat(n - 1)
}

// commonPrefix is how many leading bytes a and b share.
func commonPrefix(a, b []byte) int {
	n := 0
	for n+8 <= len(a) {
		if x := binary.LittleEndian.Uint64(a[n:]) ^ binary.LittleEndian.Uint64(b[n:]); x != 0 {
			return n + bits.TrailingZeros64(x)/8
		}
		n += 8
	}
	for n < len(a) && a[n] == b[n] {
		n++
	}
	return n
}

// commonSuffix is how many trailing bytes a and b share.
func commonSuffix(a, b []byte) int {
	n := 0
	for n+8 <= len(a) {
		i := len(a) - n - 8
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return n + bits.LeadingZeros64(x)/8
		}
		n += 8
	}
	for n < len(a) && a[len(a)-1-n] == b[len(b)-1-n] {
		n++
	}
	return n
}

// Write compresses p.
func (w *runWriter) Write(p []byte) (int, error) {
	for i := 0; i < len(p); {
		b := p[i]
		n := runLength(p[i:], b)
		w.adler(b, n)
		if int(b) == w.last {
			w.repeat(n)
		} else {
			w.literal(b)
			w.last = int(b)
			w.repeat(n - 1)
		}
		i += n
	}
	return len(p), nil
}

// runLength is how many bytes from the start of p equal b.
func runLength(p []byte, b byte) int {
	pattern := uint64(b) * 0x0101010101010101
	n := 0
	for n+8 <= len(p) {
		if x := binary.LittleEndian.Uint64(p[n:]) ^ pattern; x != 0 {
			return n + bits.TrailingZeros64(x)/8
		}
		n += 8
	}
	for n < len(p) && p[n] == b {
		n++
	}
	return n
}

// adler adds n bytes of value b to the checksum: s1 grows by n*b, and s2
// by n*s1 plus b*(1+2+...+n).
func (w *runWriter) adler(b byte, n int) {
	nn := uint64(n)
	w.s2 = (w.s2 + nn%adlerMod*w.s1 + uint64(b)*(nn*(nn+1)/2%adlerMod)) % adlerMod
	w.s1 = (w.s1 + nn%adlerMod*uint64(b)) % adlerMod
}

// Close ends the block and the stream and returns the zlib bytes.
func (w *runWriter) Close() []byte {
	w.put(uint64(litCode[256]), uint(litBits[256]))
	for w.nacc > 0 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.nacc = uint(max(int(w.nacc)-8, 0))
	}
	return binary.BigEndian.AppendUint32(w.out, uint32(w.s2<<16|w.s1))
}
