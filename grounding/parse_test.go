package grounding

import (
	"reflect"
	"testing"

	"paliprompt/core"
	"paliprompt/grounding/groundingtest"
)

var seg16 = groundingtest.SegTokens

func codes(start int) []int {
	c := make([]int, 16)
	for i := range c {
		c[i] = start + i
	}
	return c
}

func TestParseDetections(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		found   []Detection
		reasons []string
	}{
		{"empty", "", nil, nil},
		{"one", "<loc0051><loc0309><loc0708><loc0646> shoe",
			[]Detection{{Label: "shoe", Locs: [4]int{51, 309, 708, 646}}}, nil},
		{"two with separator", "<loc0000><loc0000><loc0511><loc0511> red circle ; <loc0512><loc0512><loc1023><loc1023> blue square",
			[]Detection{{Label: "red circle", Locs: [4]int{0, 0, 511, 511}}, {Label: "blue square", Locs: [4]int{512, 512, 1023, 1023}}}, nil},
		{"missing separator", "<loc0001><loc0002><loc0003><loc0004> cat <loc0005><loc0006><loc0007><loc0008> dog",
			[]Detection{{Label: "cat", Locs: [4]int{1, 2, 3, 4}}, {Label: "dog", Locs: [4]int{5, 6, 7, 8}}}, nil},
		{"segment", "<loc0100><loc0200><loc0300><loc0400>" + seg16(10) + " cat",
			[]Detection{{Label: "cat", Locs: [4]int{100, 200, 300, 400}, Codes: codes(10)}}, nil},
		{"eos left in", "<loc0001><loc0002><loc0003><loc0004> cat<eos>",
			[]Detection{{Label: "cat", Locs: [4]int{1, 2, 3, 4}}}, nil},
		{"too few locs", "<loc0001><loc0002> cat ; <loc0001><loc0002><loc0003><loc0004> dog",
			[]Detection{{Label: "dog", Locs: [4]int{1, 2, 3, 4}}}, []string{"found 2 of 4 location tokens"}},
		{"missing label", "<loc0001><loc0002><loc0003><loc0004> ; ",
			nil, []string{"missing label"}},
		{"inverted", "<loc0500><loc0002><loc0003><loc0004> cat",
			nil, []string{"inverted box (y0=500 x0=2 y1=3 x1=4)"}},
		{"truncated segment", "<loc0100><loc0200><loc0300><loc0400><seg001><seg002>",
			nil, []string{"found 2 of 16 segmentation tokens"}},
		{"out of range", "<loc1024><loc0000><loc1024><loc0004> cat",
			nil, []string{"location bin 1024 is out of range 0..1023"}},
		{"text only", "a cat on a mat", nil, []string{"found 0 of 4 location tokens"}},
		{"malformed token is text", "<loc12><loc0001><loc0002><loc0003><loc0004> cat",
			[]Detection{{Label: "cat", Locs: [4]int{1, 2, 3, 4}}}, []string{"found 0 of 4 location tokens"}},
		{"repeated objects kept", "<loc0001><loc0002><loc0003><loc0004> cat ; <loc0001><loc0002><loc0003><loc0004> cat",
			[]Detection{{Label: "cat", Locs: [4]int{1, 2, 3, 4}}, {Label: "cat", Locs: [4]int{1, 2, 3, 4}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			found, skipped := ParseDetections("detect", tt.text)
			if !reflect.DeepEqual(found, tt.found) {
				t.Errorf("found = %+v, want %+v", found, tt.found)
			}
			var reasons []string
			for _, s := range skipped {
				reasons = append(reasons, s.Reason)
			}
			if !reflect.DeepEqual(reasons, tt.reasons) {
				t.Errorf("skip reasons = %q, want %q", reasons, tt.reasons)
			}
		})
	}
}

func TestDetectionBox(t *testing.T) {
	d := Detection{Label: "x", Locs: [4]int{0, 1023, 1023, 1023}}
	if got, want := d.Box(640, 480), (core.Box{X0: 640, Y0: 0, X1: 640, Y1: 480}); got != want {
		t.Errorf("core.Box = %+v, want %+v", got, want)
	}
	d = Detection{Label: "x", Locs: [4]int{51, 309, 708, 646}}
	n := d.BoxNorm()
	if n.X0 != 309.0/1023 || n.Y0 != 51.0/1023 || n.X1 != 646.0/1023 || n.Y1 != 708.0/1023 {
		t.Errorf("BoxNorm = %+v", n)
	}
}

func FuzzParseDetections(f *testing.F) {
	for _, s := range []string{
		"<loc0051><loc0309><loc0708><loc0646> shoe",
		"<loc0000><loc0000><loc0511><loc0511> red circle ; <loc0512><loc0512><loc1023><loc1023> blue square",
		"<loc0100><loc0200><loc0300><loc0400>" + seg16(10) + " cat",
		"<loc0100><loc0200><loc0300><loc0400><seg001><seg0",
		"<loc99999><seg>;;; <loc0001> ;",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		found, _ := ParseDetections("segment", text)
		for _, d := range found {
			n := d.BoxNorm()
			if n.X0 < 0 || n.Y0 < 0 || n.X1 > 1 || n.Y1 > 1 || n.X0 > n.X1 || n.Y0 > n.Y1 {
				t.Fatalf("box out of range: %+v from %q", n, text)
			}
			if d.Label == "" || (d.Codes != nil && len(d.Codes) != 16) {
				t.Fatalf("bad detection %+v from %q", d, text)
			}
		}
	})
}
