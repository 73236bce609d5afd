package layouts

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"paliprompt/internal/par"
	"slices"
	"sync"

	"github.com/fogleman/gg"
	"github.com/golang/freetype/truetype"
	"golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/math/fixed"
)

// Canvas is the SDXL canvas the preview shows beside the reference: the
// chosen bucket's size and its regions. The sdxl stage builds it
// (sdxl.Plan.Canvas); layouts only draws it, so it knows nothing of SDXL.
type Canvas struct {
	Width, Height int
	Regions       []CanvasRegion
	Panels        []CanvasPanel // extra images, drawn small (panels.go)
}

// CanvasRegion is one regional prompt of the canvas.
type CanvasRegion struct {
	Label string
	// Color is the palette index: the object's index in the Layout, -1 for
	// the background (grey).
	Color  int
	Prompt string
	// Mask is Width x Height, white where the region applies; nil draws
	// nothing.
	Mask *image.Gray
	// Bounds holds every non-zero pixel of Mask (the zero rectangle: the
	// whole mask), so the preview paints only there.
	Bounds image.Rectangle
}

// palette holds distinct colours (Sasha Trubetskoy's list of 20), one per
// object index, cycling.
var palette = []color.RGBA{
	{230, 25, 75, 255}, {60, 180, 75, 255}, {0, 130, 200, 255}, {245, 130, 48, 255},
	{145, 30, 180, 255}, {70, 240, 240, 255}, {240, 50, 230, 255}, {210, 245, 60, 255},
	{250, 190, 212, 255}, {0, 128, 128, 255}, {220, 190, 255, 255}, {170, 110, 40, 255},
	{255, 225, 25, 255}, {128, 0, 0, 255}, {170, 255, 195, 255}, {128, 128, 0, 255},
	{255, 215, 180, 255}, {0, 0, 128, 255}, {128, 128, 128, 255}, {255, 250, 200, 255},
}

// backgroundColor marks the background region.
var backgroundColor = color.RGBA{96, 96, 96, 255}

// ObjectColor is the preview colour of an object index (-1: background).
func ObjectColor(i int) color.RGBA {
	if i < 0 {
		return backgroundColor
	}
	return palette[i%len(palette)]
}

var (
	fontsOnce           sync.Once
	regularTTF, boldTTF *truetype.Font
)

// fonts parses the Go fonts once.
func fonts() (*truetype.Font, *truetype.Font) {
	fontsOnce.Do(func() {
		regularTTF, _ = truetype.Parse(goregular.TTF)
		boldTTF, _ = truetype.Parse(gobold.TTF)
	})
	return regularTTF, boldTTF
}

// faces keeps the font faces of each text size between renders: a face
// caches its hinted glyphs, and hinting is most of the text's cost. A
// truetype face is not safe for concurrent use, so each render takes a
// pair out and gives it back. (Not a sync.Pool: that empties itself at
// every garbage collection, and the caches with it.)
var faces struct {
	sync.Mutex
	free map[float64][]*facePair
}

type facePair struct{ regular, bold font.Face }

func takeFaces(size float64) (*facePair, func()) {
	faces.Lock()
	defer faces.Unlock()
	var f *facePair
	if list := faces.free[size]; len(list) > 0 {
		f, faces.free[size] = list[len(list)-1], list[:len(list)-1]
	} else {
		reg, bold := fonts()
		opts := &truetype.Options{Size: size, DPI: 72, Hinting: font.HintingFull, GlyphCacheEntries: 4096}
		f = &facePair{newCachedFace(truetype.NewFace(reg, opts)), newCachedFace(truetype.NewFace(bold, opts))}
	}
	return f, func() {
		faces.Lock()
		defer faces.Unlock()
		if faces.free == nil {
			faces.free = map[float64][]*facePair{}
		}
		faces.free[size] = append(faces.free[size], f)
	}
}

// cachedFace remembers glyph advances: truetype's face caches rendered
// glyphs but hints a glyph again for every advance it is asked, and the
// legend's line breaking asks for every rune.
type cachedFace struct {
	font.Face
	advances map[rune]advance
}

type advance struct {
	x  fixed.Int26_6
	ok bool
}

