package sdxl

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// WindowTokens is the usable length of one CLIP window: 77 positions less
// the start and end tokens. A1111 and ComfyUI encode longer prompts in
// several windows; a BREAK starts a new one.
const WindowTokens = 75

// TokenCounter counts the CLIP tokens of a text, without the start and
// end tokens. The plugin passes one backed by a CLIP tokenizer.json
// (the model grounder's daulet/tokenizers binding) when [sdxl] tokenizer
// is set.
type TokenCounter interface {
	CountTokens(text string) int
}

// EstimateCounter is the counter used without a tokenizer: a conservative
// estimate of CLIP's byte-level BPE that errs towards too many tokens, so
// a prompt it accepts fits its window. It splits text the way CLIP's
// pre-tokenizer does and counts
//
//   - a run of ASCII letters as 1 token per 3 letters, rounded up (CLIP
//     has most English words as 1 or 2 tokens);
//   - each digit as 1 token (CLIP splits numbers into digits);
//   - each ASCII punctuation or symbol character as 1 token;
//   - each byte of a non-ASCII character as 1 token (the byte-level
//     worst case).
//
// Measured against CLIP's BPE (open_clip's bpe_simple_vocab_16e6, the
// vocabulary of SDXL's first text encoder) on 921 phrases (this
// project's design notes and the golden prompts), it counts 1.44 times
// the real tokens on average and 1.3 to 1.6 times on prompts; it fell
// short on 9 phrases, by one token each (acronyms such as "RGBA").
type EstimateCounter struct{}

// CountTokens implements TokenCounter.
func (EstimateCounter) CountTokens(text string) int {
	n, letters := 0, 0
	flush := func() {
		n += (letters + 2) / 3
		letters = 0
	}
	for _, r := range text {
		switch {
		case r < utf8.RuneSelf && unicode.IsLetter(r):
			letters++
			continue
		case unicode.IsSpace(r):
		case r < utf8.RuneSelf:
			n++ // digit, punctuation or symbol
		default:
			n += utf8.RuneLen(r)
		}
		flush()
	}
	flush()
	return n
}

// tokens counts a prompt fragment as the encoder sees it.
func (c *Composer) tokens(s string) int { return c.counter.CountTokens(plainText(s)) }

// phraseSep joins phrases inside a chunk.
const phraseSep = ", "

// chunk packs phrases, in order, into prompts of at most WindowTokens
// tokens each, cutting only between phrases. A phrase longer than a
// window is cut between words (and noted); a word longer than a window
// (no real word is) is cut between characters, also noted.
func (c *Composer) chunk(phrases []string, what string, notes *[]string) []string {
	var chunks []string
	cur := ""
	for _, ph := range phrases {
		for _, piece := range c.fitPieces(ph, what, notes) {
			next := piece
			if cur != "" {
				next = cur + phraseSep + piece
			}
			if c.tokens(next) <= WindowTokens {
				cur = next
				continue
			}
			chunks = append(chunks, cur)
			cur = piece
		}
	}
	if cur != "" {
		chunks = append(chunks, cur)
	}
	return chunks
}

// fitPieces splits a phrase longer than a window into pieces that fit,
// at word boundaries.
func (c *Composer) fitPieces(phrase, what string, notes *[]string) []string {
	if c.tokens(phrase) <= WindowTokens {
		return []string{phrase}
	}
	*notes = append(*notes, fmt.Sprintf("%s: a phrase of %d tokens is longer than one CLIP window (%d) and was cut between words: %q",
		what, c.tokens(phrase), WindowTokens, shorten(phrase)))
	var pieces []string
	cur := ""
	for _, w := range strings.Fields(phrase) {
		if c.tokens(w) > WindowTokens {
			*notes = append(*notes, fmt.Sprintf("%s: a single word of %d tokens was cut between characters: %q", what, c.tokens(w), shorten(w)))
			if cur != "" {
				pieces, cur = append(pieces, cur), ""
			}
			pieces = append(pieces, c.cutWord(w)...)
			continue
		}
		next := strings.TrimSpace(cur + " " + w)
		if c.tokens(next) > WindowTokens {
			pieces, next = append(pieces, cur), w
		}
		cur = next
	}
	if cur != "" {
		pieces = append(pieces, cur)
	}
	return pieces
}

// cutWord cuts an overlong word into window-sized runs of characters,
// never inside an escape sequence.
func (c *Composer) cutWord(w string) []string {
	var out []string
	cur := ""
	rs := []rune(w)
	for i := 0; i < len(rs); i++ {
		unit := string(rs[i])
		if rs[i] == '\\' && i+1 < len(rs) {
			unit, i = string(rs[i:i+2]), i+1
		}
		if cur != "" && c.tokens(cur+unit) > WindowTokens {
			out, cur = append(out, cur), ""
		}
		cur += unit
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

// shorten trims long text for notes.
func shorten(s string) string {
	if r := []rune(s); len(r) > 60 {
		return string(r[:57]) + "..."
	}
	return s
}
