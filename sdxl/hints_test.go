package sdxl

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/disintegration/imaging"

	"paliprompt/core"
	"paliprompt/internal/heldout"
	"paliprompt/layouts"
	"paliprompt/layouts/layoutstest"
)

// heldoutDir holds the demo model's held-out scenes with their truth.
const heldoutDir = "../testdata/demo-heldout"

// loadScene loads held-out scene n as a grounding result whose objects
// carry their true masks (raw +1 inside, -1 outside), the reference
// image and the object-index map.
func loadScene(t testing.TB, n int) (core.Result, image.Image, *image.Gray, heldout.Scene) {
	t.Helper()
	scenes, err := heldout.Load(heldoutDir)
	if err != nil {
		t.Fatal(err)
	}
	sc := scenes[n]
	imgData, err := os.ReadFile(filepath.Join(heldoutDir, sc.Image))
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(imgData))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := heldout.Labels(heldoutDir, sc)
	if err != nil {
		t.Fatal(err)
	}
	res := core.Result{Width: sc.Width, Height: sc.Height, Caption: sc.Caption}
	for _, o := range sc.Objects {
		r := image.Rect(int(o.Box[0]), int(o.Box[1]), int(math.Ceil(o.Box[2])), int(math.Ceil(o.Box[3])))
		m := &core.Mask{Rect: r, Values: make([]float32, r.Dx()*r.Dy())}
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				v := float32(-1)
				if ids.GrayAt(x, y).Y == o.MaskValue {
					v = 1
				}
				m.Values[(y-r.Min.Y)*r.Dx()+x-r.Min.X] = v
			}
		}
		res.Objects = append(res.Objects, core.Object{Label: o.Name, Source: core.TaskSegment, Mask: m,
			Box: core.Box{X0: o.Box[0], Y0: o.Box[1], X1: o.Box[2], Y1: o.Box[3]}})
	}
	return res, img, ids, sc
}

// demoColours reads the named colours of the demo scenes from the tool
// that draws them (tools/demo_scenes.py COLOURS), so the table lives in
// one place.
func demoColours(t testing.TB) map[string]color.RGBA {
	t.Helper()
	src, err := os.ReadFile("../tools/demo_scenes.py")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]color.RGBA{}
	for _, m := range regexp.MustCompile(`"(\w+)": \((\d+), (\d+), (\d+)\)`).FindAllStringSubmatch(string(src), -1) {
		c := [3]uint8{}
		for i := range c {
			v, _ := strconv.Atoi(m[i+2])
			c[i] = uint8(v)
		}
		out[m[1]] = color.RGBA{c[0], c[1], c[2], 255}
	}
	if len(out) < 6 {
		t.Fatalf("found %d colours in tools/demo_scenes.py", len(out))
	}
	return out
}

func on(b bool) *bool { return &b }

// allHints asks for every hint.
var allHints = &HintRequest{Edges: on(true), Segmentation: on(true), StartCanvas: on(true), Crops: on(true)}

// outline marks the canvas pixels (w x h) on the border of object id in
// the index map: pixels whose 4-neighbours include another value.
func outline(ids *image.Gray, id, w, h int) []bool {
	b := ids.Bounds()
	at := func(x, y int) bool {
		x, y = min(max(x, 0), b.Dx()-1), min(max(y, 0), b.Dy()-1)
		return int(ids.Pix[y*ids.Stride+x]) == id
	}
	out := make([]bool, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			rx, ry := (x*b.Dx())/w, (y*b.Dy())/h
			c := at(rx, ry)
			out[y*w+x] = c != at(rx+1, ry) || c != at(rx, ry+1) || c != at(rx-1, ry) || c != at(rx, ry-1)
		}
	}
	return out
}

// near reports, for each pixel, whether a marked pixel is within r.
func nearMarked(marks []bool, w, h, r int) []bool {
	return dilate(marks, w, h, r, image.Rect(0, 0, w, h))
}