func newCachedFace(f font.Face) *cachedFace {
	return &cachedFace{Face: f, advances: map[rune]advance{}}
}

func (f *cachedFace) GlyphAdvance(r rune) (fixed.Int26_6, bool) {
	if a, ok := f.advances[r]; ok {
		return a.x, a.ok
	}
	x, ok := f.Face.GlyphAdvance(r)
	f.advances[r] = advance{x, ok}
	return x, ok
}

// previewStyle holds the sizes of one render, derived from its height.
type previewStyle struct {
	panelH  int
	margin  float64
	text    float64 // font size in pixels
	line    float64 // legend line height
	regular font.Face
	bold    font.Face
}

// newPreviewStyle derives a render's sizes; release returns its faces.
func newPreviewStyle(h int) (st previewStyle, release func()) {
	size := math.Max(11, float64(h)/46)
	f, release := takeFaces(size)
	return previewStyle{
		panelH: h, margin: math.Round(size * 1.2), text: size, line: math.Round(size * 1.45),
		regular: f.regular, bold: f.bold,
	}, release
}

// Preview renders the layout preview: on the left the reference image
// (ref; nil draws a grey placeholder of its size) with the quadrant lines,
// the 3x3 grid, each object's mask, box and label in its colour; on the
// right the SDXL canvas at the bucket's aspect with each region's mask in
// its colour; under each panel its legend (objects; region prompts).
func (p *Planner) Preview(ref image.Image, l Layout, c Canvas) *image.RGBA {
	st, release := newPreviewStyle(p.cfg.PreviewHeight)
	defer release()
	refW, refH := panelSize(l.Width, l.Height, st.panelH)
	canW, canH := panelSize(c.Width, c.Height, st.panelH)

	dcMeasure := gg.NewContext(1, 1)
	dcMeasure.SetFontFace(st.regular)
	refLegend := objectLegend(dcMeasure, l, float64(refW)-st.line)
	canLegend := regionLegend(dcMeasure, c, float64(canW)-st.line)
	legendLines := max(countLines(refLegend), countLines(canLegend))

	m := st.margin
	header := st.line * 1.6
	totalW := int(m*3) + refW + canW
	totalH := int(m*2+header+st.line*0.5) + st.panelH + int(float64(legendLines)*st.line) + int(panelRow(st, c))
	dc := gg.NewContext(totalW, totalH)
	dc.SetRGB255(250, 250, 248)
	dc.Clear()

	refX, canX, top := m, m*2+float64(refW), m+header
	paste(dc, referencePanel(ref, l, refW, refH), int(refX), int(top))
	drawReferenceMarks(dc, st, l, refX, top, float64(refW), float64(refH))
	paste(dc, canvasPanel(c, canW, canH), int(canX), int(top))
	drawCanvasMarks(dc, st, c, canX, top, float64(canW), float64(canH))

	ink := color.RGBA{30, 30, 30, 255}
	drawText(dc, st.bold, ink, referenceTitle(l, ref == nil), refX, m+st.text, 0, 0)
	drawText(dc, st.bold, ink, fmt.Sprintf("SDXL canvas %dx%d, %d regions", c.Width, c.Height, len(c.Regions)), canX, m+st.text, 0, 0)
	legendTop := top + float64(st.panelH) + st.line*0.5
	drawLegend(dc, st, refLegend, refX, legendTop)
	drawLegend(dc, st, canLegend, canX, legendTop)
	drawPanels(dc, st, c.Panels, refX, legendTop+float64(legendLines)*st.line, float64(totalW)-2*m)
	return dc.Image().(*image.RGBA)
}

// drawText draws s with its baseline at (x, y) less ax of its width and
// plus ay of the face's height (gg's DrawStringAnchored), straight onto
// the image with font.Drawer: gg draws every glyph through an affine
// transform, several times slower, for rotations the preview never uses.
func drawText(dc *gg.Context, face font.Face, c color.Color, s string, x, y, ax, ay float64) {
	d := &font.Drawer{Dst: dc.Image().(*image.RGBA), Src: image.NewUniform(c), Face: face}
	w := float64(d.MeasureString(s)) / 64
	h := float64(face.Metrics().Height) / 64
	d.Dot = fixed.Point26_6{X: fixed.Int26_6((x - ax*w) * 64), Y: fixed.Int26_6((y + ay*h) * 64)}
	d.DrawString(s)
}

