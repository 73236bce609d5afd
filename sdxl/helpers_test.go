package sdxl

import (
	"strings"
	"testing"

	"paliprompt/core"
	"paliprompt/layouts"
	"paliprompt/layouts/layoutstest"
)

var (
	det        = layoutstest.Detection
	seg        = layoutstest.Segmentation
	livingRoom = layoutstest.LivingRoom
	sceneImage = layoutstest.SceneImage
)

// quadrantsScene has four boxes, one filling each quadrant: grid-aligned.
func quadrantsScene() core.Result {
	return core.Result{
		Width: 1024, Height: 1024, Caption: "four (framed) paintings on a wall [detail]",
		Objects: []core.Object{
			det("red painting", 0, 0, 512, 512), det("blue painting", 512, 0, 1024, 512),
			det("green painting", 0, 512, 512, 1024), det("yellow painting", 512, 512, 1024, 1024),
		},
	}
}

// tenObjects is the benchmark scene: ten objects, half segmented.
func tenObjects() core.Result {
	res := core.Result{Width: 1280, Height: 960,
		Caption: "a busy kitchen with two cooks, a dog, pots on the stove and a window over the sink"}
	labels := []string{"cook", "cook", "dog", "pot", "stove", "window", "sink", "table", "chair", "lamp"}
	for i, l := range labels {
		x, y := float64(40+(i%5)*240), float64(60+(i/5)*420)
		o := det(l, x, y, x+220+float64(i*7), y+380-float64(i*11))
		if i%2 == 0 {
			o = seg(l, o.Box.X0, o.Box.Y0, o.Box.X1, o.Box.Y1)
		}
		res.Objects = append(res.Objects, o)
	}
	return res
}

func layoutOf(t testing.TB, res core.Result, place string) layouts.Layout {
	t.Helper()
	p, err := layouts.New(layouts.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	pl, err := layouts.ParsePlacement(place)
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.Build(res, pl)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newComposer(t testing.TB, change func(*Config), counter TokenCounter) *Composer {
	t.Helper()
	cfg := DefaultConfig()
	if change != nil {
		change(&cfg)
	}
	c, err := New(cfg, counter)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// compose builds a plan and checks its ComfyUI graph against the node
// schema snapshot (comfyui_object_info.json), so that every graph the
// tests produce is one ComfyUI would accept.
func compose(t testing.TB, c *Composer, l layouts.Layout, req Request) Plan {
	t.Helper()
	p, err := c.Compose(l, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ComfyUI.Check(p.MaskFiles()); err != nil {
		t.Fatalf("ComfyUI graph: %v", err)
	}
	return p
}

// wordCounter counts whitespace-separated words: a deterministic counter
// for tests of the chunking logic.
type wordCounter struct{}

func (wordCounter) CountTokens(s string) int { return len(strings.Fields(s)) }

// sideBySide has two full-height boxes: a one-row matrix with a
// background gap between them.
func sideBySide() core.Result {
	return core.Result{Width: 1024, Height: 1024, Caption: "a man and a woman",
		Objects: []core.Object{det("man", 0, 0, 512, 1024), det("woman", 640, 0, 1024, 1024)}}
}