func TestEdgeHintFollowsOutlines(t *testing.T) {
	c := newComposer(t, nil, nil)
	for n := range 8 {
		res, img, ids, sc := loadScene(t, n)
		p := compose(t, c, layoutOf(t, res, ""), Request{Reference: img, Hints: &HintRequest{Edges: on(true)}})
		edges := p.Hints.Edges.image.(*image.Gray)
		w, h := p.Width, p.Height
		borders := make([]bool, w*h)
		for _, o := range sc.Objects {
			for i, v := range outline(ids, int(o.MaskValue), w, h) {
				borders[i] = borders[i] || v
			}
		}
		close3, close8 := nearMarked(borders, w, h, 3), nearMarked(borders, w, h, 8)
		var onOutline, edgeCount, flatEdges, flat, found, total int
		edgeNear := nearMarked(pixelsOn(edges), w, h, 2)
		for i, v := range edges.Pix {
			if v != 0 {
				edgeCount++
				if close3[i] {
					onOutline++
				}
			}
			if !close8[i] {
				flat++
				if v != 0 {
					flatEdges++
				}
			}
			if borders[i] {
				total++
				if edgeNear[i] {
					found++
				}
			}
		}
		t.Logf("scene %d: %d edge pixels, %.3f on outlines, %.4f of flat pixels are edges, %.3f of the outline found",
			n, edgeCount, frac(onOutline, edgeCount), frac(flatEdges, flat), frac(found, total))
		if frac(onOutline, edgeCount) < 0.9 || frac(flatEdges, flat) > 0.005 || frac(found, total) < 0.8 {
			t.Errorf("scene %d: edges %.3f on outlines, %.4f in flat areas, %.3f of outlines found", n,
				frac(onOutline, edgeCount), frac(flatEdges, flat), frac(found, total))
		}
	}
}

func pixelsOn(g *image.Gray) []bool {
	out := make([]bool, len(g.Pix))
	for i, v := range g.Pix {
		out[i] = v != 0
	}
	return out
}

func frac(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// TestEdgeHintMovesWithObject: after a placement override the moved
// object's edges lie in its new box, centred like it, and its old place
// is empty.
func TestEdgeHintMovesWithObject(t *testing.T) {
	c := newComposer(t, nil, nil)
	res, img, _, _ := loadScene(t, 0) // a red square top-left, a green triangle below it
	req := Request{Reference: img, Hints: &HintRequest{Edges: on(true)}}
	before := compose(t, c, layoutOf(t, res, ""), req)
	l := layoutOf(t, res, "0=[0.55, 0.5, 0.95, 0.9]")
	after := compose(t, c, l, req)
	old, moved := l.Objects[0].Box, l.Objects[0].Placed
	edgesIn := func(p Plan, b core.Box) (int, float64, float64) {
		g := p.Hints.Edges.image.(*image.Gray)
		x0, x1 := spanPx(b.X0, b.X1, p.Width, 0)
		y0, y1 := spanPx(b.Y0, b.Y1, p.Height, 0)
		n, sx, sy := 0, 0.0, 0.0
		for y := y0; y < y1; y++ {
			for x := x0; x < x1; x++ {
				if g.Pix[y*p.Width+x] != 0 {
					n, sx, sy = n+1, sx+float64(x), sy+float64(y)
				}
			}
		}
		if n == 0 {
			return 0, 0, 0
		}
		return n, (sx/float64(n) + 0.5) / float64(p.Width), (sy/float64(n) + 0.5) / float64(p.Height)
	}
	nBefore, bx, by := edgesIn(before, old)
	nOld, _, _ := edgesIn(after, old)
	nNew, cx, cy := edgesIn(after, moved)
	// The edges keep their place relative to the box.
	relBefore := [2]float64{(bx - old.X0) / old.W(), (by - old.Y0) / old.H()}
	relAfter := [2]float64{(cx - moved.X0) / moved.W(), (cy - moved.Y0) / moved.H()}
	t.Logf("%s: edges in the old box: %d before, %d after; in the new box %d; centroid at %.3f of the box before, %.3f after",
		l.Objects[0].Label, nBefore, nOld, nNew, relBefore, relAfter)
	if nOld > nBefore/50 || float64(nNew) < 0.8*float64(nBefore)*moved.W()/old.W() ||
		math.Abs(relAfter[0]-relBefore[0]) > 0.03 || math.Abs(relAfter[1]-relBefore[1]) > 0.03 {
		t.Errorf("moved object's edges: %d left in the old box (of %d), %d in the new one, centroid at %.3f of the box, was %.3f",
			nOld, nBefore, nNew, relAfter, relBefore)
	}
}

func TestEdgeHintMirrors(t *testing.T) {
	c := newComposer(t, nil, nil)
	res, img, _, _ := loadScene(t, 1)
	req := Request{Reference: img, Hints: &HintRequest{Edges: on(true), Segmentation: on(true)}}
	plain := compose(t, c, layoutOf(t, res, ""), req)
	mirrored := compose(t, c, layoutOf(t, res, "mirror"), req)
	for _, kind := range []string{"edges", "segmentation"} {
		a, b := hintGray(plain, kind), hintGray(mirrored, kind)
		w, h := plain.Width, plain.Height
		same, on := 0, 0
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				va, vb := a(x, y), b(w-1-x, y)
				if va != 0 || vb != 0 {
					on++
					if va == vb {
						same++
					}
				}
			}
		}
		t.Logf("%s: %.4f of the marked pixels match their mirror", kind, frac(same, on))
		if frac(same, on) < 0.97 {
			t.Errorf("mirrored %s hint matches the mirrored plain one at %.3f of its pixels", kind, frac(same, on))
		}
	}
}