// paste copies a panel onto the context's image at (x, y). (gg's
// DrawImage resamples through an affine transform even for a plain copy.)
func paste(dc *gg.Context, panel *image.RGBA, x, y int) {
	dst := dc.Image().(*image.RGBA)
	draw.Draw(dst, panel.Bounds().Add(image.Pt(x, y)), panel, image.Point{}, draw.Src)
}

func referenceTitle(l Layout, missing bool) string {
	s := fmt.Sprintf("reference %dx%d, %d objects", l.Width, l.Height, len(l.Objects))
	if l.Mirrored {
		s += ", mirrored"
	}
	if missing {
		s += " (image not available)"
	}
	return s
}

// panelSize scales a w x h frame to a panel h pixels tall, at most twice
// as wide as tall (panoramas get shorter instead).
func panelSize(w, h, panelH int) (int, int) {
	if w <= 0 || h <= 0 {
		return panelH, panelH
	}
	pw := int(math.Round(float64(panelH) * float64(w) / float64(h)))
	if pw > 2*panelH {
		return 2 * panelH, max(1, int(math.Round(float64(2*panelH)*float64(h)/float64(w))))
	}
	return max(pw, 1), panelH
}

// referencePanel draws the reference image scaled to the panel with each
// object's mask tinted in its colour (45% at full mask).
func referencePanel(ref image.Image, l Layout, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	if ref == nil {
		draw.Draw(img, img.Bounds(), image.NewUniform(color.RGBA{200, 200, 200, 255}), image.Point{}, draw.Src)
	} else {
		scaleReference(img, ref)
	}
	for i := range l.Objects {
		tint(img, l.Objects[i].MaskRaster(w, h, OnReference), ObjectColor(i), 0.45)
	}
	return img
}

// tint blends colour c over img where mask is set, alpha*mask.
func tint(img *image.RGBA, mask *image.Gray, c color.RGBA, alpha float64) {
	if mask == nil {
		return
	}
	// Blend weights in 1/65536 for each mask value: integer arithmetic
	// with the rounding of the float formula.
	var weight [256]uint32
	for v := range weight {
		weight[v] = uint32(math.Round(alpha * float64(v) / 255 * 65536))
	}
	col := [3]uint32{uint32(c.R), uint32(c.G), uint32(c.B)}
	for i, v := range mask.Pix {
		if v == 0 {
			continue
		}
		a := weight[v]
		px := img.Pix[i*4 : i*4+3]
		for k := range px {
			px[k] = uint8((uint32(px[k])*(65536-a) + col[k]*a + 1<<15) >> 16)
		}
	}
}

// canvasPanel paints the canvas regions: each pixel is the mask-weighted
// sum of the region colours over black (the masks of a plan sum to 1).
func canvasPanel(c Canvas, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	acc := make([]uint32, w*h*3)
	for _, r := range c.Regions {
		if r.Mask == nil {
			continue
		}
		col := ObjectColor(r.Color)
		rgb := [3]uint32{uint32(col.R), uint32(col.G), uint32(col.B)}
		mb := r.Mask.Bounds()
		set := r.Bounds
		if set == (image.Rectangle{}) {
			set = mb
		}
		xs := make([]int, w) // the mask column each panel column shows
		for x := range xs {
			xs[x] = mb.Min.X + min(x*mb.Dx()/w, mb.Dx()-1)
		}
		x0, x1 := showing(xs, set.Min.X, set.Max.X)
		par.Rows(h, func(y0, y1 int) {
			for y := y0; y < y1; y++ {
				my := mb.Min.Y + min(y*mb.Dy()/h, mb.Dy()-1)
				if my < set.Min.Y || my >= set.Max.Y {
					continue
				}
				row := r.Mask.Pix[(my-mb.Min.Y)*r.Mask.Stride:]
				out := acc[y*w*3:]
				for x := x0; x < x1; x++ {
					if v := uint32(row[xs[x]-mb.Min.X]); v != 0 {
						out[3*x] += v * rgb[0]
						out[3*x+1] += v * rgb[1]
						out[3*x+2] += v * rgb[2]
					}
				}
			}
		})
	}
	for i := 0; i < w*h; i++ {
		for k := range 3 {
			img.Pix[i*4+k] = uint8(min((acc[i*3+k]+127)/255, 255))
		}
		img.Pix[i*4+3] = 255
	}
	return img
}

