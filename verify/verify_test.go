package verify

import (
	"image"
	"slices"
	"testing"

	"paliprompt/core"
)

// plan: a cat top-left, a dog bottom-right (normalized boxes).
var twoObjects = Plan{Objects: []PlannedObject{
	{Index: 0, Label: "cat", Box: core.Box{X0: 0.05, Y0: 0.05, X1: 0.45, Y1: 0.45}},
	{Index: 1, Label: "dog", Box: core.Box{X0: 0.55, Y0: 0.5, X1: 0.95, Y1: 0.95}},
}}

// found builds a result on a w x h image from normalized boxes.
func found(w, h int, objs ...any) core.Result {
	res := core.Result{Width: w, Height: h}
	for i := 0; i < len(objs); i += 2 {
		b := objs[i+1].(core.Box)
		res.Objects = append(res.Objects, core.Object{Label: objs[i].(string), Source: core.TaskDetect,
			Box: b.Scale(float64(w), float64(h)), BoxNorm: b})
	}
	return res
}

func TestCheck(t *testing.T) {
	cat, dog := twoObjects.Objects[0].Box, twoObjects.Objects[1].Box
	near := func(b core.Box) core.Box {
		return core.Box{X0: b.X0 + 0.02, Y0: b.Y0 - 0.01, X1: b.X1 + 0.01, Y1: b.Y1 + 0.02}
	}
	tests := []struct {
		name    string
		res     core.Result
		pass    bool
		actions []string
		summary string
	}{
		{"as planned", found(1152, 896, "cat", near(cat), "dog", near(dog)), true, nil, "pass"},
		{"another aspect ratio", found(640, 1536, "dog", dog, "cat", cat), true, nil, "pass"},
		{"swapped", found(1152, 896, "cat", dog, "dog", cat), false,
			[]string{ActionObjectMisplaced, ActionRaiseWeight, ActionObjectMisplaced, ActionRaiseWeight, ActionRetrySeed}, "misplaced: cat, dog"},
		{"dog missing", found(1152, 896, "cat", near(cat)), false,
			[]string{ActionObjectMissing, ActionRaiseWeight, ActionRetrySeed}, "missing: dog"},
		{"a second cat", found(1152, 896, "cat", near(cat), "dog", dog, "cat", dog), false,
			[]string{ActionExtraObject, ActionRetrySeed}, "1 extra"},
		{"nothing", found(1152, 896), false,
			[]string{ActionObjectMissing, ActionRaiseWeight, ActionObjectMissing, ActionRaiseWeight, ActionRetrySeed}, "missing: cat, dog"},
		{"other labels ignored", found(1152, 896, "cat", cat, "dog", dog, "tree", dog), true, nil, "pass"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(DefaultConfig(), twoObjects, tt.res)
			var actions []string
			for _, a := range r.Advice {
				actions = append(actions, a.Action)
			}
			if r.Pass != tt.pass || !slices.Equal(actions, tt.actions) || !contains(r.Summary, tt.summary) {
				t.Errorf("pass %v actions %v summary %q; want %v %v %q", r.Pass, actions, r.Summary, tt.pass, tt.actions, tt.summary)
			}
			if r.Score < 0 || r.Score > 1 || (tt.pass && r.Score < DefaultConfig().PassScore) {
				t.Errorf("score %v", r.Score)
			}
		})
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// TestInsideUsesRegionAndMask: the share inside is of the found mask's
// pixels, and the region is the plan's mask when it has one.
func TestInsideUsesRegionAndMask(t *testing.T) {
	region := image.NewGray(image.Rect(0, 0, 100, 100)) // left half of the canvas
	for y := range 100 {
		for x := range 50 {
			region.Pix[y*100+x] = 255
		}
	}
	plan := Plan{Objects: []PlannedObject{{Index: 0, Label: "cat", Box: core.Box{X0: 0, Y0: 0, X1: 1, Y1: 1}, Region: region, Segmented: true}}}
	res := found(200, 200, "cat", core.Box{X0: 0, Y0: 0, X1: 1, Y1: 1})
	if got := Check(DefaultConfig(), plan, res).Objects[0].Inside; got < 0.49 || got > 0.51 {
		t.Errorf("box over the whole frame: %v inside a half-frame region, want 0.5", got)
	}
	m := &core.Mask{Rect: image.Rect(0, 0, 200, 200), Values: make([]float32, 200*200)}
	for y := range 200 {
		for x := range 200 {
			m.Values[y*200+x] = -1
			if x < 80 {
				m.Values[y*200+x] = 1
			}
		}
	}
	res.Objects[0].Mask = m
	if got := Check(DefaultConfig(), plan, res).Objects[0].Inside; got != 1 {
		t.Errorf("a mask in the left 40%%: %v inside, want 1", got)
	}
	if !plan.Segmented() || !slices.Equal(plan.Labels(), []string{"cat"}) {
		t.Errorf("plan %+v", plan)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.MinIoU, c.GoodIoU, c.WeightFactor = 2, 0, 1
	err := c.Validate()
	if err == nil || !contains(err.Error(), "verify.min_iou") || !contains(err.Error(), "verify.good_iou") || !contains(err.Error(), "verify.weight_factor") {
		t.Errorf("Validate: %v", err)
	}
}

// TestRaiseWeightAdvice: a missing object's region weight is raised by the
// factor, up to max_weight; at the cap there is nothing to raise, and a
// plan without weights gets the advice without a number.
func TestRaiseWeightAdvice(t *testing.T) {
	cfg := DefaultConfig()
	tests := []struct {
		weight float64
		want   float64 // 0: no weight in the advice
		advice bool
	}{
		{1, 1.5, true},
		{2.5, 3, true},
		{3, 0, false},
		{0, 0, true},
	}
	for _, tt := range tests {
		plan := Plan{Objects: []PlannedObject{{Index: 0, Label: "cat", Box: core.Box{X0: 0.1, Y0: 0.1, X1: 0.4, Y1: 0.4}, Weight: tt.weight}}}
		r := Check(cfg, plan, found(512, 512))
		i := slices.IndexFunc(r.Advice, func(a Advice) bool { return a.Action == ActionRaiseWeight })
		if (i >= 0) != tt.advice || (i >= 0 && (r.Advice[i].Weight != tt.want || r.Advice[i].Region != 0)) {
			t.Errorf("weight %v: advice %+v, want raise %v to %v", tt.weight, r.Advice, tt.advice, tt.want)
		}
	}
}
