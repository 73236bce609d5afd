//go:build ignore

// make_examples draws the example scenes and writes the example requests:
//
//	go run examples/make_examples.go
//
// Each scene is a few flat shapes with known boxes. Its requests carry the
// PaliGemma output text a model would write for it (detection boxes as
// <locY0><locX0><locY1><locX1>, bins round(coord/size*1023)), so that the
// text grounder can answer them without a model.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/fogleman/gg"
)

type shape struct {
	label string
	box   [4]float64 // x0, y0, x1, y1 in pixels
	draw  func(dc *gg.Context)
}

type scene struct {
	name          string
	width, height int
	caption       string
	background    func(dc *gg.Context)
	shapes        []shape
}

func flat(hex string) func(dc *gg.Context) {
	return func(dc *gg.Context) {
		dc.SetHexColor(hex)
		dc.Clear()
	}
}

func circle(label, hex string, cx, cy, r float64) shape {
	return shape{label, [4]float64{cx - r, cy - r, cx + r, cy + r}, func(dc *gg.Context) {
		dc.SetHexColor(hex)
		dc.DrawCircle(cx, cy, r)
		dc.Fill()
	}}
}

func rect(label, hex string, x0, y0, x1, y1 float64) shape {
	return shape{label, [4]float64{x0, y0, x1, y1}, func(dc *gg.Context) {
		dc.SetHexColor(hex)
		dc.DrawRectangle(x0, y0, x1-x0, y1-y0)
		dc.Fill()
	}}
}

func polygon(label, hex string, pts [][2]float64) shape {
	b := [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for _, p := range pts {
		b = [4]float64{math.Min(b[0], p[0]), math.Min(b[1], p[1]), math.Max(b[2], p[0]), math.Max(b[3], p[1])}
	}
	return shape{label, b, func(dc *gg.Context) {
		dc.SetHexColor(hex)
		for i, p := range pts {
			if i == 0 {
				dc.MoveTo(p[0], p[1])
			} else {
				dc.LineTo(p[0], p[1])
			}
		}
		dc.ClosePath()
		dc.Fill()
	}}
}

func star(label, hex string, cx, cy, r float64) shape {
	var pts [][2]float64
	for i := range 10 {
		rr := r
		if i%2 == 1 {
			rr = r * 0.45
		}
		a := -math.Pi/2 + float64(i)*math.Pi/5
		pts = append(pts, [2]float64{cx + rr*math.Cos(a), cy + rr*math.Sin(a)})
	}
	return polygon(label, hex, pts)
}

// house is a body and a roof drawn as one object.
func house(x0, y0, x1, y1, roof float64) shape {
	body := rect("", "#8b5a2b", x0+20, y0+roof, x1-20, y1)
	top := polygon("", "#c0392b", [][2]float64{{x0, y0 + roof}, {x1, y0 + roof}, {(x0 + x1) / 2, y0}})
	door := rect("", "#4a2f17", (x0+x1)/2-20, y1-80, (x0+x1)/2+20, y1)
	return shape{"house", [4]float64{x0, y0, x1, y1}, func(dc *gg.Context) {
		body.draw(dc)
		top.draw(dc)
		door.draw(dc)
	}}
}

func tree(x0, y0, x1, y1 float64) shape {
	crown := circle("", "#2e8b57", (x0+x1)/2, y0+(x1-x0)/2, (x1-x0)/2)
	trunk := rect("", "#6b4226", (x0+x1)/2-12, y0+(x1-x0)/2, (x0+x1)/2+12, y1)
	return shape{"tree", [4]float64{x0, y0, x1, y1}, func(dc *gg.Context) {
		trunk.draw(dc)
		crown.draw(dc)
	}}
}

var scenes = []scene{
	{
		name: "two-shapes", width: 640, height: 480,
		caption:    "a red circle and a blue square on a grey background",
		background: flat("#8c8c8c"),
		shapes: []shape{
			circle("red circle", "#dc2828", 160, 140, 80),
			rect("blue square", "#2850dc", 400, 260, 560, 420),
		},
	},
	{
		name: "house", width: 800, height: 600,
		caption: "a house with a red roof next to a tree under the sun",
		background: func(dc *gg.Context) {
			dc.SetHexColor("#87ceeb")
			dc.Clear()
			dc.SetHexColor("#5b8c3a")
			dc.DrawRectangle(0, 470, 800, 130)
			dc.Fill()
		},
		shapes: []shape{
			house(200, 170, 460, 500, 110),
			tree(540, 290, 660, 500),
			circle("sun", "#f5d142", 690, 100, 55),
		},
	},
	{
		name: "portrait", width: 480, height: 640,
		caption:    "a yellow star above a green triangle",
		background: flat("#f0f0f0"),
		shapes: []shape{
			star("yellow star", "#f0c419", 240, 200, 120),
			polygon("green triangle", "#28aa3c", [][2]float64{{100, 600}, {380, 600}, {240, 380}}),
		},
	},
}

// detectText writes PaliGemma's detect output for the shapes.
func detectText(s scene) string {
	var parts []string
	bin := func(v float64, size int) int { return int(math.Round(v / float64(size) * 1023)) }
	for _, sh := range s.shapes {
		b := sh.box
		parts = append(parts, fmt.Sprintf("<loc%04d><loc%04d><loc%04d><loc%04d> %s",
			bin(b[1], s.height), bin(b[0], s.width), bin(b[3], s.height), bin(b[2], s.width), sh.label))
	}
	return strings.Join(parts, " ; ")
}

func draw(s scene) []byte {
	dc := gg.NewContext(s.width, s.height)
	s.background(dc)
	for _, sh := range s.shapes {
		sh.draw(dc)
	}
	var buf bytes.Buffer
	if err := dc.EncodePNG(&buf); err != nil {
		log.Fatal(err)
	}
	return buf.Bytes()
}

// request is an example request, fields in the order a reader wants them.
type request struct {
	ID       string   `json:"id"`
	Width    int      `json:"width,omitempty"`
	Height   int      `json:"height,omitempty"`
	Objects  []string `json:"objects,omitempty"`
	Caption  string   `json:"caption,omitempty"`
	Detect   string   `json:"detect,omitempty"`
	Segment  string   `json:"segment,omitempty"`
	Place    any      `json:"place,omitempty"`
	SDXL     any      `json:"sdxl,omitempty"`
	ImageB64 string   `json:"image_b64,omitempty"`
}

func write(path string, data []byte) {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrote", path)
}

func writeJSON(path string, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		log.Fatal(err)
	}
	write(path, buf.Bytes())
}

