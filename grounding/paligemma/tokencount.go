package paligemma

import (
	"paliprompt/core"

	"paliprompt/grounding/internal/native"
)

// TokenCounter counts the tokens of a text with a Hugging Face
// tokenizer.json (e.g. CLIP's, for SDXL prompt budgets), so that other
// packages need no cgo of their own. Safe for concurrent use.
type TokenCounter struct {
	tok *native.Tokenizer
}

// LoadTokenCounter reads a tokenizer.json. Errors wrap ErrUnavailable.
func LoadTokenCounter(tokenizerJSONPath string) (*TokenCounter, error) {
	tok, err := native.LoadTokenizer(tokenizerJSONPath)
	if err != nil {
		return nil, core.Errorf(core.ErrUnavailable, "%v", err)
	}
	return &TokenCounter{tok: tok}, nil
}

// CountTokens returns the number of tokens of text, without special tokens
// (CLIP's start/end tokens are not counted).
func (c *TokenCounter) CountTokens(text string) int {
	return len(c.tok.Encode(text, false))
}

// Close releases the tokenizer.
func (c *TokenCounter) Close() error {
	c.tok.Close()
	return nil
}
