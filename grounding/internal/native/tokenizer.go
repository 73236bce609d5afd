package native

import (
	"fmt"
	"os"
	"sync"

	"github.com/daulet/tokenizers"
)

// Tokenizer is a Hugging Face tokenizer.json (Rust tokenizers through
// daulet/tokenizers). Safe for concurrent use.
type Tokenizer struct {
	mu   sync.Mutex
	t    *tokenizers.Tokenizer
	path string
}

// LoadTokenizer reads a tokenizer.json.
func LoadTokenizer(path string) (*Tokenizer, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := tokenizers.FromFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return &Tokenizer{t: t, path: path}, nil
}

// Encode returns the ids of text, with the tokenizer's special tokens
// (bos, ...) when addSpecial.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	t.mu.Lock()
	ids, _ := t.t.Encode(text, addSpecial)
	t.mu.Unlock()
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}

// Decode returns the text of ids, without special tokens when skipSpecial.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	u := make([]uint32, len(ids))
	for i, id := range ids {
		u[i] = uint32(id)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.t.Decode(u, skipSpecial)
}

// VocabSize is the number of tokens, added tokens included.
func (t *Tokenizer) VocabSize() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int(t.t.VocabSize())
}

// Path is the tokenizer.json file.
func (t *Tokenizer) Path() string { return t.path }

// Close releases the tokenizer.
func (t *Tokenizer) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.t != nil {
		t.t.Close()
		t.t = nil
	}
}
