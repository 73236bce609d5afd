package grounding

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"paliprompt/core"
)

func TestNamesFromCaption(t *testing.T) {
	for _, tc := range []struct {
		caption string
		limit   int
		want    []string
	}{
		{"A cow on the beach", 8, []string{"cow", "beach"}},
		{"a man riding a horse in a field.", 8, []string{"man", "horse", "field"}},
		{"Two dogs playing with a red ball", 8, []string{"dogs", "red ball"}},
		{"a picture of a cat and a cat", 8, []string{"cat"}},
		{"a photo of a very big old wooden sailing boat", 8, []string{"big old wooden", "boat"}},
		{"a cat, a dog, a bird, a fish", 2, []string{"cat", "dog"}},
		{"a red circle to the left of a blue square", 8, []string{"red circle", "blue square"}},
		{"a red circle, a green star and an orange diamond", 8, []string{"red circle", "green star", "orange diamond"}},
		{"", 8, nil},
		{"the <eos> of ; it", 8, []string{"eos"}},
	} {
		if got := NamesFromCaption(tc.caption, tc.limit); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("NamesFromCaption(%q) = %q, want %q", tc.caption, got, tc.want)
		}
	}
}

func TestModelConfigValidate(t *testing.T) {
	if err := DefaultModelConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	c := DefaultModelConfig()
	c.Provider = "tpu"
	c.GraphOptimization = "max"
	c.MaxNewTokens["segment"] = 0
	c.MaxNewTokens["sing"] = 3
	c.FallbackObjects = []string{"cat", ";"}
	err := c.Validate()
	for _, want := range []string{`model.provider: "tpu" is not allowed: use one of cpu, cuda`, `model.graph_optimization: "max"`,
		"model.max_new_tokens.segment: 0 is too small: must be at least 1", "model.max_new_tokens.sing: is not a task",
		"model.fallback_objects: has an empty name"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	if !errors.Is(err, core.ErrConfig) {
		t.Errorf("error %v is not a core.ErrConfig", err)
	}
}

func TestTokensFor(t *testing.T) {
	c := ModelConfig{MaxNewTokens: map[string]int{"caption": 1, "detect": 2, "segment": 3, "other": 4}}
	for prefix, want := range map[string]int{"caption en": 1, "detect cat ; dog": 2, "segment cat": 3, "answer en why?": 4, "ocr": 4, "sing a song": 4} {
		if got := c.TokensFor(prefix); got != want {
			t.Errorf("TokensFor(%q) = %d, want %d", prefix, got, want)
		}
	}
}
