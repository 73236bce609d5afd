package layouts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"paliprompt/core"
)

// Quadrant names, by the object's centre. A centre exactly on a quadrant
// line belongs to the right or lower side (x >= 0.5 is right, y >= 0.5 is
// bottom), so every object has exactly one quadrant.
const (
	TopLeft     = "top-left"
	TopRight    = "top-right"
	BottomLeft  = "bottom-left"
	BottomRight = "bottom-right"
)

// Quadrant is one quarter of the frame.
type Quadrant struct {
	Name string
	// Key is the quadrant's key in QuadrantShares' JSON ("top_left").
	Key string
	// Box is the quarter, normalized.
	Box core.Box
}

// Quadrants are the frame's four quarters in reading order: the one table
// of quadrants (names, JSON keys, geometry, the preview's lines).
var Quadrants = []Quadrant{
	{TopLeft, "top_left", core.Box{X0: 0, Y0: 0, X1: 0.5, Y1: 0.5}},
	{TopRight, "top_right", core.Box{X0: 0.5, Y0: 0, X1: 1, Y1: 0.5}},
	{BottomLeft, "bottom_left", core.Box{X0: 0, Y0: 0.5, X1: 0.5, Y1: 1}},
	{BottomRight, "bottom_right", core.Box{X0: 0.5, Y0: 0.5, X1: 1, Y1: 1}},
}

// QuadrantAt names the quadrant of a normalized point; a point on a line
// belongs to the quadrant right of or below it, a point outside the frame
// to the nearest quadrant.
func QuadrantAt(x, y float64) string { return Quadrants[quadrantIndex(x, y)].Name }

func quadrantIndex(x, y float64) int {
	// Half-open spans [lo, hi), open towards the outside of the frame.
	in := func(v, lo, hi float64) bool { return (v >= lo || lo == 0) && (v < hi || hi == 1) }
	for i, q := range Quadrants {
		if in(x, q.Box.X0, q.Box.X1) && in(y, q.Box.Y0, q.Box.Y1) {
			return i
		}
	}
	return len(Quadrants) - 1 // NaN
}

// quadrantPhrase turns a quadrant name into prose: "upper-left".
func quadrantPhrase(q string) string {
	return strings.NewReplacer("top", "upper", "bottom", "lower").Replace(q)
}

// QuadrantShares is the fraction of an object in each quadrant, by the
// index of Quadrants (they sum to 1): of its mask when it has one, else of
// its box. In JSON an object keyed by Quadrant.Key, in table order.
type QuadrantShares [4]float64

// Of returns the share of the named quadrant.
func (q QuadrantShares) Of(name string) float64 {
	for i, quad := range Quadrants {
		if quad.Name == name {
			return q[i]
		}
	}
	return 0
}