func main() {
	dir := "examples"
	for _, sub := range []string{"images", "requests"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			log.Fatal(err)
		}
	}
	imgs := map[string]string{}
	for _, s := range scenes {
		png := draw(s)
		write(filepath.Join(dir, "images", s.name+".png"), png)
		imgs[s.name] = base64.StdEncoding.EncodeToString(png)
	}
	two, houseScene, portrait := scenes[0], scenes[1], scenes[2]
	writeJSON(filepath.Join(dir, "requests", "layout-two-shapes.json"), request{
		ID: "layout-two-shapes", Width: two.width, Height: two.height, Caption: two.caption, Detect: detectText(two),
	})
	writeJSON(filepath.Join(dir, "requests", "generate-two-shapes.json"), request{
		ID: "two-shapes", Caption: two.caption, Detect: detectText(two), ImageB64: imgs[two.name],
	})
	writeJSON(filepath.Join(dir, "requests", "generate-house.json"), request{
		ID: "house", Objects: []string{"house", "tree", "sun"}, Caption: houseScene.caption, Detect: detectText(houseScene), ImageB64: imgs[houseScene.name],
	})
	// Every SDXL option at once: a placement, sampler settings, per-region
	// control and every conditioning image (examples/README.md: "A run
	// with every option").
	writeJSON(filepath.Join(dir, "requests", "generate-house-every-option.json"), request{
		ID: "house-every-option", Objects: []string{"house", "tree", "sun"}, Caption: houseScene.caption, Detect: detectText(houseScene),
		Place: map[string]any{"sun": "top-left"},
		SDXL: map[string]any{
			"positive": "golden hour", "negative": "people", "seed": 7, "steps": 28, "cfg": 6.5,
			"sampler": "dpmpp_2m_sde", "scheduler": "karras",
			"regions": []map[string]any{
				{"object": "house", "prompt": "red brick walls", "negative": "modern glass", "weight": 1.2,
					"loras": []map[string]any{{"name": "sdxl/cottage-style.safetensors", "strength": 0.7}}},
				{"object": "background", "prompt": "rolling hills"},
			},
			"hints": map[string]any{"edges": true, "segmentation": true, "start_canvas": true, "crops": true, "denoise": 0.85},
		},
		ImageB64: imgs[houseScene.name],
	})
	writeJSON(filepath.Join(dir, "requests", "detect-portrait.json"), request{
		ID: "portrait", Detect: detectText(portrait), ImageB64: imgs[portrait.name],
	})
	// Output cut off at the token limit mid-object: the first object is
	// kept, the fragment is reported in "skipped".
	full := detectText(two)
	writeJSON(filepath.Join(dir, "requests", "layout-truncated.json"), request{
		ID: "layout-truncated", Width: two.width, Height: two.height, Caption: two.caption, Detect: full[:len(full)-len("<loc0000> blue square")],
	})
}
