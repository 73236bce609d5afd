package layouts

import (
	"image"
	"image/color"
	"math"

	"github.com/fogleman/gg"
)

// CanvasPanel is an extra image of the plan the preview shows small,
// in a row under the legends: a conditioning image (edge hint, start
// canvas, ...), so a user sees at a glance what will condition the image.
type CanvasPanel struct {
	Title string
	Image image.Image
}

// panelRow is the height the row of extra panels takes (0 without any):
// thumbnails a third of the panel height, a title line above them.
func panelRow(st previewStyle, c Canvas) float64 {
	if len(c.Panels) == 0 {
		return 0
	}
	return st.line*1.5 + math.Round(float64(st.panelH)/3)
}

// drawPanels draws the extra panels left to right from (x, y), each
// scaled to the row's height (narrower when they would not fit width) as
// the reference is (scaleReference), titles as the preview's (drawText).
func drawPanels(dc *gg.Context, st previewStyle, panels []CanvasPanel, x, y, width float64) {
	if len(panels) == 0 {
		return
	}
	h := math.Round(float64(st.panelH) / 3)
	var total float64
	for _, p := range panels {
		b := p.Image.Bounds()
		total += h*float64(b.Dx())/float64(b.Dy()) + st.margin
	}
	if total > width {
		h *= width / total
	}
	ink := color.RGBA{30, 30, 30, 255}
	for _, p := range panels {
		b := p.Image.Bounds()
		w := math.Max(1, math.Round(h*float64(b.Dx())/float64(b.Dy())))
		drawText(dc, st.bold, ink, p.Title, x, y+st.text, 0, 0)
		thumb := image.NewRGBA(image.Rect(0, 0, int(w), int(math.Max(1, h))))
		scaleReference(thumb, p.Image)
		paste(dc, thumb, int(x), int(y+st.line*1.5))
		x += w + st.margin
	}
}
