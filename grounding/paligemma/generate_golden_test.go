package paligemma

import (
	"context"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"paliprompt/core"
	"paliprompt/grounding/groundingtest"
)

// generateGolden is testdata/goldens/generate/<model>.json (tools/make_goldens.py).
type generateGolden struct {
	Models       []string `json:"models"`
	MaxNewTokens int      `json:"max_new_tokens"`
	ImageTokenID int      `json:"image_token_id"`
	Cases        []generateCase
	Batch        struct {
		Image string         `json:"image"`
		Rows  []generateCase `json:"rows"`
	} `json:"batch"`
}

type generateCase struct {
	Image             string    `json:"image"`
	Prompt            string    `json:"prompt"`
	PadTokens         int       `json:"pad_tokens"`
	ImageTokens       int       `json:"image_tokens"`
	TextIDs           []int     `json:"text_ids"`
	GeneratedIDs      []int     `json:"generated_ids"`
	FirstStepTopIDs   []int     `json:"first_step_top_ids"`
	FirstStepTopLogit []float32 `json:"first_step_top_logits"`
	TextSkipSpecial   string    `json:"text_skip_special"`
}

// goldenRGB returns a golden image as transformers saw it.
func goldenRGB(t *testing.T, image string) *core.RGB {
	t.Helper()
	return decodeFile(t, groundingtest.GoldenImage(t, image))
}

func TestGenerateGolden(t *testing.T) {
	for _, golden := range []string{"tiny-paligemma2", "tiny-paligemma1", "tiny-paligemma2-hidden12"} {
		t.Run(golden, func(t *testing.T) {
			var g generateGolden
			groundingtest.ReadGolden(t, "generate/"+golden+".json", &g)
			for _, model := range g.Models {
				name := filepath.Base(model)
				t.Run(name, func(t *testing.T) {
					e := tinyEngine(t, name)
					runGenerateCases(t, e, g)
					if e.spec.layout == layoutOwn {
						runGenerateBatch(t, e, g)
					}
				})
			}
		})
	}
}

// firstStep runs generate and records the first step's logits.
func firstStep(t *testing.T, e *engine, f []float32, tasks []genTask) ([][]int, [][]float32) {
	t.Helper()
	var first [][]float32
	e.onStep = func(step int, logits [][]float32) {
		if step == 0 {
			for _, l := range logits {
				first = append(first, append([]float32(nil), l...))
			}
		}
	}
	defer func() { e.onStep = nil }()
	ids, err := e.generate(context.Background(), f, tasks, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ids, first
}

func runGenerateCases(t *testing.T, e *engine, g generateGolden) {
	featuresOf := map[string][]float32{}
	for _, c := range g.Cases {
		f, ok := featuresOf[c.Image]
		if !ok {
			f = features(t, e, goldenRGB(t, c.Image))
			featuresOf[c.Image] = f
		}
		prompt := e.tok.Encode(c.Prompt+"\n", false)
		if got := append([]int{e.spec.bos}, prompt...); !reflect.DeepEqual(got, c.TextIDs) || c.ImageTokens != e.spec.imageTokens {
			t.Errorf("%s %q: input ids %d image + %v, want %d + %v", c.Image, c.Prompt, e.spec.imageTokens, got, c.ImageTokens, c.TextIDs)
			continue
		}
		ids, first := firstStep(t, e, f, []genTask{{prompt: prompt, maxNew: g.MaxNewTokens}})
		if !reflect.DeepEqual(ids[0], c.GeneratedIDs) {
			t.Errorf("%s %q: generated %v, want %v", c.Image, c.Prompt, ids[0], c.GeneratedIDs)
		}
		for k, id := range c.FirstStepTopIDs {
			if d := math.Abs(float64(first[0][id] - c.FirstStepTopLogit[k])); d > 1e-4 {
				t.Errorf("%s %q: first-step logit of %d is %v, want %v", c.Image, c.Prompt, id, first[0][id], c.FirstStepTopLogit[k])
			}
		}
		g := &Grounder{eng: e}
		if got, want := g.decodeText(ids[0]), strings.TrimSpace(c.TextSkipSpecial); got != want {
			t.Errorf("%s %q: text %q, want %q", c.Image, c.Prompt, got, want)
		}
	}
}

func runGenerateBatch(t *testing.T, e *engine, g generateGolden) {
	f := features(t, e, goldenRGB(t, g.Batch.Image))
	var tasks []genTask
	for _, r := range g.Batch.Rows {
		tasks = append(tasks, genTask{prompt: e.tok.Encode(r.Prompt+"\n", false), maxNew: g.MaxNewTokens})
	}
	ids, first := firstStep(t, e, f, tasks)
	for i, r := range g.Batch.Rows {
		if !reflect.DeepEqual(ids[i], r.GeneratedIDs) {
			t.Errorf("batch row %d %q: generated %v, want %v", i, r.Prompt, ids[i], r.GeneratedIDs)
		}
		for k, id := range r.FirstStepTopIDs {
			if d := math.Abs(float64(first[i][id] - r.FirstStepTopLogit[k])); d > 1e-4 {
				t.Errorf("batch row %d: first-step logit of %d is %v, want %v", i, id, first[i][id], r.FirstStepTopLogit[k])
			}
		}
	}
}
