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
