package layouts

import (
	"math"
	"testing"

	"paliprompt/core"
)

func TestQuadrantOf(t *testing.T) {
	tests := []struct {
		name string
		x, y float64
		want string
	}{
		{"top-left", 0.2, 0.2, TopLeft},
		{"top-right", 0.8, 0.1, TopRight},
		{"bottom-left", 0.1, 0.9, BottomLeft},
		{"bottom-right", 0.9, 0.9, BottomRight},
		{"on the vertical line goes right", 0.5, 0.2, TopRight},
		{"on the horizontal line goes down", 0.2, 0.5, BottomLeft},
		{"on both lines", 0.5, 0.5, BottomRight},
		{"corner", 0, 0, TopLeft},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := QuadrantAt(tt.x, tt.y); got != tt.want {
				t.Errorf("QuadrantAt(%v, %v) = %s, want %s", tt.x, tt.y, got, tt.want)
			}
		})
	}
}

func TestBoxShares(t *testing.T) {
	tests := []struct {
		name string
		box  core.Box
		want QuadrantShares
	}{
		{"inside one quadrant", core.Box{X0: 0.1, Y0: 0.1, X1: 0.3, Y1: 0.3}, QuadrantShares{1, 0, 0, 0}},
		{"full frame", core.Box{X0: 0, Y0: 0, X1: 1, Y1: 1}, QuadrantShares{0.25, 0.25, 0.25, 0.25}},
		{"straddles the vertical line", core.Box{X0: 0.4, Y0: 0.1, X1: 0.6, Y1: 0.3}, QuadrantShares{0.5, 0.5, 0, 0}},
		{"edge on the line stays in one", core.Box{X0: 0.5, Y0: 0.5, X1: 0.7, Y1: 0.9}, QuadrantShares{0, 0, 0, 1}},
		{"three quarters left", core.Box{X0: 0.2, Y0: 0.6, X1: 0.6, Y1: 0.8}, QuadrantShares{0, 0, 0.75, 0.25}},
		{"zero area goes by centre", core.Box{X0: 0.7, Y0: 0.2, X1: 0.7, Y1: 0.2}, QuadrantShares{0, 1, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := boxShares(tt.box).normalize(); got != tt.want {
				t.Errorf("boxShares(%v) = %+v, want %+v", tt.box, got, tt.want)
			}
		})
	}
}

func TestCellAndOmost(t *testing.T) {
	tests := []struct {
		name string
		box  core.Box
		cell string
		want OmostPlace
	}{
		{"full frame", core.Box{X0: 0, Y0: 0, X1: 1, Y1: 1}, "center",
			OmostPlace{"in the center", "no offset", "a large square area"}},
		{"small top-left", core.Box{X0: 0, Y0: 0, X1: 0.1, Y1: 0.1}, "top-left",
			OmostPlace{"on the top-left", "slightly to the upper-left", "a small square area"}},
		{"tall right", core.Box{X0: 0.7, Y0: 0.1, X1: 0.9, Y1: 0.9}, "right",
			OmostPlace{"on the right", "no offset", "a small vertical area"}},
		{"right edge", core.Box{X0: 0.9, Y0: 0.4, X1: 1, Y1: 0.6}, "right",
			OmostPlace{"on the right", "slightly to the right", "a small vertical area"}},
		{"wide bottom band", core.Box{X0: 0, Y0: 0.7, X1: 1, Y1: 1}, "bottom",
			OmostPlace{"on the bottom", "no offset", "a small horizontal area"}},
		{"medium lower half", core.Box{X0: 0, Y0: 0.5, X1: 1, Y1: 1}, "bottom",
			OmostPlace{"on the bottom", "slightly to the upper", "a medium-sized horizontal area"}},
		{"centre on a grid line goes right", core.Box{X0: 0, Y0: 0.4, X1: 2.0 / 3, Y1: 0.6}, "center",
			OmostPlace{"in the center", "slightly to the left", "a small horizontal area"}},
		{"large horizontal", core.Box{X0: 0, Y0: 0.15, X1: 1, Y1: 0.85}, "center",
			OmostPlace{"in the center", "no offset", "a large horizontal area"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, y := tt.box.Center()
			if got := cellOf(x, y).Name; got != tt.cell {
				t.Errorf("cell = %s, want %s", got, tt.cell)
			}
			if got := omostPlace(tt.box); got != tt.want {
				t.Errorf("omostPlace(%v) = %+v, want %+v", tt.box, got, tt.want)
			}
		})
	}
}

func TestAreaPhrase(t *testing.T) {
	tests := []struct {
		f    float64
		want string
	}{
		{0, "a small part of the frame"},
		{0.01, "a small part of the frame"},
		{0.1, "about a tenth of the frame"},
		{0.26, "about a quarter of the frame"},
		{0.34, "about a third of the frame"},
		{0.52, "about half of the frame"},
		{0.93, "most of the frame"},
		{1, "the whole frame"},
	}
	for _, tt := range tests {
		if got := areaPhrase(tt.f); got != tt.want {
			t.Errorf("areaPhrase(%v) = %q, want %q", tt.f, got, tt.want)
		}
	}
}

func TestBoxGeometry(t *testing.T) {
	a, b := core.Box{X0: 0, Y0: 0, X1: 2, Y1: 2}, core.Box{X0: 1, Y0: 1, X1: 3, Y1: 3}
	if got := a.IoU(b); math.Abs(got-1.0/7) > 1e-12 {
		t.Errorf("IoU = %v, want 1/7", got)
	}
	if got := a.IoU(core.Box{X0: 5, Y0: 5, X1: 6, Y1: 6}); got != 0 {
		t.Errorf("IoU of disjoint boxes = %v", got)
	}
	if got := (core.Box{X0: 0.5, Y0: 0.5, X1: 0.5, Y1: 0.9}).IoU(core.Box{X0: 0.5, Y0: 0.5, X1: 0.5, Y1: 0.9}); got != 0 {
		t.Errorf("IoU of zero-area boxes = %v, want 0", got)
	}
	if got := (core.Box{X0: 0.1, Y0: 0.2, X1: 0.4, Y1: 0.5}).Mirror(); got != (core.Box{X0: 0.6, Y0: 0.2, X1: 0.9, Y1: 0.5}) {
		t.Errorf("Mirror = %v", got)
	}
	tr := transform{From: core.Box{X0: 0.1, Y0: 0.1, X1: 0.3, Y1: 0.5}, To: core.Box{X0: 0.5, Y0: 0, X1: 0.9, Y1: 0.8}, Flip: true}
	x, y := tr.apply(0.1, 0.1)
	if x != 0.9 || y != 0 {
		t.Errorf("flipped transform maps the top-left corner to (%v, %v), want (0.9, 0)", x, y)
	}
	if bx, by := tr.invert(x, y); math.Abs(bx-0.1) > 1e-12 || math.Abs(by-0.1) > 1e-12 {
		t.Errorf("invert(apply(p)) = (%v, %v)", bx, by)
	}
}
