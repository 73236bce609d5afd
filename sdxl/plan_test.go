package sdxl

import (
	"encoding/json"
	"errors"
	"flag"
	"image"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"paliprompt/core"
	"paliprompt/layouts"
	"paliprompt/layouts/layoutstest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// inlinePNG matches a base64 PNG in JSON.
var inlinePNG = regexp.MustCompile(`"iVBORw0KGgo[A-Za-z0-9+/=]*"`)

// planScenes are the plans kept as golden files (masks as their
// coverage; the previews show them).
var planScenes = []struct {
	name  string
	res   func() core.Result
	place string
	req   Request
}{
	{"living-room", livingRoom, "", Request{ID: "living-room", Positive: "cozy (warm) light", Negative: "cartoon"}},
	{"living-room-placed", livingRoom, "mirror; cat=top-right", Request{ID: "placed", Width: 1024, Height: 1024}},
	{"quadrants", quadrantsScene, "", Request{ID: "quadrants"}},
	{"kitchen", tenObjects, "", Request{ID: "kitchen"}},
}

func TestGoldenPlans(t *testing.T) {
	for _, sc := range planScenes {
		t.Run(sc.name, func(t *testing.T) {
			l := layoutOf(t, sc.res(), sc.place)
			// The scenes carry answers to the real model's style questions.
			withStyle := func(c *Config) { c.StyleQuestions = PhotoStyleQuestions }
			p := compose(t, newComposer(t, withStyle, nil), l, sc.req)
			if err := p.ComfyUI.Check(p.MaskFiles()); err != nil {
				t.Fatal(err)
			}
			checkMasks(t, p)
			// The A1111 bodies carry the PNGs (as base64): encode them, and
			// keep them out of the plan's own fields.
			if err := p.EncodeFiles(); err != nil {
				t.Fatal(err)
			}
			for _, f := range p.Files() {
				*f.PNG = nil
			}
			got, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			// The WebUI payloads carry the PNGs again, as base64.
			got = inlinePNG.ReplaceAll(got, []byte(`"<png>"`))
			layoutstest.CheckGolden(t, filepath.Join("testdata", "golden", sc.name+".json"), append(got, '\n'), *update)

			planner, _ := layouts.New(layouts.DefaultConfig())
			preview := planner.Preview(sceneImage(sc.res()), l, p.Canvas())
			layoutstest.CheckGoldenPNG(t, filepath.Join("testdata", "golden", sc.name+"-preview.png"), preview, *update)
		})
	}
}

// checkMasks decodes every region mask: 8-bit grey at the canvas size,
// summing to white at every pixel.
func checkMasks(t *testing.T, p Plan) {
	t.Helper()
	sum := make([]int, p.Width*p.Height)
	for _, r := range p.Regions {
		g := r.Image()
		if g == nil || g.Bounds() != image.Rect(0, 0, p.Width, p.Height) {
			t.Fatalf("region %d mask is %v, want 8-bit grey %dx%d", r.Index, g, p.Width, p.Height)
		}
		for i, v := range g.Pix {
			sum[i] += int(v)
		}
	}
	for i, s := range sum {
		if s != 255 {
			t.Fatalf("masks sum to %d at pixel %d", s, i)
		}
	}
}

func TestComposeErrors(t *testing.T) {
	c := newComposer(t, nil, nil)
	l := layoutOf(t, livingRoom(), "")
	bad := int64(-1)
	for _, req := range []Request{{Width: 1000, Height: 1001}, {Height: 1024}, {Steps: -1}, {CFG: 500}, {Seed: &bad}} {
		if _, err := c.Compose(l, req); !errors.Is(err, core.ErrBadRequest) {
			t.Errorf("%+v: %v, want core.ErrBadRequest", req, err)
		}
	}
	if _, err := c.Compose(layouts.Layout{}, Request{}); !errors.Is(err, core.ErrBadRequest) {
		t.Errorf("empty layout: %v", err)
	}
}

func TestNoObjects(t *testing.T) {
	c := newComposer(t, nil, nil)
	p := compose(t, c, layoutOf(t, core.Result{Width: 640, Height: 480, Caption: "an empty beach"}, ""), Request{})
	if len(p.Regions) != 1 || p.Regions[0].Coverage != 1 || p.RegionalPrompter.Matrix != nil {
		t.Fatalf("regions %+v", p.Regions)
	}
	if err := p.ComfyUI.Check(p.MaskFiles()); err != nil {
		t.Fatal(err)
	}
	if len(p.ForgeCouple.Masks) != 1 || len(p.ForgeCouple.Advanced.Mapping) != 1 || len(p.Omost.Locals) != 0 {
		t.Errorf("forge %+v omost %+v", p.ForgeCouple, p.Omost)
	}
}

func TestForgeCoupleAndOmost(t *testing.T) {
	c := newComposer(t, nil, nil)
	l := layoutOf(t, livingRoom(), "")
	p := compose(t, c, l, Request{Positive: "line\nbreak"})
	fc := p.ForgeCouple
	if lines := strings.Split(fc.Prompt, fc.Separator); len(lines) != len(fc.Masks)+1 || len(fc.Masks) != len(l.Objects)+1 {
		t.Fatalf("mask mode: %d lines for %d masks", len(lines), len(fc.Masks))
	}
	if fc.Background != "First Line" || fc.BackgroundWeight != 0.4 || fc.Masks[3].Label != "background" || fc.Masks[3].Weight != 0.8 {
		t.Errorf("mask mode %+v", fc)
	}
	adv := fc.Advanced
	if lines := strings.Split(adv.Prompt, fc.Separator); len(lines) != len(adv.Mapping) || len(lines) != len(l.Objects)+1 {
		t.Fatalf("advanced: %d lines for %d mapping rows", len(lines), len(adv.Mapping))
	}
	if adv.Mapping[0] != [5]float64{0, 1, 0, 1, 0.4} {
		t.Errorf("global line %v", adv.Mapping[0])
	}
	if m := adv.Mapping[1]; m[0] != 0.0781 || m[1] != 0.3906 || m[2] != 0.1563 || m[3] != 0.4688 || m[4] != 1 {
		t.Errorf("cat line %v", m)
	}
	code := p.Omost.Code
	for _, want := range []string{"```python\n", "canvas = Canvas()\n", `location="on the top-left"`, `distance_to_viewer=1.0`, "\n```"} {
		if !strings.Contains(code, want) {
			t.Errorf("omost code lacks %q:\n%s", want, code)
		}
	}
	if p.Omost.Locals[0].Area != l.Objects[0].Omost.Area {
		t.Errorf("omost area %q", p.Omost.Locals[0].Area)
	}
}

// FuzzCompose lays out and composes arbitrary grounding results (boxes
// with any bits, broken masks, placements) on a small canvas and checks
// the plan's invariants.
func FuzzCompose(f *testing.F) {
	f.Add([]byte("\x00\x05\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xc8B\x00\x00\xc8B\x01"), "0=top-left")
	f.Add([]byte("\x00\x04\x00\x04\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00D\x00\x00\x00D\x00\x02\x00\x00\x00D\x00\x00\x00\x00\x00\x00\x80D\x00\x00\x00D\x00"), "mirror")
	f.Add([]byte{0, 1, 0, 1}, "")
	planner, _ := layouts.New(layouts.DefaultConfig())
	c := newComposer(f, withModels, nil)
	ref := sceneImage(core.Result{Width: 64, Height: 48})
	f.Fuzz(func(t *testing.T, data []byte, placement string) {
		res := layoutstest.FuzzResult(data)
		place, err := layouts.ParsePlacement(placement)
		if err != nil {
			place = layouts.Placement{}
		}
		l, err := planner.Build(res, place)
		if err != nil {
			return // no image size: layouts' own fuzz target checks that
		}
		req := Request{Width: 256, Height: 256}
		if len(data)%2 == 0 { // every conditioning image, from a reference of another size
			req.Reference, req.Hints = ref, allHints
		}
		p, err := c.Compose(l, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if err := p.ComfyUI.Check(p.MaskFiles()); err != nil {
			t.Fatal(err)
		}
		checkMasks(t, p)
		for _, r := range p.Regions {
			if r.Tokens > WindowTokens || r.Prompt == "" {
				t.Fatalf("region %d: %d tokens, prompt %q", r.Index, r.Tokens, r.Prompt)
			}
		}
		rp := p.RegionalPrompter
		if n := strings.Count(rp.Prompt, " BREAK\n") + 1; n != len(rp.Colors) {
			t.Fatalf("regional prompter: %d prompts for %d colours", n, len(rp.Colors))
		}
		if len(p.ForgeCouple.Masks)+1 != len(strings.Split(p.ForgeCouple.Prompt, "\n")) ||
			len(p.ForgeCouple.Advanced.Mapping) != len(strings.Split(p.ForgeCouple.Advanced.Prompt, "\n")) {
			t.Fatal("forge couple lines and masks or mapping differ")
		}
	})
}

// TestComposeBuildsOnlyWantedFormats: a request naming formats gets those
// and no work for the others.
func TestComposeBuildsOnlyWantedFormats(t *testing.T) {
	c := newComposer(t, nil, nil)
	l := layoutOf(t, livingRoom(), "")
	p := compose(t, c, l, Request{Formats: []string{FormatComfyUI}})
	if len(p.ComfyUI) == 0 || p.RegionalPrompter.Prompt != "" || p.ForgeCouple.Mode != "" || p.Omost.Code != "" {
		t.Errorf("comfyui only: %+v", p)
	}
	files := p.Files()
	if len(files) != len(p.Regions) {
		t.Errorf("%d files, want the %d region masks without the colour mask", len(files), len(p.Regions))
	}
	if p.WebUI.RegionalPrompter != nil || p.WebUI.Endpoint != "" {
		t.Errorf("comfyui only has A1111 bodies: %+v", p.WebUI)
	}
	if err := CheckFormats([]string{"comfyui", "thumbnail"}); err == nil || !strings.Contains(err.Error(), "thumbnail") {
		t.Errorf("CheckFormats: %v", err)
	}

	// The A1111 bodies alone: made from Regional Prompter's and Forge
	// Couple's plans, which stay out of the plan; the colour mask is a
	// file only the body carries.
	p, err := c.Compose(l, Request{Formats: []string{FormatA1111}})
	if err != nil {
		t.Fatal(err)
	}
	if p.WebUI.RegionalPrompter == nil || p.WebUI.ForgeCouple == nil || p.RegionalPrompter.Prompt != "" || p.ForgeCouple.Mode != "" || len(p.ComfyUI) != 0 {
		t.Fatalf("a1111 only: %+v", p)
	}
	files = p.Files()
	if len(files) != len(p.Regions)+1 || files[len(files)-1].Kind != KindColorMask || !files[len(files)-1].Inline {
		t.Errorf("files %+v", files)
	}
	if err := p.EncodeFiles(); err != nil {
		t.Fatal(err)
	}
	if _, err := json.Marshal(p); err != nil {
		t.Errorf("marshal: %v", err)
	}
}
