package layouts

import (
	"fmt"
	"strings"
	"unicode"
)

// proseLocations read the 3x3 grid cells in sentences.
var proseLocations = [3][3]string{
	{"at the top left", "at the top", "at the top right"},
	{"on the left", "in the center", "on the right"},
	{"at the bottom left", "at the bottom", "at the bottom right"},
}

// fillingFrame is the area from which an object "fills the frame".
const fillingFrame = 0.9

// sentence describes an object for prompts, e.g. "a cat in the upper-left
// quadrant, taking about a quarter of the frame". It returns the location
// phrase and the sentence. The location is the quadrant when at least
// QuadrantMin of the object lies in one, else its 3x3 grid cell.
func (p *Planner) sentence(o Object) (location, sentence string) {
	noun := withArticle(o.Label)
	if o.Area >= fillingFrame {
		return "filling the frame", noun + " filling the frame"
	}
	location = proseLocations[o.Cell.Row][o.Cell.Col]
	if q, share := o.QuadrantShares.dominant(); share >= p.cfg.QuadrantMin {
		location = "in the " + quadrantPhrase(q) + " quadrant"
	}
	return location, fmt.Sprintf("%s %s, taking %s", noun, location, areaPhrase(o.Area))
}

// determiners start labels that need no article.
var determiners = []string{"a ", "an ", "the ", "some ", "two ", "three ", "several ", "many ", "his ", "her ", "their "}

// withArticle puts "a" or "an" before a label unless it has a determiner
// or starts with a number.
func withArticle(label string) string {
	lower := strings.ToLower(label)
	for _, d := range determiners {
		if strings.HasPrefix(lower, d) {
			return label
		}
	}
	first := []rune(lower)[0]
	switch {
	case unicode.IsDigit(first):
		return label
	case strings.ContainsRune("aeiou", first):
		return "an " + label
	}
	return "a " + label
}
