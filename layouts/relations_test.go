package layouts

import (
	"strings"
	"testing"

	"paliprompt/core"
)

func TestRelations(t *testing.T) {
	tests := []struct {
		name string
		a, b core.Object
		want []string
	}{
		{"side by side", detection("cat", 0, 40, 30, 60), detection("dog", 60, 40, 90, 60), []string{"cat left of dog"}},
		{"mirror order", detection("dog", 60, 40, 90, 60), detection("cat", 0, 40, 30, 60), []string{"dog right of cat"}},
		{"stacked", detection("sun", 40, 0, 60, 20), detection("sea", 0, 60, 100, 100), []string{"sun above sea"}},
		{"diagonal", detection("a", 0, 0, 20, 20), detection("b", 70, 70, 90, 90), []string{"a left of b", "a above b"}},
		{"contains", detection("person", 10, 10, 90, 90), detection("face", 40, 15, 60, 35),
			[]string{"person contains face"}},
		{"contained second", detection("face", 40, 15, 60, 35), detection("person", 10, 10, 90, 90),
			[]string{"person contains face"}},
		{"overlaps", detection("a", 10, 10, 50, 50), detection("b", 40, 40, 80, 80), []string{"a left of b", "a above b", "a overlaps b"}},
		{"mostly overlapping", detection("a", 10, 10, 50, 50), detection("b", 20, 20, 60, 60), []string{"a overlaps b"}},
		{"centres too close", detection("a", 10, 10, 52, 50), detection("b", 12, 60, 50, 90), []string{"a above b"}},
		{"spans overlap too much", detection("a", 10, 0, 60, 20), detection("b", 20, 40, 80, 60), []string{"a above b"}},
		{"same box", detection("a", 10, 10, 50, 50), detection("b", 10, 10, 50, 50), []string{"a overlaps b"}},
		{"touching edges", detection("a", 0, 0, 50, 100), detection("b", 50, 0, 100, 100), []string{"a left of b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := build(t, core.Result{Width: 100, Height: 100, Objects: []core.Object{tt.a, tt.b}}, Placement{})
			var got []string
			for _, r := range l.Relations {
				got = append(got, r.Text)
			}
			if strings.Join(got, "; ") != strings.Join(tt.want, "; ") {
				t.Errorf("relations %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRelationNamesRepeatedLabels(t *testing.T) {
	l := build(t, core.Result{Width: 100, Height: 100, Objects: []core.Object{
		detection("person", 0, 0, 20, 50), detection("person", 70, 0, 90, 50),
	}}, Placement{})
	if len(l.Relations) != 1 || l.Relations[0].Text != "person #0 left of person #1" {
		t.Errorf("relations %+v", l.Relations)
	}
}
