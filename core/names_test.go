package core

import (
	"reflect"
	"strings"
	"testing"
)

func TestSanitizeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"cat", "cat"},
		{"  red   ball ", "red ball"},
		{"cat ; dog", "cat dog"},
		{"dog<eos><loc0001>", "dog eos loc0001"},
		{"cat\nsegment dog", "cat segment dog"},
		{"tab\there\x00", "tab here"},
		{";;<>", ""},
		{strings.Repeat("é", 40), strings.Repeat("é", 32)},
	} {
		if got := CleanName(tc.in); got != tc.want {
			t.Errorf("CleanName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCleanNames(t *testing.T) {
	got := CleanNames([]string{"Cat", "cat", "", " ; ", "dog", "bird", "fish"}, 3)
	if want := []string{"Cat", "dog", "bird"}; !reflect.DeepEqual(got, want) {
		t.Errorf("CleanNames = %q, want %q", got, want)
	}
}

func TestNameProblem(t *testing.T) {
	for name, want := range map[string]string{
		"red ball":              "",
		"":                      "is empty",
		strings.Repeat("a", 65): "is 65 bytes, limit is 64",
		"cat;dog":               "may not contain",
		"<loc0001>":             "may not contain",
		"tab\there":             "may not contain",
		strings.Repeat("é", 32): "",
	} {
		got := NameProblem(name)
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("NameProblem(%q) = %q, want %q", name, got, want)
		}
	}
}
