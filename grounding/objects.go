package grounding

import (
	"strings"
	"unicode"
)

// maxNameLen bounds one object name (in bytes) in a task prefix.
const maxNameLen = 64

// sanitizeName makes user text safe inside a "detect a ; b" prefix: the
// separator ';', angle brackets (which could spell special tokens such as
// <eos> or <loc0000>), newlines (which end the prefix) and other control
// characters become spaces; runs of spaces collapse; the result is trimmed
// and capped at maxNameLen bytes on a rune boundary.
func sanitizeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == ';' || r == '<' || r == '>' || unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxNameLen {
		cut := maxNameLen
		for cut > 0 && !utf8RuneStart(s[cut]) {
			cut--
		}
		s = strings.TrimSpace(s[:cut])
	}
	return s
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// cleanNames sanitizes names, drops empty ones and case-insensitive
// duplicates, and keeps at most limit.
func cleanNames(names []string, limit int) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		n = sanitizeName(n)
		key := strings.ToLower(n)
		if n == "" || seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, n)
		if len(out) == limit {
			break
		}
	}
	return out
}

// captionStopWords split a caption into candidate noun phrases: articles,
// pronouns, prepositions, conjunctions, auxiliaries, common verbs,
// numerals and words about the picture itself.
var captionStopWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`a an the this that these those some any each every its it it's their his her
		their our your my there here is are was were be been being has have had do does did
		of in on at to from by with without for about into onto over under above below behind beside
		near next front back top bottom side left right middle center between among around through
		across along against toward towards up down out off inside outside upon while
		and or but nor so then than as also very too just only
		one two three four five six seven eight nine ten several many few lots lot group pair couple
		image picture photo photograph view shot scene background foreground close closeup
		stands standing sits sitting lies lying holds holding looks looking walks walking runs running
		rides riding plays playing wears wearing eats eating flies flying shows showing
		appears seems made covered filled parked located`) {
		captionStopWords[w] = true
	}
}

// maxPhraseWords keeps the head of long candidate phrases.
const maxPhraseWords = 3

// namesFromCaption picks object names from a caption: the runs of words
// between stop words and punctuation, keeping the last maxPhraseWords of
// each (the noun usually ends an English noun phrase: "red ball"),
// lower-cased, de-duplicated, at most limit. "A cow on the beach" gives
// cow, beach.
func namesFromCaption(caption string, limit int) []string {
	var names, phrase []string
	flush := func() {
		if len(phrase) > 0 {
			names = append(names, strings.Join(phrase[max(0, len(phrase)-maxPhraseWords):], " "))
			phrase = phrase[:0]
		}
	}
	word := strings.Builder{}
	endWord := func() {
		w := strings.ToLower(strings.Trim(word.String(), "'-"))
		word.Reset()
		switch {
		case w == "":
		case captionStopWords[w] || strings.HasSuffix(w, "ing") || isNumber(w):
			flush()
		default:
			phrase = append(phrase, w)
		}
	}
	for _, r := range caption {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\'' || r == '-':
			word.WriteRune(r)
		case unicode.IsSpace(r):
			endWord()
		default: // punctuation ends the phrase
			endWord()
			flush()
		}
	}
	endWord()
	flush()
	return cleanNames(names, limit)
}

func isNumber(w string) bool {
	return strings.IndexFunc(w, func(r rune) bool { return !unicode.IsDigit(r) }) < 0
}
