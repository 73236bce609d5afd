package sdxl

import (
	"strings"
	"unicode"
)

// Escape makes text from users or the model literal in every prompt the
// plan writes: A1111/Forge (with Regional Prompter and Forge Couple) and
// ComfyUI. Each rule answers one tool's parser (escape_test.go has each
// parser as a reference function, with the file and version it follows):
//
//   - "(" and ")" become "\(" and "\)", so "(word:1.2)" is not an
//     attention weight (A1111 prompt_parser.py re_attention, ComfyUI
//     sd1_clip.py token_weights); "[" "]" (A1111's de-emphasis, prompt
//     editing "[a:b:0.5]", alternation "[a|b]") and "{" "}" (Forge
//     Couple's common prompts "{key:value}", dynamic prompts "{a|b}")
//     become "\(" and "\)" too: the one escape both UIs read as a literal
//     bracket;
//   - "<" and ">" become spaces: A1111 reads "<lora:name:1>" and
//     "<hypernet:...>" as extra networks (extra_networks.py), Forge
//     Couple's "< >" syntax as common prompts;
//   - "|" becomes "/": outside brackets A1111's schedule parser fails on
//     it and takes the whole prompt literally, prompt editing included;
//   - ":" becomes a space where a number follows it ("16:9"), because
//     A1111 reads a trailing ":number" of a prompt, or of a part between
//     ANDs (Regional Prompter's Latent mode joins regions with AND), as
//     that part's weight (prompt_parser.py re_weight); and after
//     "embedding", which ComfyUI reads as a textual-inversion name;
//   - backslashes are dropped (the UIs disagree on "\\");
//   - Regional Prompter's keywords BREAK, AND, ADDBASE, ADDCOMM, ADDCOL,
//     ADDROW and ADDP are lowercased wherever they occur, inside words
//     too ("STANDING" -> "STandING"): the extension replaces them as
//     substrings (rp.py allchanger, keyreplacer); and "add" before "p",
//     "col" or "row" gets a hyphen in any case ("addp" -> "add-p"),
//     because it also looks for ADDP, ADDCOL and ADDROW in the upper-cased
//     prompt (bckeydealer switches to Prompt mode on ADDP). A1111's own
//     BREAK and AND are whole words in capitals and go with them;
//   - line breaks, tabs and other control characters become spaces (Forge
//     Couple splits regions at line breaks) and runs of spaces collapse.
//
// CLIP lower-cases text before it tokenizes it, so the lowercased
// keywords read the same to the text encoder. A1111 also replaces words
// that name an installed textual-inversion embedding; which names those
// are depends on the user's folders, so no rule here can catch them.
func Escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
		case r == '(' || r == '[' || r == '{':
			b.WriteString(`\(`)
		case r == ')' || r == ']' || r == '}':
			b.WriteString(`\)`)
		case r == '<' || r == '>':
			b.WriteByte(' ')
		case r == '|':
			b.WriteByte('/')
		case unicode.IsControl(r) || unicode.IsSpace(r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(neutraliseKeywords(neutraliseColons(b.String()))), " ")
}

// neutraliseColons replaces each colon that a number follows, or that
// ends "embedding", with a space. It runs after the other rules, so that
// what follows the colon is what the UIs will see.
func neutraliseColons(s string) string {
	if !strings.Contains(s, ":") {
		return s
	}
	rs := []rune(s)
	// From the right, so that a colon sees what follows it after the
	// later ones became spaces ("::9" -> ": 9" would still be a weight).
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i] == ':' && (numberFollows(rs[i+1:]) || endsWithFold(rs[:i], "embedding")) {
			rs[i] = ' '
		}
	}
	return string(rs)
}

// rpKeywords are Regional Prompter's keywords (regions.py KEYBRK, KEYBASE,
// KEYCOMM, KEYCOL, KEYROW, KEYPROMPT; rp.py "AND"), which it finds as
// substrings in capitals.
var rpKeywords = []string{"BREAK", "AND", "ADDBASE", "ADDCOMM", "ADDCOL", "ADDROW", "ADDP"}

// rpUpperKeywords are the keywords it also finds in the upper-cased
// prompt, in any case, as "add" + the rest.
var rpUpperKeywords = []string{"p", "col", "row"}

// neutraliseKeywords lowercases every keyword occurrence, then breaks
// "add"+"p"/"col"/"row" in any case with a hyphen. Lowercasing cannot make
// a new keyword (they are all capitals), so one pass suffices.
func neutraliseKeywords(s string) string {
	for _, k := range rpKeywords {
		s = strings.ReplaceAll(s, k, strings.ToLower(k))
	}
	lower := strings.ToLower(s)
	if !strings.Contains(lower, "add") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte(s[i])
		if i >= 2 && lower[i-2:i+1] == "add" && addKeywordAt(lower[i+1:]) {
			b.WriteByte('-')
		}
	}
	return b.String()
}

func addKeywordAt(rest string) bool {
	for _, k := range rpUpperKeywords {
		if strings.HasPrefix(rest, k) {
			return true
		}
	}
	return false
}

// numberFollows reports whether rs starts with optional spaces and then
// a sign, a digit or a dot: what A1111's re_weight takes as a weight.
func numberFollows(rs []rune) bool {
	for _, r := range rs {
		switch {
		case unicode.IsSpace(r):
			continue
		case r == '+' || r == '-' || r == '.' || (r >= '0' && r <= '9'):
			return true
		}
		return false
	}
	return false
}

// endsWithFold reports whether rs ends with word, ignoring ASCII case.
func endsWithFold(rs []rune, word string) bool {
	if len(rs) < len(word) {
		return false
	}
	return strings.EqualFold(string(rs[len(rs)-len(word):]), word)
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
