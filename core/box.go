package core

import (
	"encoding/json"
	"fmt"
	"math"
)

// Box is an axis-aligned rectangle, X0 <= X1 and Y0 <= Y1 when valid. A
// grounding result's boxes are in pixels of the reference image (Object.Box)
// or fractions of its size (Object.BoxNorm); a layout's are normalized to
// the frame, 0..1. In JSON a box is the array [x0, y0, x1, y1].
type Box struct {
	X0, Y0, X1, Y1 float64
}

// W is the width of the box.
func (b Box) W() float64 { return b.X1 - b.X0 }

// H is the height of the box.
func (b Box) H() float64 { return b.Y1 - b.Y0 }

// Area of the box; zero for an inverted box.
func (b Box) Area() float64 {
	if b.X1 <= b.X0 || b.Y1 <= b.Y0 {
		return 0
	}
	return b.W() * b.H()
}

// Center of the box.
func (b Box) Center() (x, y float64) { return (b.X0 + b.X1) / 2, (b.Y0 + b.Y1) / 2 }

// Intersect returns the overlap of two boxes (inverted when they do not
// overlap, so its Area is zero).
func (b Box) Intersect(o Box) Box {
	return Box{math.Max(b.X0, o.X0), math.Max(b.Y0, o.Y0), math.Min(b.X1, o.X1), math.Min(b.Y1, o.Y1)}
}

// IoU is the intersection over union of two boxes, 0 when either is empty.
func (b Box) IoU(o Box) float64 {
	in := b.Intersect(o).Area()
	union := b.Area() + o.Area() - in
	if union <= 0 {
		return 0
	}
	return in / union
}

// Clamp limits the box to [0, w] x [0, h].
func (b Box) Clamp(w, h float64) Box {
	c := func(v, hi float64) float64 { return math.Min(math.Max(v, 0), hi) }
	return Box{c(b.X0, w), c(b.Y0, h), c(b.X1, w), c(b.Y1, h)}
}

// Scale multiplies x coordinates by sx and y coordinates by sy.
func (b Box) Scale(sx, sy float64) Box {
	return Box{b.X0 * sx, b.Y0 * sy, b.X1 * sx, b.Y1 * sy}
}

// Mirror flips a normalized box horizontally.
func (b Box) Mirror() Box { return Box{1 - b.X1, b.Y0, 1 - b.X0, b.Y1} }

// Finite reports whether every coordinate is a finite number.
func (b Box) Finite() bool {
	for _, v := range [4]float64{b.X0, b.Y0, b.X1, b.Y1} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// NormalizedProblem says why b is not a valid normalized box, or "".
func (b Box) NormalizedProblem() string {
	switch {
	case !b.Finite():
		return "has a coordinate that is not a finite number"
	case b.X0 < 0 || b.Y0 < 0 || b.X1 > 1 || b.Y1 > 1:
		return "is outside 0..1"
	case b.X1 <= b.X0 || b.Y1 <= b.Y0:
		return "has no area (need x0 < x1 and y0 < y1)"
	}
	return ""
}

// String formats the box as [x0, y0, x1, y1] with three decimals.
func (b Box) String() string {
	return fmt.Sprintf("[%.3f, %.3f, %.3f, %.3f]", b.X0, b.Y0, b.X1, b.Y1)
}

// MarshalJSON writes the box as [x0, y0, x1, y1], rounded to 4 decimals
// (a tenth of a pixel on a 1000-pixel frame) so results read and diff well.
func (b Box) MarshalJSON() ([]byte, error) {
	return json.Marshal([4]float64{round4(b.X0), round4(b.Y0), round4(b.X1), round4(b.Y1)})
}

// UnmarshalJSON reads [x0, y0, x1, y1].
func (b *Box) UnmarshalJSON(data []byte) error {
	var v []float64
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("a box is [x0, y0, x1, y1]: %w", err)
	}
	if len(v) != 4 {
		return fmt.Errorf("a box is [x0, y0, x1, y1], got %d numbers", len(v))
	}
	*b = Box{v[0], v[1], v[2], v[3]}
	return nil
}

func round4(v float64) float64 { return Round(v, 4) }

// Round rounds v to the given number of decimals: results read and diff
// well, far below any precision that matters to a layout.
func Round(v float64, decimals int) float64 {
	scale := math.Pow10(decimals)
	return math.Round(v*scale) / scale
}
