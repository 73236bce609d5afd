package sdxl

import (
	"image/color"
	"strings"
	"testing"
)

func TestRegionalPrompterColors(t *testing.T) {
	// Hues 0, 1/2, 1/4, 3/4, 1/8 at S = V = 0.5, scaled by 256, truncated.
	want := []color.RGBA{{128, 64, 64, 255}, {64, 128, 128, 255}, {96, 128, 64, 255}, {96, 64, 128, 255}, {128, 112, 64, 255}}
	got := rpColors(len(want))
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("colour %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestRegionalPrompterMask(t *testing.T) {
	c := newComposer(t, nil, nil)
	p := compose(t, c, layoutOf(t, livingRoom(), ""), Request{ID: "x"})
	rp := p.RegionalPrompter
	img := rp.image
	if img.Bounds().Dx() != p.Width || img.Bounds().Dy() != p.Height {
		t.Fatalf("mask %v for a %dx%d canvas", img.Bounds(), p.Width, p.Height)
	}
	used := map[string]int{}
	for y := 0; y < p.Height; y += 4 {
		for x := 0; x < p.Width; x += 4 {
			r, g, b, _ := img.At(x, y).RGBA()
			used[hexColor(color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 255})]++
		}
	}
	if len(used) != len(rp.Colors) {
		t.Errorf("mask uses %d colours, plan lists %d", len(used), len(rp.Colors))
	}
	if rp.Colors[0].Label != "background" || rp.Colors[0].Color != "#804040" {
		t.Errorf("first colour %+v, want the background in hue 0", rp.Colors[0])
	}
	parts := strings.Split(strings.SplitN(rp.Prompt, " ADDBASE\n", 2)[1], " BREAK\n")
	if len(parts) != len(rp.Colors) || parts[0] != p.Regions[len(p.Regions)-1].Prompt {
		t.Errorf("prompt %q for colours %+v", rp.Prompt, rp.Colors)
	}
	if strings.Contains(strings.SplitN(rp.Prompt, " ADDBASE", 2)[0], "BREAK") {
		t.Error("the base prompt contains BREAK, which Regional Prompter reads as a region")
	}
	if rp.Matrix != nil {
		t.Errorf("matrix mode for a segmented cat: %+v", rp.Matrix)
	}
}

func TestRegionalMatrix(t *testing.T) {
	c := newComposer(t, nil, nil)
	p := compose(t, c, layoutOf(t, quadrantsScene(), ""), Request{})
	m := p.RegionalPrompter.Matrix
	if m == nil {
		t.Fatal("no matrix mode for four quadrant boxes")
	}
	if m.DivideMode != "Horizontal" || m.DivideRatio != "512,512,512;512,512,512" {
		t.Errorf("matrix %+v", m)
	}
	cells := strings.Split(strings.SplitN(m.Prompt, " ADDBASE\n", 2)[1], " ADDROW\n")
	if len(cells) != 2 || !strings.Contains(cells[0], "red painting") || !strings.Contains(cells[0], " ADDCOL\n") {
		t.Errorf("prompt %q", m.Prompt)
	}

	side := layoutOf(t, sideBySide(), "")
	p = compose(t, c, side, Request{})
	if m := p.RegionalPrompter.Matrix; m == nil || m.DivideMode != "Horizontal" || m.DivideRatio != "512,128,384" ||
		strings.Count(m.Prompt, " BREAK\n") != 2 {
		t.Errorf("side by side: %+v", m)
	}
	p = compose(t, c, layoutOf(t, sideBySide(), "1=[0.2, 0.1, 0.6, 0.9]"), Request{})
	if m := p.RegionalPrompter.Matrix; m != nil {
		t.Errorf("overlapping boxes gave a matrix: %+v", m)
	}
}
