package layouts

// The maps between the target canvas and the reference image, for stages
// that carry pixels of the reference onto the canvas (sdxl's hints): a
// point of an object's placed box comes from the matching point of its
// box on the reference, and what no object covers comes from the same
// place, mirrored with the layout.

// ReferencePoint maps a point of the target canvas (normalized) to the
// reference image (normalized) through the object's placement: the
// inverse of the move, resize and mirror that took its box to Placed.
func (o *Object) ReferencePoint(u, v float64) (float64, float64) {
	return o.toCanvas.invert(u, v)
}

// SoftMaskAt is the object's soft mask at a point of the reference
// image (normalized): clip(v*0.5+0.5) of its segmentation mask, sampled
// bilinearly, where it has one; else 1 inside its box and 0 outside.
func (o *Object) SoftMaskAt(u, v float64) float64 {
	if o.mask == nil {
		if u >= o.Box.X0 && u < o.Box.X1 && v >= o.Box.Y0 && v < o.Box.Y1 {
			return 1
		}
		return 0
	}
	return float64(softValue(o.sample(tapAt(u*float64(o.refW)-0.5), tapAt(v*float64(o.refH)-0.5))))
}

// BackgroundPoint maps a point of the target canvas (normalized) to the
// reference for the background: the same point, mirrored when the layout
// is mirrored.
func (l Layout) BackgroundPoint(u, v float64) (float64, float64) {
	if l.Mirrored {
		return 1 - u, v
	}
	return u, v
}
