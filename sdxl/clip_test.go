//go:build cgo

package sdxl

import (
	"os"
	"strings"
	"testing"

	"paliprompt/grounding/paligemma"
)

// TestCLIPTokenizer composes with a real CLIP tokenizer.json through
// the model grounder's tokenizer binding (cgo: this file builds only
// with cgo), when PALIPROMPT_CLIP_TOKENIZER names one
// (e.g. an SDXL checkpoint's tokenizer/tokenizer.json): every chunk and
// region fits a window by the real count, and the estimate is above it.
func TestCLIPTokenizer(t *testing.T) {
	path := os.Getenv("PALIPROMPT_CLIP_TOKENIZER")
	if path == "" {
		t.Skip("set PALIPROMPT_CLIP_TOKENIZER to a CLIP tokenizer.json to run")
	}
	counter, err := paligemma.LoadTokenCounter(path)
	if err != nil {
		t.Fatal(err)
	}
	defer counter.Close()
	c := newComposer(t, nil, counter)
	long := strings.Repeat("intricate (ornate:1.2) baroque architecture, ", 12)
	p := compose(t, c, layoutOf(t, tenObjects(), ""), Request{Positive: long})
	if p.TokenCounter != "tokenizer" || len(p.PositiveChunks) < 2 {
		t.Fatalf("counter %q, %d chunks", p.TokenCounter, len(p.PositiveChunks))
	}
	for i, ch := range append(p.PositiveChunks, p.NegativeChunks...) {
		real, est := counter.CountTokens(plainText(ch)), (EstimateCounter{}).CountTokens(plainText(ch))
		if real > WindowTokens || est < real {
			t.Errorf("chunk %d: %d tokens (estimate %d): %q", i, real, est, ch)
		}
		t.Logf("chunk %d: %d tokens, estimate %d", i, real, est)
	}
	for _, r := range p.Regions {
		if n := counter.CountTokens(plainText(r.Prompt)); n != r.Tokens || n > WindowTokens {
			t.Errorf("region %d: %d tokens, plan says %d", r.Index, n, r.Tokens)
		}
	}
}
