package layouts

import (
	"math"
	"strings"
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

// Quadrants are the frame's four quarters, normalized, in reading order.
var Quadrants = []struct {
	Name string
	Box  Box
}{
	{TopLeft, Box{0, 0, 0.5, 0.5}},
	{TopRight, Box{0.5, 0, 1, 0.5}},
	{BottomLeft, Box{0, 0.5, 0.5, 1}},
	{BottomRight, Box{0.5, 0.5, 1, 1}},
}

// quadrantOf names the quadrant of a point.
func quadrantOf(x, y float64) string {
	switch {
	case y < 0.5 && x < 0.5:
		return TopLeft
	case y < 0.5:
		return TopRight
	case x < 0.5:
		return BottomLeft
	}
	return BottomRight
}

// quadrantPhrase turns a quadrant name into prose: "upper-left".
func quadrantPhrase(q string) string {
	return strings.NewReplacer("top", "upper", "bottom", "lower").Replace(q)
}

// QuadrantShares is the fraction of an object in each quadrant (they sum
// to 1): of its mask when it has one, else of its box.
type QuadrantShares struct {
	TopLeft     float64 `json:"top_left"`
	TopRight    float64 `json:"top_right"`
	BottomLeft  float64 `json:"bottom_left"`
	BottomRight float64 `json:"bottom_right"`
}

// add accumulates weight w at a point.
func (q *QuadrantShares) add(x, y, w float64) {
	switch quadrantOf(x, y) {
	case TopLeft:
		q.TopLeft += w
	case TopRight:
		q.TopRight += w
	case BottomLeft:
		q.BottomLeft += w
	default:
		q.BottomRight += w
	}
}

// normalize scales the shares to sum to 1 and rounds them for JSON.
func (q QuadrantShares) normalize() QuadrantShares {
	sum := q.TopLeft + q.TopRight + q.BottomLeft + q.BottomRight
	if sum <= 0 {
		return q
	}
	return QuadrantShares{round4(q.TopLeft / sum), round4(q.TopRight / sum),
		round4(q.BottomLeft / sum), round4(q.BottomRight / sum)}
}

// max returns the largest share.
func (q QuadrantShares) max() float64 {
	return math.Max(math.Max(q.TopLeft, q.TopRight), math.Max(q.BottomLeft, q.BottomRight))
}

// boxShares is the fraction of a box's area in each quadrant.
func boxShares(b Box) QuadrantShares {
	a := b.Area()
	if a <= 0 {
		var q QuadrantShares
		x, y := b.Center()
		q.add(x, y, 1)
		return q
	}
	share := func(i int) float64 { return b.Intersect(Quadrants[i].Box).Area() / a }
	return QuadrantShares{share(0), share(1), share(2), share(3)}
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
func omostPlace(b Box) OmostPlace {
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
