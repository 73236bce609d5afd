package paligemma

import (
	"math"
	"reflect"
	"slices"
	"testing"

	"paliprompt/grounding/groundingtest"
)

// inputsEmbedsGolden is testdata/goldens/inputs_embeds.json
// (tools/make_goldens.py): transformers' merged inputs_embeds.
type inputsEmbedsGolden struct {
	Model        string `json:"model"`
	HiddenSize   int    `json:"hidden_size"`
	ImageTokenID int    `json:"image_token_id"`
	Cases        []struct {
		Image        string `json:"image"`
		Prompt       string `json:"prompt"`
		PadTokens    int    `json:"pad_tokens"`
		ImageTokens  int    `json:"image_tokens"`
		TextIDs      []int  `json:"text_ids"`
		InputsEmbeds string `json:"inputs_embeds"`
	} `json:"cases"`
}

// TestInputsEmbedsGolden: what the Go runtime feeds the own-layout decoder
// at prefill (vision encoder rows + embed_tokens rows) is transformers'
// merged inputs_embeds bit for bit, on a model whose sqrt(hidden) is not a
// power of two (the old convention, divide in the vision encoder and
// multiply back in the decoder, changes some image values there).
func TestInputsEmbedsGolden(t *testing.T) {
	var g inputsEmbedsGolden
	groundingtest.ReadGolden(t, "inputs_embeds.json", &g)
	e := tinyEngine(t, tinyHidden12)
	if e.spec.hidden != g.HiddenSize || e.spec.image != g.ImageTokenID {
		t.Fatalf("model hidden %d, image id %d; golden %d, %d", e.spec.hidden, e.spec.image, g.HiddenSize, g.ImageTokenID)
	}
	for _, c := range g.Cases {
		prompt := e.tok.Encode(c.Prompt+"\n", false)
		if got := append([]int{e.spec.bos}, prompt...); !reflect.DeepEqual(got, c.TextIDs) || c.ImageTokens != e.spec.imageTokens || c.PadTokens != 0 {
			t.Fatalf("%s %q: input ids %d image + %v, golden %d + %v", c.Image, c.Prompt, e.spec.imageTokens, got, c.ImageTokens, c.TextIDs)
		}
		bt := e.newBatch([]genTask{{prompt: prompt, maxNew: 1}})
		got, err := e.prefillEmbeds(features(t, e, goldenRGB(t, c.Image)), bt, &runTimes{})
		if err != nil {
			t.Fatal(err)
		}
		want, shape := groundingtest.Float32NPY(t, c.InputsEmbeds)
		if !slices.Equal(shape, []int{bt.length, e.spec.hidden}) {
			t.Fatalf("%s: golden shape %v, runtime [%d %d]", c.InputsEmbeds, shape, bt.length, e.spec.hidden)
		}
		var imageDiff, textDiff int
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				if i/e.spec.hidden < e.spec.imageTokens {
					imageDiff++
				} else {
					textDiff++
				}
			}
		}
		if imageDiff+textDiff > 0 {
			t.Errorf("%s %q: %d image-row and %d text-row values differ from transformers' inputs_embeds", c.Image, c.Prompt, imageDiff, textDiff)
		}
	}
}