// hintGray reads a hint as a function of the pixel: the edge value, or
// the segmentation colour as one number.
func hintGray(p Plan, kind string) func(x, y int) uint32 {
	if kind == "edges" {
		g := p.Hints.Edges.image.(*image.Gray)
		return func(x, y int) uint32 { return uint32(g.Pix[y*g.Stride+x]) }
	}
	img := p.Hints.Segmentation.image
	return func(x, y int) uint32 {
		r, g, b, _ := img.At(x, y).RGBA()
		return r>>8<<16 | g>>8<<8 | b>>8
	}
}

func TestStartCanvasColours(t *testing.T) {
	c := newComposer(t, nil, nil)
	colours := demoColours(t)
	checked := 0
	for n := range 10 {
		res, img, ids, sc := loadScene(t, n)
		p := compose(t, c, layoutOf(t, res, ""), Request{Reference: img, Hints: &HintRequest{StartCanvas: on(true)}})
		canvas := p.Hints.StartCanvas.image.(*image.NRGBA)
		w, h := p.Width, p.Height
		// Inside each shape, away from its edge (beyond the blur), the
		// canvas is the shape's colour.
		inside := func(id int) []bool {
			m := make([]bool, w*h)
			b := ids.Bounds()
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					m[y*w+x] = int(ids.Pix[(y*b.Dy()/h)*ids.Stride+x*b.Dx()/w]) != id
				}
			}
			grown := nearMarked(m, w, h, int(1.5*c.cfg.Hints.StartBlur))
			for i := range grown {
				grown[i] = !grown[i]
			}
			return grown
		}
		for _, o := range sc.Objects {
			got, ok := meanColour(canvas, inside(int(o.MaskValue)))
			if !ok {
				continue // too small to have a core beyond the blur
			}
			checked++
			if d := colourDistance(got, colours[o.Colour]); d > 30 {
				t.Errorf("scene %d %s: start canvas %v, shape colour %v (off by %d)", n, o.Name, got, colours[o.Colour], d)
			}
		}
		// Far from every shape the canvas is the background's median.
		bgTruth := make([]uint8, ids.Bounds().Dx()*ids.Bounds().Dy())
		for i, v := range ids.Pix {
			if v == 0 {
				bgTruth[i] = 255
			}
		}
		want := weightedMedian(imagingClone(img), bgTruth)
		got, ok := meanColour(canvas, inside(0))
		if !ok || colourDistance(got, color.RGBA(want)) > 20 {
			t.Errorf("scene %d background: start canvas %v, background median %v", n, got, want)
		}
	}
	if checked < 8 {
		t.Errorf("only %d shapes were large enough to check", checked)
	}
}

