package grounding

import (
	"reflect"
	"strings"
	"testing"
)

func TestSanitizeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"cat", "cat"},
		{"  red   ball ", "red ball"},
		{"cat ; dog", "cat dog"},
		{"dog<eos><loc0001>", "dog eos loc0001"},
		{"cat\nsegment dog", "cat segment dog"},
		{"tab\there\x00", "tab here"},
		{";;<>", ""},
		{strings.Repeat("é", 40), strings.Repeat("é", 32)},
	} {
		if got := sanitizeName(tc.in); got != tc.want {
			t.Errorf("sanitizeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCleanNames(t *testing.T) {
	got := cleanNames([]string{"Cat", "cat", "", " ; ", "dog", "bird", "fish"}, 3)
	if want := []string{"Cat", "dog", "bird"}; !reflect.DeepEqual(got, want) {
		t.Errorf("cleanNames = %q, want %q", got, want)
	}
}

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
		if got := namesFromCaption(tc.caption, tc.limit); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("namesFromCaption(%q) = %q, want %q", tc.caption, got, tc.want)
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
	c.MaxNewTokens.Segment = 0
	c.FallbackObjects = []string{"cat", ";"}
	err := c.Validate()
	for _, want := range []string{`model.provider is "tpu", want one of cpu, cuda`, `model.graph_optimization is "max"`,
		"model.max_new_tokens.segment is 0, want 1 or more", "model.fallback_objects has an empty name"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
}

func TestTaskTokens(t *testing.T) {
	tt := TaskTokens{Caption: 1, Detect: 2, Segment: 3, Other: 4}
	for prefix, want := range map[string]int{"caption en": 1, "detect cat ; dog": 2, "segment cat": 3, "answer en why?": 4, "ocr": 4} {
		if got := tt.forPrefix(prefix); got != want {
			t.Errorf("forPrefix(%q) = %d, want %d", prefix, got, want)
		}
	}
}
