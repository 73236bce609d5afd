package layouts

import (
	"testing"

	"paliprompt/core"
	"paliprompt/layouts/layoutstest"
)

var (
	detection    = layoutstest.Detection
	segmentation = layoutstest.Segmentation
	livingRoom   = layoutstest.LivingRoom
)

func newPlanner(t testing.TB) *Planner {
	t.Helper()
	p, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func build(t testing.TB, res core.Result, place Placement) Layout {
	t.Helper()
	l, err := newPlanner(t).Build(res, place)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