// MarshalJSON writes {"top_left": ..., ...} in table order.
func (q QuadrantShares) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, quad := range Quadrants {
		if i > 0 {
			b.WriteByte(',')
		}
		v, err := json.Marshal(q[i])
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%q:%s", quad.Key, v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads the object MarshalJSON writes.
func (q *QuadrantShares) UnmarshalJSON(data []byte) error {
	var m map[string]float64
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	for i, quad := range Quadrants {
		q[i] = m[quad.Key]
	}
	return nil
}

// add accumulates weight w at a point.
func (q *QuadrantShares) add(x, y, w float64) { q[quadrantIndex(x, y)] += w }

// normalize scales the shares to sum to 1 and rounds them for JSON.
func (q QuadrantShares) normalize() QuadrantShares {
	sum := 0.0
	for _, v := range q {
		sum += v
	}
	if sum <= 0 {
		return q
	}
	for i := range q {
		q[i] = core.Round(q[i]/sum, 4)
	}
	return q
}

// dominant returns the quadrant with the largest share, and the share;
// the first in table order on a tie.
func (q QuadrantShares) dominant() (string, float64) {
	best := 0
	for i := range q {
		if q[i] > q[best] {
			best = i
		}
	}
	return Quadrants[best].Name, q[best]
}

// boxShares is the fraction of a box's area in each quadrant.
func boxShares(b core.Box) QuadrantShares {
	var q QuadrantShares
	a := b.Area()
	if a <= 0 {
		x, y := b.Center()
		q.add(x, y, 1)
		return q
	}
	for i, quad := range Quadrants {
		q[i] = b.Intersect(quad.Box).Area() / a
	}
	return q
}

// Cell is a cell of the 3x3 grid, by the object's centre: Row and Col are
// 0..2 from the top-left; a centre on a grid line belongs to the cell
// right of or below it.
type Cell struct {
	Row  int    `json:"row"`
	Col  int    `json:"col"`
	Name string `json:"name"`
}

// cellNames name the 3x3 grid cells, row-major.
var cellNames = [3][3]string{
	{"top-left", "top", "top-right"},
	{"left", "center", "right"},
	{"bottom-left", "bottom", "bottom-right"},
}

// third returns the grid index (0..2) of a coordinate and its position in
// the ninths of the frame (0..8), Omost's resolution.
func third(v float64) (cell, ninth int) {
	ninth = int(math.Floor(v * 9))
	ninth = min(max(ninth, 0), 8)
	return ninth / 3, ninth
}

// gridLines are the interior lines of the 3x3 grid, as fractions of the
// frame (for the preview).
func gridLines() []float64 {
	var out []float64
	for i := 1; i < len(cellNames); i++ {
		out = append(out, float64(i)/float64(len(cellNames)))
	}
	return out
}

// quadrantLines are the interior edges of the quadrants: the x of their
// vertical lines and the y of their horizontal ones (for the preview).
func quadrantLines() (xs, ys []float64) {
	for _, q := range Quadrants {
		if q.Box.X0 > 0 && !slices.Contains(xs, q.Box.X0) {
			xs = append(xs, q.Box.X0)
		}
		if q.Box.Y0 > 0 && !slices.Contains(ys, q.Box.Y0) {
			ys = append(ys, q.Box.Y0)
		}
	}
	return xs, ys
}

func cellOf(x, y float64) Cell {
	col, _ := third(x)
	row, _ := third(y)
	return Cell{Row: row, Col: col, Name: cellNames[row][col]}
}

// Omost's vocabulary (lllyasviel/Omost, lib_omost/canvas.py), on its 90x90
// canvas: nine locations at the centres of the 3x3 grid cells (15, 45, 75),
// nine offsets of 10 units (a ninth of the frame) and nine area presets.
// A centre therefore falls on one of 9x9 positions: its grid cell gives the
// location, its ninth within the cell the offset.

// OmostLocations are Omost's location names by grid row and column.
var OmostLocations = [3][3]string{
	{"on the top-left", "on the top", "on the top-right"},
	{"on the left", "in the center", "on the right"},
	{"on the bottom-left", "on the bottom", "on the bottom-right"},
}

// omostOffsets are Omost's offset names by vertical and horizontal step
// (-1, 0, +1 ninths of the frame).
var omostOffsets = [3][3]string{
	{"slightly to the upper-left", "slightly to the upper", "slightly to the upper-right"},
	{"slightly to the left", "no offset", "slightly to the right"},
	{"slightly to the lower-left", "slightly to the lower", "slightly to the lower-right"},
}

// omostArea is one of Omost's area presets: width and height on its 90x90
// canvas.
type omostArea struct {
	Name string
	W, H float64
}

// omostAreas are Omost's nine presets, by size (small, medium-sized,
// large) and shape (square, vertical, horizontal).
var omostAreas = [3][3]omostArea{
	{{"a small square area", 50, 50}, {"a small vertical area", 40, 60}, {"a small horizontal area", 60, 40}},
	{{"a medium-sized square area", 60, 60}, {"a medium-sized vertical area", 50, 80}, {"a medium-sized horizontal area", 80, 50}},
	{{"a large square area", 70, 70}, {"a large vertical area", 60, 90}, {"a large horizontal area", 90, 60}},
}

// OmostPlace is an object's place in Omost's words.
type OmostPlace struct {
	Location string `json:"location"`
	Offset   string `json:"offset"`
	Area     string `json:"area"`
}

// Shape thresholds for Omost's area presets: a box whose width/height
// (in frame fractions, as on Omost's square canvas) is above
// omostHorizontal reads as horizontal, below 1/omostHorizontal as
// vertical, else square. Omost's own presets are 1.5 and 1.6 apart from
// square, so 1.25 is halfway.
const omostHorizontal = 1.25

// omostPlace describes a normalized box in Omost's vocabulary.
//
// The size class is the preset (of the box's shape) whose area is nearest
// in log scale to the box's area. Omost's smallest preset covers 30% of
// the canvas, so every smaller object reads as "a small ... area"; the
// exact box is always given beside the words.
func omostPlace(b core.Box) OmostPlace {
	cx, cy := b.Center()
	col, nx := third(cx)
	row, ny := third(cy)
	shape := 0
	if b.H() > 0 && b.W() > 0 {
		switch r := b.W() / b.H(); {
		case r > omostHorizontal:
			shape = 2
		case r < 1/omostHorizontal:
			shape = 1
		}
	}
	area := b.Area() * 90 * 90
	size, best := 0, math.Inf(1)
	for s := range omostAreas {
		preset := omostAreas[s][shape]
		d := math.Abs(math.Log(math.Max(area, 1e-9) / (preset.W * preset.H)))
		if d < best {
			size, best = s, d
		}
	}
	return OmostPlace{
		Location: OmostLocations[row][col],
		Offset:   omostOffsets[ny%3][nx%3],
		Area:     omostAreas[size][shape].Name,
	}
}

// areaWords describe a fraction of the frame for sentences, nearest in
// log scale; below the first and above the last the ends apply.
var areaWords = []struct {
	Fraction float64
	Words    string
}{
	{0.02, "a small part of the frame"},
	{0.05, "about a twentieth of the frame"},
	{0.1, "about a tenth of the frame"},
	{0.2, "about a fifth of the frame"},
	{0.25, "about a quarter of the frame"},
	{1.0 / 3, "about a third of the frame"},
	{0.5, "about half of the frame"},
	{2.0 / 3, "about two thirds of the frame"},
	{0.75, "about three quarters of the frame"},
	{0.9, "most of the frame"},
	{1, "the whole frame"},
}

// areaPhrase describes a fraction of the frame in words.
func areaPhrase(f float64) string {
	if f <= areaWords[0].Fraction {
		return areaWords[0].Words
	}
	best, words := math.Inf(1), ""
	for _, a := range areaWords {
		if d := math.Abs(math.Log(f / a.Fraction)); d < best {
			best, words = d, a.Words
		}
	}
	return words
}
