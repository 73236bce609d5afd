package sdxl

import (
	"strings"
	"testing"

	"paliprompt/layouts"
)

func TestPlainText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"(masterpiece:1.2), cat", "masterpiece, cat"},
		{`\(cat:1.2\)`, "(cat:1.2)"},
		{"[blurry] time: 12:30", "blurry time: 12:30"},
		{"((very detailed)) ratio 16:9", "very detailed ratio 16:9"},
		{"(soft:.8)", "soft"},
	}
	for _, tt := range tests {
		if got := plainText(tt.in); got != tt.want {
			t.Errorf("plainText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEstimateCounter(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"a cat", 2},
		{"mountain", 3},
		{"photorealistic", 5},
		{"1024x1024", 9},
		{"cat, dog.", 4},
		{"日本", 6},
		{"café", 3},
	}
	for _, tt := range tests {
		if got := (EstimateCounter{}).CountTokens(tt.in); got != tt.want {
			t.Errorf("CountTokens(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestChunk(t *testing.T) {
	c := newComposer(t, nil, wordCounter{})
	long := strings.Repeat("word ", 100)
	phrases := []string{strings.Repeat("a ", 40), strings.Repeat("b ", 30), strings.Repeat("c ", 10), strings.TrimSpace(long)}
	var notes []string
	chunks := c.chunk(phrases, "positive prompt", &notes)
	for i, ch := range chunks {
		if n := c.tokens(ch); n > WindowTokens {
			t.Errorf("chunk %d has %d tokens", i, n)
		}
	}
	got := strings.Fields(strings.ReplaceAll(strings.Join(chunks, " "), ",", ""))
	want := strings.Fields(strings.Join(phrases, " "))
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("chunks lost or cut words:\n got %q\nwant %q", got, want)
	}
	// a+b (70 words + separator) fit one window; c joins no further.
	if len(chunks) != 4 || !strings.HasPrefix(chunks[1], "c") {
		t.Errorf("chunks %q", chunks)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "100 tokens") {
		t.Errorf("notes %q", notes)
	}
}

func TestSubject(t *testing.T) {
	tests := []struct {
		caption, label string
		others         []string
		want           string
	}{
		{"a black cat sitting on a red sofa", "cat", nil, "black cat"},
		{"a black cat sitting on a red sofa", "sofa", nil, "red sofa"},
		{"a woman in a long red dress", "dress", nil, "long red dress"},
		{"a woman with long blond hair standing by a car", "woman", []string{"car"}, "woman with long blond hair"},
		{"a table with a vase", "table", []string{"vase"}, "table"},
		{"two fluffy dogs playing in the snow", "dog", nil, "fluffy dog"},
		{"The old man, tired, sits", "man", nil, "old man"},
		{"a bus on a street", "cat", nil, "cat"},
		{"a small wooden teddy bear", "teddy bear", nil, "small wooden teddy bear"},
		{"Cats, dogs and birds", "dog", nil, "dog"},
	}
	for _, tt := range tests {
		if got := subject(tt.caption, tt.label, tt.others); got != tt.want {
			t.Errorf("subject(%q, %q) = %q, want %q", tt.caption, tt.label, got, tt.want)
		}
	}
}

func TestScenePhrase(t *testing.T) {
	tests := []struct {
		caption string
		labels  []string
		want    string
	}{
		{"a black cat sitting on a red sofa in a living room", []string{"cat", "sofa"}, "living room"},
		{"two people walking a dog down a city street at night", []string{"person", "dog"}, "night"},
		{"a cat on a sofa", []string{"cat", "sofa"}, ""},
		{"a boat on the lake, at sunset", []string{"boat"}, "sunset"},
		{"", nil, ""},
	}
	for _, tt := range tests {
		if got := scenePhrase(tt.caption, tt.labels); got != tt.want {
			t.Errorf("scenePhrase(%q) = %q, want %q", tt.caption, got, tt.want)
		}
	}
}

func TestStyleAnswers(t *testing.T) {
	c := newComposer(t, func(c *Config) { c.StyleQuestions = PhotoStyleQuestions }, nil)
	if got := c.StylePrefixes("de"); len(got) != 3 || got[0] != "answer de what is the art style of this image?" {
		t.Errorf("StylePrefixes: %q", got)
	}
	l := layouts.Layout{Answers: []layouts.Answer{
		{Prefix: "answer en what is the art style of this image?", Text: " oil (painting). "},
		{Prefix: "answer en what is the lighting in this image?", Text: "Unanswerable"},
		{Prefix: "answer en what are the main colors of this image?", Text: "blue and gold"},
		{Prefix: "caption en", Text: "ignored"},
	}}
	got := c.styleAnswers(l, "")
	want := []string{`oil \(painting\) style`, "blue and gold color palette"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("styleAnswers = %q, want %q", got, want)
	}
}

func TestRegionPromptFitsWindow(t *testing.T) {
	c := newComposer(t, nil, wordCounter{})
	o := layouts.Object{Index: 3, Label: strings.TrimSpace(strings.Repeat("big ", 50)) + " dog", Location: "in the center"}
	var notes []string
	subj := strings.Repeat("very ", 30) + o.Label
	got := c.regionPrompt(subj, o, &notes)
	if c.tokens(got) > WindowTokens || !strings.HasSuffix(got, "dog") {
		t.Errorf("prompt %q", got)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "caption attributes") {
		t.Errorf("notes %q", notes)
	}
}