// showing is the range of panel columns whose mask column (xs, rising)
// lies in [lo, hi).
func showing(xs []int, lo, hi int) (int, int) {
	a, _ := slices.BinarySearch(xs, lo)
	b, _ := slices.BinarySearch(xs, hi)
	return a, b
}

// drawReferenceMarks draws the grid, quadrant lines, boxes and labels on
// the reference panel at (x, y), size w x h.
func drawReferenceMarks(dc *gg.Context, st previewStyle, l Layout, x, y, w, h float64) {
	drawGrid(dc, x, y, w, h)
	dc.SetFontFace(st.bold)
	for i, o := range l.Objects {
		b := o.Box // the reference shows where the object was found
		drawTaggedBox(dc, st, ObjectColor(i), fmt.Sprintf("%d %s", i, o.Label),
			x+b.X0*w, y+b.Y0*h, b.W()*w, b.H()*h)
	}
}

// drawCanvasMarks draws the grid and each region's name at its mask's
// centre on the canvas panel.
func drawCanvasMarks(dc *gg.Context, st previewStyle, c Canvas, x, y, w, h float64) {
	drawGrid(dc, x, y, w, h)
	dc.SetFontFace(st.bold)
	for _, r := range c.Regions {
		cx, cy, ok := labelPoint(r.Mask)
		if !ok {
			continue
		}
		name := r.Label
		if r.Color >= 0 {
			name = fmt.Sprintf("%d %s", r.Color, r.Label)
		}
		drawTag(dc, st, ObjectColor(r.Color), name, x+cx*w, y+cy*h, 0.5, [4]float64{x, y, x + w, y + h})
	}
}

// drawGrid draws the 3x3 grid (thin, dashed) and the quadrant lines
// (solid), each white over a dark shadow so they read on any image.
func drawGrid(dc *gg.Context, x, y, w, h float64) {
	line := func(x0, y0, x1, y1, width float64, dash bool) {
		for _, pass := range []struct {
			gray  float64
			width float64
		}{{0, width + 2}, {1, width}} {
			if dash {
				dc.SetDash(7, 5)
			} else {
				dc.SetDash()
			}
			dc.SetRGBA(pass.gray, pass.gray, pass.gray, 0.75)
			dc.SetLineWidth(pass.width)
			dc.DrawLine(x0, y0, x1, y1)
			dc.Stroke()
		}
	}
	for _, f := range gridLines() {
		line(x+f*w, y, x+f*w, y+h, 1, true)
		line(x, y+f*h, x+w, y+f*h, 1, true)
	}
	xs, ys := quadrantLines()
	for _, f := range xs {
		line(x+f*w, y, x+f*w, y+h, 2, false)
	}
	for _, f := range ys {
		line(x, y+f*h, x+w, y+f*h, 2, false)
	}
	dc.SetDash()
	dc.SetRGB255(40, 40, 40)
	dc.SetLineWidth(1)
	dc.DrawRectangle(x+0.5, y+0.5, w-1, h-1)
	dc.Stroke()
}

// drawTaggedBox strokes a box and puts its tag on the top-left corner.
func drawTaggedBox(dc *gg.Context, st previewStyle, c color.RGBA, tag string, x, y, w, h float64) {
	dc.SetColor(c)
	dc.SetLineWidth(3)
	dc.DrawRectangle(x, y, w, h)
	dc.Stroke()
	drawTag(dc, st, c, tag, x, y, 0, [4]float64{x, y, x + w, y + h})
}