func imagingClone(img image.Image) *image.NRGBA {
	out := image.NewNRGBA(img.Bounds())
	draw.Draw(out, out.Bounds(), img, img.Bounds().Min, draw.Src)
	return out
}

func meanColour(img *image.NRGBA, where []bool) (color.RGBA, bool) {
	var s [3]float64
	n := 0
	for i, in := range where {
		if in {
			s[0], s[1], s[2] = s[0]+float64(img.Pix[i*4]), s[1]+float64(img.Pix[i*4+1]), s[2]+float64(img.Pix[i*4+2])
			n++
		}
	}
	if n < 50 {
		return color.RGBA{}, false
	}
	return color.RGBA{uint8(s[0] / float64(n)), uint8(s[1] / float64(n)), uint8(s[2] / float64(n)), 255}, true
}

func colourDistance(a, b color.RGBA) int {
	d := func(x, y uint8) int { return max(int(x)-int(y), int(y)-int(x)) }
	return max(d(a.R, b.R), d(a.G, b.G), d(a.B, b.B))
}

func TestCropsCarryTheObject(t *testing.T) {
	c := newComposer(t, nil, nil)
	colours := demoColours(t)
	res, img, _, sc := loadScene(t, 1)
	for _, place := range []string{"", "0=[0.1, 0.1, 0.5, 0.6]; mirror"} {
		l := layoutOf(t, res, place)
		p := compose(t, c, l, Request{Reference: img, Hints: &HintRequest{Crops: on(true)}})
		if err := p.EncodeFiles(); err != nil {
			t.Fatal(err)
		}
		if len(p.Hints.Crops) != len(l.Objects) {
			t.Fatalf("%d crops for %d objects", len(p.Hints.Crops), len(l.Objects))
		}
		for _, cr := range p.Hints.Crops {
			o := l.Objects[cr.Region]
			got, err := png.Decode(bytes.NewReader(cr.PNG))
			if err != nil {
				t.Fatal(err)
			}
			rgba, ok := got.(*image.NRGBA)
			if !ok || cr.Width != int(math.Round(o.Placed.W()*float64(p.Width))) || rgba.Bounds().Dx() != cr.Width {
				t.Fatalf("crop %d is %T %v, placed %v", cr.Region, got, got.Bounds(), o.Placed)
			}
			want := colours[sc.Objects[o.SourceIndex].Colour]
			var opaque, transparent, wrong, outsideOpaque int
			for y := 0; y < cr.Height; y++ {
				for x := 0; x < cr.Width; x++ {
					px := rgba.Pix[y*rgba.Stride+x*4:]
					u := o.Placed.X0 + (float64(x)+0.5)/float64(cr.Width)*o.Placed.W()
					v := o.Placed.Y0 + (float64(y)+0.5)/float64(cr.Height)*o.Placed.H()
					inMask := o.SoftMaskAt(o.ReferencePoint(u, v))
					switch {
					case px[3] == 255:
						opaque++
						if colourDistance(color.RGBA{px[0], px[1], px[2], 255}, want) > 60 {
							wrong++
						}
					case px[3] == 0:
						transparent++
					}
					if inMask == 0 && px[3] != 0 {
						outsideOpaque++
					}
				}
			}
			t.Logf("%q crop %d (%s): %dx%d, %d opaque (%d off colour), %d transparent", place, cr.Region, o.Label, cr.Width, cr.Height, opaque, wrong, transparent)
			if outsideOpaque != 0 || opaque == 0 || transparent == 0 || frac(wrong, opaque) > 0.05 {
				t.Errorf("crop %d: %d pixels opaque outside the mask, %d opaque (%d off colour), %d transparent",
					cr.Region, outsideOpaque, opaque, wrong, transparent)
			}
		}
	}
}

