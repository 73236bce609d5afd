package core

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameBytes bounds one object name in a task prefix ("detect a ; b"),
// wherever the name comes from: a request (longer is a 400) or a caption
// (cut on a rune boundary).
const MaxNameBytes = 64

// nameBreakers are the characters a name cannot carry into a prefix: the
// separator ';', angle brackets (which could spell special tokens such as
// <eos> or <loc0000>); control characters (a newline ends the prefix) are
// refused too.
const nameBreakers = ";<>"

// NameProblem says why a request's object name cannot go into a prefix,
// or "" when it can (after Fields-joining its spaces).
func NameProblem(name string) string {
	switch {
	case name == "":
		return "is empty"
	case len(name) > MaxNameBytes:
		return fmt.Sprintf("is %d bytes, limit is %d", len(name), MaxNameBytes)
	case strings.ContainsAny(name, nameBreakers) || strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "may not contain ';', '<', '>' or control characters"
	}
	return ""
}

// CleanName makes text safe as an object name inside a prefix: the
// characters NameProblem refuses become spaces, runs of spaces collapse,
// the result is trimmed and cut to MaxNameBytes on a rune boundary.
func CleanName(s string) string {
	return cut(CleanText(strings.ReplaceAll(s, ";", " ")), MaxNameBytes)
}

// CleanText makes free text (a question) one line that cannot spell a
// special token: ';' stays, angle brackets and control characters become
// spaces, runs of spaces collapse.
func CleanText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '<' || r == '>' || unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// CleanNames cleans names (CleanName), drops empty ones and
// case-insensitive duplicates, and keeps at most limit.
func CleanNames(names []string, limit int) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		n = CleanName(n)
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

// cut shortens s to at most n bytes on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.TrimSpace(s[:n])
}