// drawTag draws text on a filled label of colour c, anchored at (x, y):
// ax 0 puts the label's top-left there, 0.5 centres it; the label is
// kept inside within (x0, y0, x1, y1) where it fits.
func drawTag(dc *gg.Context, st previewStyle, c color.RGBA, text string, x, y, ax float64, within [4]float64) {
	tw, _ := dc.MeasureString(text)
	pad := st.text * 0.3
	bw, bh := tw+2*pad, st.text*1.35
	bx := math.Max(within[0], math.Min(x-ax*bw, within[2]-bw))
	by := math.Max(within[1], math.Min(y-ax*bh, within[3]-bh))
	dc.SetColor(c)
	dc.DrawRectangle(bx, by, bw, bh)
	dc.Fill()
	drawText(dc, st.bold, textOn(c), text, bx+pad, by+bh/2, 0, 0.35)
}

// textOn picks black or white text for a background colour.
func textOn(c color.RGBA) color.Color {
	if 0.299*float64(c.R)+0.587*float64(c.G)+0.114*float64(c.B) > 150 {
		return color.Black
	}
	return color.White
}

// labelPoint is where a region's name goes: the weighted centre of its
// mask, or, when the mask is weak there (a crescent, the background
// around an object), the strong mask point nearest to that centre.
// Normalized; ok is false for an empty mask.
func labelPoint(m *image.Gray) (float64, float64, bool) {
	if m == nil {
		return 0, 0, false
	}
	b := m.Bounds()
	at := func(x, y int) float64 { return float64(m.Pix[y*m.Stride+x]) }
	step := max(1, b.Dx()/128)
	var sx, sy, sw float64
	for y := 0; y < b.Dy(); y += step {
		for x := 0; x < b.Dx(); x += step {
			v := at(x, y)
			sx, sy, sw = sx+v*float64(x), sy+v*float64(y), sw+v
		}
	}
	if sw == 0 {
		return 0, 0, false
	}
	cx, cy := sx/sw, sy/sw
	if at(int(cx), int(cy)) < 128 {
		best := math.Inf(1)
		for y := 0; y < b.Dy(); y += step {
			for x := 0; x < b.Dx(); x += step {
				if d := math.Hypot(float64(x)-cx, float64(y)-cy); at(x, y) >= 192 && d < best {
					best, cx, cy = d, float64(x), float64(y)
				}
			}
		}
	}
	return (cx + 0.5) / float64(b.Dx()), (cy + 0.5) / float64(b.Dy()), true
}

// legendEntry is one swatch and its wrapped text lines.
type legendEntry struct {
	color color.RGBA
	lines []string
}

func objectLegend(dc *gg.Context, l Layout, width float64) []legendEntry {
	var out []legendEntry
	for i, o := range l.Objects {
		text := fmt.Sprintf("%d %s: %s, %.0f%% of the frame, depth %d", i, o.Label, o.Location, o.Area*100, o.Depth)
		if o.Moved {
			text += ", moved"
		}
		out = append(out, legendEntry{ObjectColor(i), dc.WordWrap(text, width)})
	}
	for _, c := range l.Conflicts {
		out = append(out, legendEntry{color.RGBA{200, 0, 0, 255}, dc.WordWrap("conflict: "+c.Reason, width)})
	}
	return out
}

func regionLegend(dc *gg.Context, c Canvas, width float64) []legendEntry {
	var out []legendEntry
	for _, r := range c.Regions {
		name := r.Label
		if r.Color >= 0 {
			name = fmt.Sprintf("%d %s", r.Color, r.Label)
		}
		out = append(out, legendEntry{ObjectColor(r.Color), dc.WordWrap(name+": "+r.Prompt, width)})
	}
	return out
}

func countLines(entries []legendEntry) int {
	n := 0
	for _, e := range entries {
		n += len(e.lines)
	}
	return n
}

// drawLegend draws entries with a colour swatch before each.
func drawLegend(dc *gg.Context, st previewStyle, entries []legendEntry, x, y float64) {
	dc.SetFontFace(st.regular)
	sw := st.text * 0.8
	for _, e := range entries {
		dc.SetColor(e.color)
		dc.DrawRectangle(x, y+(st.line-sw)/2, sw, sw)
		dc.Fill()
		for _, line := range e.lines {
			drawText(dc, st.regular, color.RGBA{30, 30, 30, 255}, line, x+st.line, y+st.line/2, 0, 0.35)
			y += st.line
		}
	}
}
