package sdxl

import (
	"strings"
	"unicode"
)

// keywords are words A1111, Regional Prompter and Forge read as syntax
// when written in capitals.
var keywords = map[string]bool{
	"BREAK": true, "AND": true, "ADDBASE": true, "ADDCOMM": true, "ADDCOL": true, "ADDROW": true, "ADDP": true,
}

// Escape makes text from users or the model literal in a prompt for
// A1111/Forge (with Regional Prompter and Forge Couple) and ComfyUI:
//
//   - "(" and ")" become "\(" and "\)", so "(word:1.2)" is not an
//     attention weight; "[" and "]" (A1111's de-emphasis) become "\(" and
//     "\)" too, the one escape both UIs read the same way;
//   - backslashes are dropped (the UIs disagree on "\\");
//   - keywords in capitals (BREAK, AND, ADDBASE, ADDCOMM, ADDCOL, ADDROW,
//     ADDP) are lowercased;
//   - line breaks, tabs and other control characters become spaces (Forge
//     Couple splits regions at line breaks) and runs of spaces collapse.
func Escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
		case r == '(' || r == '[':
			b.WriteString(`\(`)
		case r == ')' || r == ']':
			b.WriteString(`\)`)
		case unicode.IsControl(r) || unicode.IsSpace(r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	words := strings.Fields(b.String())
	for i, w := range words {
		if keywords[w] {
			words[i] = strings.ToLower(w)
		}
	}
	return strings.Join(words, " ")
}

// plainText is what the text encoder sees of a prompt: escapes resolved,
// attention brackets and their ":weight" removed. Tokens are counted on it.
func plainText(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == '\\' && i+1 < len(rs):
			i++
			b.WriteRune(rs[i])
		case r == '(' || r == ')' || r == '[' || r == ']':
		case r == ':':
			if n := weightLength(rs[i+1:]); n > 0 {
				i += n
				continue
			}
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// weightLength returns how many runes of rs form " 1.2" closed by an
// unescaped ")" (not counting the bracket), or 0 when rs does not start
// with a weight.
func weightLength(rs []rune) int {
	digits := 0
	for i, r := range rs {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.' || r == ' ' || (r == '-' && digits == 0):
		case r == ')' && digits > 0:
			return i
		default:
			return 0
		}
	}
	return 0
}
