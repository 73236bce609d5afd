package sdxl

import (
	"fmt"
	"strings"
	"unicode"

	"paliprompt/layouts"
)

// stopWords end a noun phrase when walking away from a label in the
// caption: articles, numbers, prepositions, conjunctions and common verbs.
var stopWords = setOf(`a an the this that these those some two three four five several many
	of on in at by to from into onto over under near behind beside between with without
	and or but while as is are was were be being has have had it its his her their there
	which who whose sitting standing lying holding wearing looking`)

// clauseStops end a "with ..." clause after a label.
var clauseStops = setOf(`and or but while on in at by near behind beside under over from into onto
	is are was were that which who , .`)

func setOf(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// captionWord is a word of the caption, lowercased, with whether
// punctuation followed it (a phrase boundary).
type captionWord struct {
	text     string
	boundary bool
}

func captionWords(caption string) []captionWord {
	var words []captionWord
	for _, f := range strings.Fields(strings.ToLower(caption)) {
		trimmed := strings.TrimRightFunc(f, unicode.IsPunct)
		boundary := trimmed != f
		trimmed = strings.TrimLeftFunc(trimmed, unicode.IsPunct)
		if trimmed == "" {
			if len(words) > 0 {
				words[len(words)-1].boundary = true
			}
			continue
		}
		words = append(words, captionWord{trimmed, boundary})
	}
	return words
}

// findLabel finds the first occurrence of a label's words in the caption
// (the last word may carry a plural "s" or "es"); it returns the index of
// its first and one past its last word, or -1.
func findLabel(words []captionWord, label string) (int, int) {
	lw := strings.Fields(strings.ToLower(label))
	if len(lw) == 0 {
		return -1, -1
	}
	for i := 0; i+len(lw) <= len(words); i++ {
		ok := true
		for k, w := range lw {
			got := words[i+k].text
			last := k == len(lw)-1
			if got != w && !(last && (got == w+"s" || got == w+"es")) {
				ok = false
				break
			}
		}
		if ok {
			return i, i + len(lw)
		}
	}
	return -1, -1
}

// maxModifiers bounds the words taken before a label, maxClause after it.
const (
	maxModifiers = 3
	maxClause    = 3
)

// subject is an object's region subject: the label with the attributes
// the caption gives it, in caption order ("black cat", "woman with long
// hair"). It takes up to 3 words right before the label's first mention
// (stopping at an article, preposition, number, verb or punctuation) and
// a following "with ..." clause of up to 3 words when the clause names
// no other object. Without a mention it is the label itself.
func subject(caption string, label string, others []string) string {
	words := captionWords(caption)
	start, end := findLabel(words, label)
	if start < 0 {
		return label
	}
	first := start
	for first > 0 && start-first < maxModifiers && !stopWords[words[first-1].text] && !words[first-1].boundary {
		first--
	}
	parts := []string{}
	for _, w := range words[first:start] {
		parts = append(parts, w.text)
	}
	parts = append(parts, label)
	return strings.Join(append(parts, withClause(words, end, others)...), " ")
}

// withClause returns the words of a "with ..." clause starting at i, or
// nil.
func withClause(words []captionWord, i int, others []string) []string {
	if i >= len(words) || words[i].text != "with" || words[i-1].boundary {
		return nil
	}
	var out []string
	for k := i + 1; k < len(words) && len(out) < maxClause; k++ {
		if clauseStops[words[k].text] {
			break
		}
		out = append(out, words[k].text)
		if words[k].boundary {
			break
		}
	}
	clause := " " + strings.Join(out, " ") + " "
	for _, o := range others {
		if o != "" && strings.Contains(clause, " "+strings.ToLower(o)) {
			return nil
		}
	}
	if len(out) == 0 {
		return nil
	}
	return append([]string{"with"}, out...)
}

// scenePrepositions start a caption's scene phrase.
var scenePrepositions = setOf("in at on inside outside near by under")

// scenePhrase finds where the caption's scene is: the last phrase after
// "in", "at", "on", ... that names no object ("in a living room" ->
// "living room"). Empty when there is none.
func scenePhrase(caption string, labels []string) string {
	words := captionWords(caption)
	best := ""
	for i := 0; i < len(words); i++ {
		if !scenePrepositions[words[i].text] || words[i].boundary {
			continue
		}
		var phrase []string
		for k := i + 1; k < len(words); k++ {
			if scenePrepositions[words[k].text] || clauseStops[words[k].text] {
				break
			}
			if len(phrase) > 0 || !stopWords[words[k].text] {
				phrase = append(phrase, words[k].text)
			}
			if words[k].boundary {
				break
			}
		}
		text := strings.Join(phrase, " ")
		if text != "" && !mentionsAny(text, labels) {
			best = text
		}
	}
	return best
}

func mentionsAny(text string, labels []string) bool {
	words := captionWords(text)
	for _, l := range labels {
		if s, _ := findLabel(words, l); s >= 0 {
			return true
		}
	}
	return false
}

// StylePrefixes are the PaliGemma prefixes of the style questions in a
// language; the plugin adds them to the grounding request's prefixes.
func (c *Composer) StylePrefixes(lang string) []string {
	out := make([]string, 0, len(c.cfg.StyleQuestions))
	for _, q := range c.cfg.StyleQuestions {
		out = append(out, expandLang(q.Prefix, lang))
	}
	return out
}

func expandLang(prefix, lang string) string {
	if lang == "" {
		lang = "en"
	}
	return strings.ReplaceAll(prefix, "{lang}", lang)
}

// styleAnswers turns the answers to the style questions into global
// prompt phrases, skipping answers that say nothing.
func (c *Composer) styleAnswers(l layouts.Layout, lang string) []string {
	var out []string
	for _, q := range c.cfg.StyleQuestions {
		prefix := expandLang(q.Prefix, lang)
		for _, a := range l.Answers {
			if a.Prefix != prefix {
				continue
			}
			text := strings.TrimRight(strings.TrimSpace(a.Text), ".,;:!? ")
			if text == "" || c.ignored[strings.ToLower(text)] {
				break
			}
			out = append(out, strings.ReplaceAll(q.Format, "{answer}", Escape(text)))
			break
		}
	}
	return out
}

// splitTerms splits request terms at commas into phrases, escaped.
func splitTerms(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = Escape(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// regionPrompt fits an object's region prompt into one CLIP window: its
// subject and location; over the window it drops the location, then the
// attributes before the label, then words from the end, and notes each.
func (c *Composer) regionPrompt(subj string, o layouts.Object, notes *[]string) string {
	full := Escape(subj + " " + o.Location)
	if c.tokens(full) <= WindowTokens {
		return full
	}
	label := Escape(o.Label)
	subjEsc := Escape(subj)
	for _, try := range []struct{ prompt, dropped string }{
		{subjEsc, "its location phrase"},
		{label, "its location phrase and caption attributes"},
	} {
		if c.tokens(try.prompt) <= WindowTokens {
			*notes = append(*notes, fmt.Sprintf("region %d (%s): dropped %s to fit one CLIP window", o.Index, o.Label, try.dropped))
			return try.prompt
		}
	}
	words := strings.Fields(label)
	for len(words) > 1 && c.tokens(strings.Join(words, " ")) > WindowTokens {
		words = words[:len(words)-1]
	}
	*notes = append(*notes, fmt.Sprintf("region %d (%s): the label alone is over one CLIP window; kept its first %d words",
		o.Index, shorten(o.Label), len(words)))
	prompt := strings.Join(words, " ")
	if c.tokens(prompt) > WindowTokens {
		prompt = c.cutWord(prompt)[0]
	}
	return prompt
}
