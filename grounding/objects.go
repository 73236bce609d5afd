package grounding

import (
	"strings"
	"unicode"

	"paliprompt/core"
)

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

// NamesFromCaption picks object names from a caption: the runs of words
// between stop words and punctuation, keeping the last maxPhraseWords of
// each (the noun usually ends an English noun phrase: "red ball"),
// lower-cased, de-duplicated, at most limit. "A cow on the beach" gives
// cow, beach.
func NamesFromCaption(caption string, limit int) []string {
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
	return core.CleanNames(names, limit)
}

func isNumber(w string) bool {
	return strings.IndexFunc(w, func(r rune) bool { return !unicode.IsDigit(r) }) < 0
}