// withModels names a ControlNet for each hint and an IP-Adapter.
func withModels(c *Config) {
	c.ControlNet.Edges.Model = "diffusers_xl_canny_mid.safetensors"
	c.ControlNet.Segmentation.Model = "sdxl/controlnet-union-sdxl-1.0.safetensors"
	c.IPAdapter.Model = "ip-adapter-plus_sdxl_vit-h.safetensors"
	c.IPAdapter.ClipVision = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
}

// TestHintsInTheFormats: every graph variant validates against the node
// schema (compose checks it, the IP-Adapter pack's nodes included), and
// the hints reach the graph and the A1111 payloads.
func TestHintsInTheFormats(t *testing.T) {
	ref := sceneImage(livingRoom())
	variants := []struct {
		name   string
		models bool
		hints  *HintRequest
	}{
		{"hints without models", false, allHints},
		{"edges", true, &HintRequest{Edges: on(true)}},
		{"segmentation and start", true, &HintRequest{Segmentation: on(true), StartCanvas: on(true), Denoise: 0.7}},
		{"crops", true, &HintRequest{Crops: on(true)}},
		{"everything", true, allHints},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			change := func(c *Config) {}
			if v.models {
				change = withModels
			}
			c := newComposer(t, change, nil)
			p := compose(t, c, layoutOf(t, livingRoom(), "cat=top-right"), Request{ID: "h", Reference: ref, Hints: v.hints})
			counts := map[string]int{}
			for _, n := range p.ComfyUI {
				counts[n.ClassType]++
			}
			h := p.Hints
			wantCN := 0
			if v.models {
				wantCN = btoi(h.Edges != nil) + btoi(h.Segmentation != nil)
			}
			wantIP := 0
			if v.models {
				wantIP = len(h.Crops)
			}
			if counts["ControlNetApplyAdvanced"] != wantCN || counts["IPAdapterAdvanced"] != wantIP ||
				counts["VAEEncode"] != btoi(h.StartCanvas != nil) || counts["EmptyLatentImage"] != btoi(h.StartCanvas == nil) {
				t.Errorf("nodes %v", counts)
			}
			for _, n := range nodesOf(p.ComfyUI, "KSampler") {
				if want := map[bool]float64{true: h.Denoise, false: 1}[h.StartCanvas != nil]; n.Inputs["denoise"] != want {
					t.Errorf("denoise %v, want %v", n.Inputs["denoise"], want)
				}
			}
			if !v.models && !hasNote(p, "names no model") {
				t.Errorf("notes %q", p.Notes)
			}
			for _, body := range p.WebUI.Bodies() {
				cn, ok := body.Body.AlwaysonScripts[controlNetTitle]
				if ok != (wantCN+wantIP > 0) || (ok && len(cn.Args) != wantCN+wantIP) {
					t.Errorf("%s: ControlNet units %v", body.File, cn)
				}
				if (body.Body.InitImages != nil) != (h.StartCanvas != nil) {
					t.Errorf("%s: init images %d", body.File, len(body.Body.InitImages))
				}
			}
			if want := map[bool]string{true: EndpointImg2Img, false: EndpointTxt2Img}[h.StartCanvas != nil]; p.WebUI.Endpoint != want {
				t.Errorf("endpoint %s", p.WebUI.Endpoint)
			}
			if h.StartCanvas != nil && v.hints.Denoise != 0 && h.Denoise != v.hints.Denoise {
				t.Errorf("denoise %v", h.Denoise)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestHintTimings: Compose times each hint it makes, and nothing else.
func TestHintTimings(t *testing.T) {
	c := newComposer(t, nil, nil)
	l := layoutOf(t, livingRoom(), "")
	if p := compose(t, c, l, Request{}); len(p.Timings()) != 0 {
		t.Errorf("timings without hints: %+v", p.Timings())
	}
	p := compose(t, c, l, Request{Reference: sceneImage(livingRoom()), Hints: allHints})
	var stages []string
	for _, tm := range p.Timings() {
		stages = append(stages, tm.Stage)
	}
	if got := strings.Join(stages, ", "); got != "edges, segmentation, start canvas, crops" {
		t.Errorf("timed parts %s", got)
	}
}

func TestHintsNeedTheReference(t *testing.T) {
	c := newComposer(t, func(c *Config) { c.Hints.Edges, c.Hints.Segmentation = true, true }, nil)
	l := layoutOf(t, livingRoom(), "")
	p := compose(t, c, l, Request{})
	if p.Hints.Edges != nil || p.Hints.Segmentation == nil || !hasNote(p, "hint edges is configured but the request has no reference image") {
		t.Errorf("configured hints without a reference: %+v, notes %q", p.Hints, p.Notes)
	}
	_, err := c.Compose(l, Request{Hints: &HintRequest{Crops: on(true)}})
	if err == nil || core.KindOf(err) != core.ErrBadRequest || !strings.Contains(err.Error(), "hint crops needs the reference image") {
		t.Errorf("asked-for crops without a reference: %v", err)
	}
	if p := compose(t, c, l, Request{Reference: sceneImage(livingRoom()), Hints: &HintRequest{Edges: on(false), Segmentation: on(false)}}); p.Hints.Edges != nil || p.Hints.Segmentation != nil {
		t.Error("a request could not turn configured hints off")
	}
}

func TestGoldenHints(t *testing.T) {
	c := newComposer(t, withModels, nil)
	for _, sc := range []struct{ name, place string }{{"living-room", ""}, {"living-room-placed", "mirror; cat=top-right"}} {
		t.Run(sc.name, func(t *testing.T) {
			l := layoutOf(t, livingRoom(), sc.place)
			p := compose(t, c, l, Request{ID: sc.name, Reference: sceneImage(livingRoom()), Hints: allHints})
			if err := p.EncodeFiles(); err != nil {
				t.Fatal(err)
			}
			for _, h := range []struct {
				what string
				img  *HintImage
			}{{"edges", p.Hints.Edges}, {"segmentation", p.Hints.Segmentation}, {"start", p.Hints.StartCanvas}} {
				layoutstest.CheckGoldenPNG(t, filepath.Join("testdata", "golden", sc.name+"-hint-"+h.what+".png"), toRGBA(h.img.image), *update)
			}
			crops := image.NewRGBA(image.Rect(0, 0, p.Width, p.Height))
			draw.Draw(crops, crops.Bounds(), image.NewUniform(color.RGBA{255, 255, 255, 255}), image.Point{}, draw.Src)
			for _, cr := range p.Hints.Crops {
				img, _ := png.Decode(bytes.NewReader(cr.PNG))
				o := l.Objects[cr.Region].Placed
				at := image.Pt(int(math.Round(o.X0*float64(p.Width))), int(math.Round(o.Y0*float64(p.Height))))
				draw.Draw(crops, img.Bounds().Add(at), img, image.Point{}, draw.Over)
			}
			layoutstest.CheckGoldenPNG(t, filepath.Join("testdata", "golden", sc.name+"-hint-crops.png"), crops, *update)
			planner, _ := layouts.New(layouts.DefaultConfig())
			preview := planner.Preview(sceneImage(livingRoom()), l, p.Canvas())
			layoutstest.CheckGoldenPNG(t, filepath.Join("testdata", "golden", sc.name+"-hints-preview.png"), preview, *update)
		})
	}
}

func toRGBA(img image.Image) *image.RGBA {
	out := image.NewRGBA(img.Bounds())
	draw.Draw(out, out.Bounds(), img, img.Bounds().Min, draw.Src)
	return out
}

// BenchmarkHints measures each hint on the ten-object 1280x960 scene
// (five segmented) at its 1152x896 bucket: the plan's Compose without
// hints, then with each one, reported in ms per image beyond it (their
// PNGs aside: the caller encodes them).
func BenchmarkHints(b *testing.B) {
	res := tenObjects()
	l := layoutOf(b, res, "")
	ref := sceneImage(res)
	c := newComposer(b, withModels, nil)
	for _, h := range []struct {
		name  string
		hints *HintRequest
	}{
		{"none", nil},
		{"edges", &HintRequest{Edges: on(true)}},
		{"segmentation", &HintRequest{Segmentation: on(true)}},
		{"start-canvas", &HintRequest{StartCanvas: on(true)}},
		{"crops", &HintRequest{Crops: on(true)}},
		{"all", allHints},
	} {
		b.Run(h.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.Compose(l, Request{Reference: ref, Hints: h.hints}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Example-style check that the hint files are among the plan's files and
// named by their pixels.
func TestHintFiles(t *testing.T) {
	p := compose(t, newComposer(t, nil, nil), layoutOf(t, livingRoom(), ""), Request{ID: "f", Reference: sceneImage(livingRoom()), Hints: allHints})
	names := strings.Join(p.MaskFiles(), " ")
	for _, want := range []string{"paliprompt_f_edges_", "paliprompt_f_segmentation_", "paliprompt_f_start_", "paliprompt_f_crop-00-cat_"} {
		if !strings.Contains(names, want) {
			t.Errorf("files %s lack %s*", names, want)
		}
	}
	if n := len(p.Files()); n != len(p.Regions)+1+3+len(p.Hints.Crops) {
		t.Errorf("%d files", n)
	}
}

// TestHintsFromASmallerReference: a reference decoded smaller than the
// layout's size (the plugin's fast JPEG mode: a scaled DCT decode) gives
// hints at the canvas size that match those of the full image, each
// scaled from the image's own bounds.
func TestHintsFromASmallerReference(t *testing.T) {
	c := newComposer(t, nil, nil)
	res, img, _, _ := loadScene(t, 2)
	b := img.Bounds()
	half := imaging.Resize(img, b.Dx()/2, b.Dy()/2, imaging.Box)
	l := layoutOf(t, res, "")
	full := compose(t, c, l, Request{Reference: img, Hints: allHints})
	small := compose(t, c, l, Request{Reference: half, Hints: allHints})
	w, h := full.Width, full.Height
	for _, p := range []Plan{full, small} {
		for _, hint := range []*HintImage{p.Hints.Edges, p.Hints.Segmentation, p.Hints.StartCanvas} {
			if got := hint.image.Bounds(); got != image.Rect(0, 0, w, h) {
				t.Fatalf("%s is %v, want the canvas %dx%d", hint.File, got, w, h)
			}
		}
	}
	// The smaller image's edges lie where the full one's are.
	fullNear := nearMarked(pixelsOn(full.Hints.Edges.image.(*image.Gray)), w, h, 3)
	var edges, near int
	for i, v := range small.Hints.Edges.image.(*image.Gray).Pix {
		if v != 0 {
			edges++
			if fullNear[i] {
				near++
			}
		}
	}
	if edges == 0 || frac(near, edges) < 0.9 {
		t.Errorf("%d of %d edges of the half-size reference near the full one's", near, edges)
	}
	for i, cr := range small.Hints.Crops {
		if fc := full.Hints.Crops[i]; cr.Width != fc.Width || cr.Height != fc.Height {
			t.Errorf("crop %d: %dx%d, full image's %dx%d", i, cr.Width, cr.Height, fc.Width, fc.Height)
		}
	}
	for i, col := range small.Hints.Colors {
		a, _ := parseHex(col.Color)
		f, _ := parseHex(full.Hints.Colors[i].Color)
		if d := colourDistance(a, f); d > 12 {
			t.Errorf("start canvas colour of %s: %s, full image's %s", col.Label, col.Color, full.Hints.Colors[i].Color)
		}
	}
}

func parseHex(s string) (color.RGBA, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "#"), 16, 32)
	return color.RGBA{uint8(v >> 16), uint8(v >> 8), uint8(v), 255}, err
}
