package layouts

import (
	"math"

	"paliprompt/core"
)

// Config tunes the layout stage. It is the [layout] table of config.toml;
// DefaultConfig gives the defaults, Validate (and New) check it.
type Config struct {
	// MaxObjects caps the objects in a layout; the largest are kept and
	// the rest are reported in Layout.Dropped.
	MaxObjects int `toml:"max_objects"`
	// MinSizePx drops boxes narrower or shorter than this many pixels of
	// the reference image (after clamping to the image).
	MinSizePx float64 `toml:"min_size_px"`
	// MergeIoU merges two objects with the same label whose boxes overlap
	// with an intersection over union above this value (0..1).
	MergeIoU float64 `toml:"merge_iou"`

	// RelationMargin is how far apart, as a fraction of the frame, two
	// centres must be for "left of"/"above" (and their mirrors).
	RelationMargin float64 `toml:"relation_margin"`
	// RelationSpanOverlap is the most two boxes' horizontal (vertical)
	// spans may overlap, as a fraction of the narrower (shorter) span, and
	// still be "left of"/"right of" ("above"/"below").
	RelationSpanOverlap float64 `toml:"relation_span_overlap"`
	// OverlapMin is the least intersection, as a fraction of the smaller
	// box, for "overlaps".
	OverlapMin float64 `toml:"overlap_min"`
	// ContainsMin is the least fraction of the smaller box inside the
	// larger one for "contains".
	ContainsMin float64 `toml:"contains_min"`

	// QuadrantMin is the least share of an object in one quadrant for its
	// sentence to say "in the upper-left quadrant"; below it, the sentence
	// uses the 3x3 grid ("on the left", "in the center").
	QuadrantMin float64 `toml:"quadrant_min"`
	// BackdropArea: objects covering at least this fraction of the frame
	// are treated as the backdrop (farthest) by the depth heuristic.
	BackdropArea float64 `toml:"backdrop_area"`

	// PreviewHeight is the height in pixels of the two panels of the
	// preview PNG (reference and SDXL canvas); the legend adds below.
	PreviewHeight int `toml:"preview_height"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		MaxObjects:          16,
		MinSizePx:           2,
		MergeIoU:            0.7,
		RelationMargin:      0.05,
		RelationSpanOverlap: 0.5,
		OverlapMin:          0.05,
		ContainsMin:         0.9,
		QuadrantMin:         0.7,
		BackdropArea:        0.85,
		PreviewHeight:       640,
	}
}

// maxPreviewHeight keeps a preview at a size a reply can carry.
const maxPreviewHeight = 4096

// Validate reports every invalid field, each under its [layout] key; the
// error is a core.ErrConfig.
func (c Config) Validate() error {
	p := core.NewProblems("layout")
	p.AtLeast("max_objects", c.MaxObjects, 1)
	if math.IsNaN(c.MinSizePx) || c.MinSizePx < 0 {
		p.Add("min_size_px", "%v is not allowed: must be 0 or more", c.MinSizePx)
	}
	p.IntRange("preview_height", c.PreviewHeight, 64, maxPreviewHeight)
	for _, f := range []struct {
		key string
		v   float64
	}{
		{"merge_iou", c.MergeIoU}, {"relation_margin", c.RelationMargin},
		{"relation_span_overlap", c.RelationSpanOverlap}, {"overlap_min", c.OverlapMin},
		{"contains_min", c.ContainsMin}, {"quadrant_min", c.QuadrantMin}, {"backdrop_area", c.BackdropArea},
	} {
		p.FloatRange(f.key, f.v, 0, 1)
	}
	return p.Err()
}
