package sdxl

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestComfyUIGraphStructure(t *testing.T) {
	for _, encoder := range []string{"sdxl", "plain"} {
		t.Run(encoder, func(t *testing.T) {
			c := newComposer(t, func(c *Config) { c.ComfyUI.TextEncoder = encoder }, wordCounter{})
			long := strings.Repeat("very detailed lovely cozy scene, ", 20)
			seed := int64(42)
			p := compose(t, c, layoutOf(t, livingRoom(), ""), Request{ID: "req-1", Positive: long, Seed: &seed, Steps: 20})
			if len(p.PositiveChunks) < 2 {
				t.Fatalf("want several chunks, got %d", len(p.PositiveChunks))
			}
			if err := p.ComfyUI.Check(p.MaskFiles()); err != nil {
				t.Fatal(err)
			}
			// The JSON the plugin sends passes the same check.
			data, err := json.Marshal(p.ComfyUI)
			if err != nil {
				t.Fatal(err)
			}
			var back Graph
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatal(err)
			}
			if err := back.Check(p.MaskFiles()); err != nil {
				t.Fatalf("after JSON: %v", err)
			}
			counts := map[string]int{}
			for _, n := range back {
				counts[n.ClassType]++
				if n.ClassType == "KSampler" && (n.Inputs["seed"] != int64(42) || n.Inputs["steps"] != int64(20)) {
					t.Errorf("sampler inputs %v", n.Inputs)
				}
				if n.ClassType == "EmptyLatentImage" && (n.Inputs["width"] != int64(p.Width) || n.Inputs["height"] != int64(p.Height)) {
					t.Errorf("latent %v", n.Inputs)
				}
			}
			if counts["LoadImageMask"] != len(p.Regions) || counts["ConditioningSetMask"] != len(p.Regions) ||
				counts["ConditioningCombine"] != len(p.Regions) || counts["ConditioningConcat"] != len(p.PositiveChunks)-1+len(p.NegativeChunks)-1 ||
				counts["ConditioningSetAreaStrength"] != 1 || counts["SaveImage"] != 1 || counts["KSampler"] != 1 {
				t.Errorf("node counts %v", counts)
			}
		})
	}
}

func TestGraphCheckFindsFaults(t *testing.T) {
	c := newComposer(t, nil, nil)
	p := compose(t, c, layoutOf(t, livingRoom(), ""), Request{})
	files := p.MaskFiles()
	find := func(g Graph, class string) string {
		for id, n := range g {
			if n.ClassType == class {
				return id
			}
		}
		t.Fatalf("no %s", class)
		return ""
	}
	tests := []struct {
		name   string
		break_ func(g Graph)
		files  []string
		want   string
	}{
		{"missing node", func(g Graph) { delete(g, find(g, "EmptyLatentImage")) }, files, "link to missing node"},
		{"bad output index", func(g Graph) { g[find(g, "VAEDecode")].Inputs["vae"] = Link{find(g, "CheckpointLoaderSimple"), 3} }, files, "has 3 outputs"},
		{"wrong type", func(g Graph) { g[find(g, "VAEDecode")].Inputs["vae"] = Link{find(g, "CheckpointLoaderSimple"), 1} }, files, "CLIP output, want VAE"},
		{"unknown input", func(g Graph) { g[find(g, "KSampler")].Inputs["noise"] = 1 }, files, `input "noise" is not in its signature`},
		{"missing input", func(g Graph) { delete(g[find(g, "KSampler")].Inputs, "cfg") }, files, `required input "cfg"`},
		{"bad choice", func(g Graph) { g[find(g, "LoadImageMask")].Inputs["channel"] = "luma" }, files, "not one of"},
		{"unknown class", func(g Graph) { g["999"] = Node{ClassType: "MagicNode"} }, files, "unknown class_type"},
		{"mask file not in result", func(g Graph) {}, files[1:], "is not in the result"},
		{"below minimum", func(g Graph) { g[find(g, "KSampler")].Inputs["steps"] = int64(0) }, files, "below its minimum 1"},
		{"not an integer", func(g Graph) { g[find(g, "KSampler")].Inputs["steps"] = 2.5 }, files, "want an integer"},
		{"no output node", func(g Graph) { delete(g, find(g, "SaveImage")) }, files, "no output node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, _ := json.Marshal(p.ComfyUI)
			var g Graph
			if err := json.Unmarshal(data, &g); err != nil {
				t.Fatal(err)
			}
			tt.break_(g)
			err := g.Check(tt.files)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check: %v, want %q", err, tt.want)
			}
		})
	}
}
