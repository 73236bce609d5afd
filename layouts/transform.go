package layouts

import "paliprompt/core"

// transform maps a box (and anything inside it, such as a mask) onto
// another box: the point at fraction (fx, fy) of From lands at fraction
// (fx, fy) of To, or (1-fx, fy) when Flip is set.
type transform struct {
	From, To core.Box
	Flip     bool
}

// apply maps a point of the From frame to the To frame.
func (t transform) apply(x, y float64) (float64, float64) {
	fx := (x - t.From.X0) / t.From.W()
	fy := (y - t.From.Y0) / t.From.H()
	if t.Flip {
		fx = 1 - fx
	}
	return t.To.X0 + fx*t.To.W(), t.To.Y0 + fy*t.To.H()
}

// invert maps a point of the To frame back to the From frame.
func (t transform) invert(x, y float64) (float64, float64) {
	fx := (x - t.To.X0) / t.To.W()
	fy := (y - t.To.Y0) / t.To.H()
	if t.Flip {
		fx = 1 - fx
	}
	return t.From.X0 + fx*t.From.W(), t.From.Y0 + fy*t.From.H()
}

// scaleArea is the factor by which the transform scales areas.
func (t transform) scaleArea() float64 {
	return (t.To.W() * t.To.H()) / (t.From.W() * t.From.H())
}
