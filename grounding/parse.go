package grounding

import (
	"fmt"
	"strings"

	"paliprompt/core"
)

// Detection is one object parsed from a detect or segment output:
// `<locY0><locX0><locY1><locX1>[<segNNN> x16] label`.
type Detection struct {
	Label string
	// Locs are the four location bins in output order: y0, x0, y1, x1 (0..1023).
	Locs [4]int
	// Codes are the 16 segmentation codes (0..127), nil for a detection.
	Codes []int
}

// locBins is the number of location tokens; bin v decodes to v/(locBins-1).
const locBins = 1024

// segCodes is the number of segmentation tokens per object.
const segCodes = 16

// BoxNorm decodes the location bins to fractions of the image size.
// Bin v maps to v/1023, the inverse of big_vision's training encoding
// round(coord*1023). The HF blog, big_vision's demo
// space and supervision decode v/1024 instead, one bin off.
func (d Detection) BoxNorm() core.Box {
	f := func(v int) float64 { return float64(v) / (locBins - 1) }
	return core.Box{X0: f(d.Locs[1]), Y0: f(d.Locs[0]), X1: f(d.Locs[3]), Y1: f(d.Locs[2])}
}

// Box decodes the location bins to pixels of a width x height image.
func (d Detection) Box(width, height int) core.Box {
	n := d.BoxNorm()
	w, h := float64(width), float64(height)
	return core.Box{X0: n.X0 * w, Y0: n.Y0 * h, X1: n.X1 * w, Y1: n.Y1 * h}
}

// ParseDetections parses PaliGemma's detect or segment output. It is
// lenient: objects may be separated by " ; " or simply follow each other,
// and every fragment it cannot use (too few location tokens, a missing
// label, an inverted box, output cut off mid-object) is returned in
// skipped with the reason, never as an error.
func ParseDetections(task core.TaskName, text string) (found []Detection, skipped []core.Skipped) {
	p := detectionParser{task: task}
	for _, it := range lexOutput(text) {
		p.feed(it)
	}
	p.finish()
	return p.found, p.skipped
}

type itemKind int

const (
	itemText itemKind = iota
	itemLoc
	itemSeg
	itemSep
)

// item is one lexical element of an output string.
type item struct {
	kind  itemKind
	value int    // bin or code for itemLoc and itemSeg
	text  string // source text of the item
}

// lexOutput splits an output string into location tokens, segmentation
// tokens, separators and runs of other text.
func lexOutput(s string) []item {
	var items []item
	text := strings.Builder{}
	flush := func() {
		if text.Len() > 0 {
			items = append(items, item{kind: itemText, text: text.String()})
			text.Reset()
		}
	}
	for i := 0; i < len(s); {
		if it, n, ok := lexToken(s[i:]); ok {
			flush()
			items = append(items, it)
			i += n
			continue
		}
		if s[i] == ';' {
			flush()
			items = append(items, item{kind: itemSep, text: ";"})
			i++
			continue
		}
		text.WriteByte(s[i])
		i++
	}
	flush()
	return items
}

// lexToken reads a <locNNNN> or <segNNN> token at the start of s.
func lexToken(s string) (item, int, bool) {
	for _, t := range []struct {
		prefix string
		digits int
		kind   itemKind
	}{{"<loc", 4, itemLoc}, {"<seg", 3, itemSeg}} {
		n := len(t.prefix) + t.digits + 1
		if len(s) < n || !strings.HasPrefix(s, t.prefix) || s[n-1] != '>' {
			continue
		}
		v := 0
		for _, c := range s[len(t.prefix) : n-1] {
			if c < '0' || c > '9' {
				return item{}, 0, false
			}
			v = v*10 + int(c-'0')
		}
		return item{kind: t.kind, value: v, text: s[:n]}, n, true
	}
	return item{}, 0, false
}

// detectionParser groups lexed items into objects.
type detectionParser struct {
	task    core.TaskName
	found   []Detection
	skipped []core.Skipped

	locs   []int
	codes  []int
	label  strings.Builder
	source strings.Builder // the fragment's text, for skip reports
}

func (p *detectionParser) feed(it item) {
	switch it.kind {
	case itemSep:
		p.finish()
		return
	case itemLoc:
		// A location token after the label, the codes or a full box starts
		// the next object: PaliGemma sometimes drops the separator.
		if len(p.locs) == 4 || len(p.codes) > 0 || strings.TrimSpace(p.label.String()) != "" {
			p.finish()
		}
		p.locs = append(p.locs, it.value)
	case itemSeg:
		p.codes = append(p.codes, it.value)
	case itemText:
		p.label.WriteString(it.text)
	}
	p.source.WriteString(it.text)
}

// finish validates the object collected so far and resets the parser.
func (p *detectionParser) finish() {
	fragment := strings.TrimSpace(p.source.String())
	label := cleanLabel(p.label.String())
	locs, codes := p.locs, p.codes
	p.locs, p.codes = nil, nil
	p.label.Reset()
	p.source.Reset()
	if fragment == "" {
		return
	}
	if reason := detectionProblem(locs, codes, label); reason != "" {
		p.skipped = append(p.skipped, core.Skipped{Task: p.task, Fragment: fragment, Reason: reason})
		return
	}
	d := Detection{Label: label, Locs: [4]int(locs)}
	if len(codes) > 0 {
		d.Codes = codes
	}
	p.found = append(p.found, d)
}

// detectionProblem says what is wrong with a parsed object, or "".
func detectionProblem(locs, codes []int, label string) string {
	switch {
	case len(locs) != 4:
		return fmt.Sprintf("found %d of 4 location tokens", len(locs))
	case len(codes) != 0 && len(codes) != segCodes:
		return fmt.Sprintf("found %d of %d segmentation tokens", len(codes), segCodes)
	case label == "":
		return "missing label"
	}
	for _, v := range locs {
		if v >= locBins {
			return fmt.Sprintf("location bin %d is out of range 0..%d", v, locBins-1)
		}
	}
	for _, c := range codes {
		if c >= 128 {
			return fmt.Sprintf("segmentation code %d is out of range 0..127", c)
		}
	}
	if locs[2] < locs[0] || locs[3] < locs[1] {
		return fmt.Sprintf("inverted box (y0=%d x0=%d y1=%d x1=%d)", locs[0], locs[1], locs[2], locs[3])
	}
	return ""
}

// cleanLabel trims a label and drops special tokens the decoder may have
// left in the text (end of sequence, padding).
func cleanLabel(s string) string {
	for _, tok := range []string{"<eos>", "<pad>", "<bos>", "<end_of_turn>"} {
		s = strings.ReplaceAll(s, tok, "")
	}
	return strings.Join(strings.Fields(s), " ")
}
