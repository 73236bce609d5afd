package sdxl

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"paliprompt/core"
)

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no buckets", func(c *Config) { c.Buckets = nil }, "sdxl.buckets: is empty"},
		{"bad bucket", func(c *Config) { c.Buckets = []string{"1024by1024"} }, "sdxl.buckets: \"1024by1024\" is not WIDTHxHEIGHT"},
		{"odd bucket", func(c *Config) { c.Buckets = []string{"1000x1001"} }, "multiple of 8"},
		{"huge bucket", func(c *Config) { c.Buckets = []string{"8192x8192"} }, "outside"},
		{"overlap", func(c *Config) { c.Overlap = "max" }, "sdxl.overlap: "},
		{"weight", func(c *Config) { c.ObjectWeight = math.Inf(1) }, "sdxl.object_weight: +Inf is out of range"},
		{"feather", func(c *Config) { c.FeatherPx = -1 }, "sdxl.feather_px: -1"},
		{"prefix", func(c *Config) { c.MaskPrefix = "../x" }, "sdxl.mask_prefix: "},
		{"encoder", func(c *Config) { c.ComfyUI.TextEncoder = "t5" }, "sdxl.comfyui.text_encoder: "},
		{"cond area", func(c *Config) { c.ComfyUI.SetCondArea = "all" }, "sdxl.comfyui.set_cond_area: "},
		{"question", func(c *Config) { c.StyleQuestions = []StyleQuestion{{Prefix: "answer en why?", Format: "style"}} }, "sdxl.style_questions[0]: "},
		{"global weight", func(c *Config) { c.GlobalWeight = -1 }, "sdxl.global_weight: -1 is out of range"},
		{"sampler", func(c *Config) { c.ComfyUI.Sampler = "dpmpp_2m_karras" }, `sampler "dpmpp_2m_karras" is not one of ComfyUI 0.3.64's samplers: euler, `},
		{"scheduler", func(c *Config) { c.ComfyUI.Scheduler = "Karras" }, `scheduler "Karras" is not one of ComfyUI 0.3.64's schedulers: simple, `},
		{"region lora", func(c *Config) {
			c.Regions = []RegionControl{{Object: "cat", LoRAs: []LoRA{{Name: "<evil>", Strength: 1}}}}
		}, `sdxl.regions[0].loras[0].name: "<evil>" has a character`},
		{"region object", func(c *Config) { c.Regions = []RegionControl{{Prompt: "x"}} }, "sdxl.regions[0].object: is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.change(&cfg)
			_, err := New(cfg, nil)
			if !errors.Is(err, core.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want ErrConfig naming %q", err, tt.want)
			}
		})
	}
}

// TestConfigReportsEveryProblem: one run names every bad field.
func TestConfigReportsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Buckets = []string{"1000x1001", "x"}
	cfg.FeatherPx, cfg.ComfyUI.Steps, cfg.Overlap = -1, 0, "max"
	err := cfg.Validate()
	for _, want := range []string{`sdxl.buckets: "1000x1001": 1001 is not a multiple of 8`, `sdxl.buckets: "x" is not WIDTHxHEIGHT`,
		"sdxl.feather_px: -1 is out of range", "sdxl.comfyui.steps: 0 is out of range", `sdxl.overlap: "max" is not allowed`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v\nwant it to name %q", err, want)
		}
	}
}

func TestNearestBucket(t *testing.T) {
	c := newComposer(t, nil, nil)
	tests := []struct {
		w, h int
		want string
	}{
		{1000, 1000, "1024x1024"},
		{1280, 960, "1152x896"},
		{960, 1280, "896x1152"},
		{1920, 1080, "1344x768"},
		{1080, 1920, "768x1344"},
		{3000, 1000, "1536x640"},
		{6000, 500, "1536x640"},
		{1500, 1000, "1216x832"},
	}
	for _, tt := range tests {
		b, err := c.chooseBucket(tt.w, tt.h, Request{})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmtBucket(b); got != tt.want {
			t.Errorf("%dx%d -> %s, want %s", tt.w, tt.h, got, tt.want)
		}
	}
}

func fmtBucket(b bucket) string { return fmt.Sprintf("%dx%d", b.W, b.H) }

func TestForcedSize(t *testing.T) {
	c := newComposer(t, nil, nil)
	if b, err := c.chooseBucket(1280, 960, Request{Width: 768, Height: 512}); err != nil || b != (bucket{768, 512}) {
		t.Errorf("forced 768x512: %v %v", b, err)
	}
	for _, req := range []Request{{Width: 1000}, {Width: 1001, Height: 1000}, {Width: 64, Height: 64}, {Width: 9000, Height: 1024}} {
		_, err := c.chooseBucket(1280, 960, req)
		if !errors.Is(err, core.ErrBadRequest) {
			t.Errorf("%+v: %v, want core.ErrBadRequest", req, err)
		}
	}
}
