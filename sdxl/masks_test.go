package sdxl

import (
	"image"
	"testing"

	"paliprompt/core"
)

func TestFeatheredBox(t *testing.T) {
	b := core.Box{X0: 0.25, Y0: 0.25, X1: 0.75, Y1: 0.75} // 25..75 px of 100
	tests := []struct {
		feather float64
		x, y    int
		want    uint8
	}{
		{0, 50, 50, 255}, {0, 24, 50, 0}, {0, 25, 50, 255}, {0, 75, 50, 0},
		{10, 50, 50, 255}, {10, 30, 50, 255}, {10, 25, 50, 140}, {10, 24, 50, 115}, {10, 19, 50, 0},
		{10, 25, 25, 140}, {10, 74, 50, 140},
	}
	edge, _ := featheredBox(core.Box{X0: 0, Y0: 0, X1: 0.5, Y1: 1}, 100, 100, 10)
	if got := edge.GrayAt(0, 99).Y; got != 255 {
		t.Errorf("a box on the frame border is feathered there: %d", got)
	}
	for _, tt := range tests {
		g, _ := featheredBox(b, 100, 100, tt.feather)
		if got := g.GrayAt(tt.x, tt.y).Y; got != tt.want {
			t.Errorf("feather %v at (%d,%d) = %d, want %d", tt.feather, tt.x, tt.y, got, tt.want)
		}
	}
}

func TestResolveMasksSumToWhite(t *testing.T) {
	l := layoutOf(t, livingRoom(), "")
	for _, policy := range []string{OverlapDepth, OverlapAverage} {
		t.Run(policy, func(t *testing.T) {
			c := newComposer(t, func(c *Config) { c.Overlap = policy }, nil)
			own := make([]*image.Gray, len(l.Objects))
			bounds := make([]image.Rectangle, len(l.Objects))
			for i := range l.Objects {
				own[i], bounds[i] = c.objectRaster(&l.Objects[i], 288, 224)
			}
			regions, bg := c.resolveMasks(l.Objects, own, bounds, 288, 224)
			for p := range bg.Pix {
				sum := int(bg.Pix[p])
				for _, r := range regions {
					sum += int(r.Pix[p])
				}
				if sum != 255 {
					t.Fatalf("pixel %d sums to %d", p, sum)
				}
			}
			// Where the cat (depth 1) and the sofa overlap: the cat wins
			// under depth, they share under average.
			cat, sofa := regions[0].GrayAt(67, 78).Y, regions[1].GrayAt(67, 78).Y
			if policy == OverlapDepth && (cat != 255 || sofa != 0) {
				t.Errorf("depth: cat %d sofa %d, want 255 and 0", cat, sofa)
			}
			// The sofa's feathered edge is at 0.85 there: 1/1.85 and 0.85/1.85.
			if policy == OverlapAverage && (cat < 135 || cat > 141 || sofa < 114 || sofa > 120) {
				t.Errorf("average: cat %d sofa %d, want about 138 and 117", cat, sofa)
			}
		})
	}
}
