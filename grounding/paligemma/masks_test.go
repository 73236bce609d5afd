package paligemma

import (
	"testing"
)

// TestDecoderMaskInputs: the own layout's decoder takes the sliding-window
// mask from the caller; its first version, Gemma 1 and the community
// layout do not, and keep loading.
func TestDecoderMaskInputs(t *testing.T) {
	for _, tc := range []struct {
		model  string
		layout decoderLayout
		window int
	}{
		{tinyOwn, layoutOwn, 512},
		{tinyHidden12, layoutOwn, 128},
		{tinyV1, layoutOwn, 0},
		{tinyPG1, layoutOwn, 0},
		{tinyCommunity, layoutCommunity, 0},
	} {
		s, err := loadModelSpec(tinyModelDir(t, tc.model))
		if err != nil {
			t.Fatal(err)
		}
		if s.layout != tc.layout || s.slidingWindow != tc.window {
			t.Errorf("%s: layout %v, sliding window input %d; want %v, %d", tc.model, s.layout, s.slidingWindow, tc.layout, tc.window)
		}
	}
}

// TestMasks compares the masks the decode loop builds with the rule
// transformers applies, written out per element: keys before a row's
// padding (and everything for a padding query) are masked; sliding-window
// layers also mask, for queries after the prefix block, the keys at cache
// distance >= window.
func TestMasks(t *testing.T) {
	bt := &batch{b: 2, length: 6, pad: []int{0, 2}}
	for _, tc := range []struct {
		name                  string
		past, queries, window int
		cuts                  bool
	}{
		{"prefill longer than the window", 0, 6, 3, false},
		{"first step", 6, 1, 8, false},
		{"last step inside the window", 7, 1, 8, false},
		{"first step that cuts", 8, 1, 8, true},
		{"step far past the window", 12, 1, 3, true},
	} {
		total := tc.past + tc.queries
		mask := make([]float32, bt.b*tc.queries*total)
		fillMask(mask, bt, tc.past, tc.queries)
		sliding := make([]float32, len(mask))
		cuts := fillSlidingMask(sliding, mask, bt, tc.past, tc.queries, tc.window)
		if cuts != tc.cuts {
			t.Errorf("%s: sliding mask differs %v, want %v", tc.name, cuts, tc.cuts)
		}
		if !cuts {
			sliding = mask
		}
		for r := range bt.b {
			for i := range tc.queries {
				q := tc.past + i
				for k := range total {
					allowed := q >= bt.pad[r] && k >= bt.pad[r]
					inWindow := q < bt.length || q-k < tc.window
					at := (r*tc.queries+i)*total + k
					if got := mask[at] == 0; got != allowed {
						t.Errorf("%s: row %d query %d key %d: attends %v, want %v", tc.name, r, q, k, got, allowed)
					}
					if got := sliding[at] == 0; got != (allowed && inWindow) {
						t.Errorf("%s: sliding row %d query %d key %d: attends %v, want %v", tc.name, r, q, k, got, allowed && inWindow)
					}
					if v := mask[at]; v != 0 && v != maskedOut {
						t.Errorf("%s: mask value %v", tc.name, v)
					}
				}
			}
		}
	}
}
