package layouts

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"paliprompt/core"
	"paliprompt/layouts/layoutstest"
)

func FuzzBuild(f *testing.F) {
	seed := func(w, h uint16, objs ...[5]float32) []byte {
		b := binary.LittleEndian.AppendUint16(nil, w)
		b = binary.LittleEndian.AppendUint16(b, h)
		for i, o := range objs {
			b = append(b, byte(i))
			for _, v := range o[:4] {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
			}
			b = append(b, byte(o[4]))
		}
		return b
	}
	f.Add(seed(640, 480, [5]float32{10, 10, 200, 200, 1}, [5]float32{100, 100, 600, 470, 0}), "cat=top-left")
	f.Add(seed(100, 100, [5]float32{0, 0, 100, 100, 0}, [5]float32{50, 0, 50, 100, 0}), "mirror; 1=[0,0,1,1]")
	f.Add(seed(300, 200, [5]float32{float32(math.NaN()), 0, 1, 1, 2}, [5]float32{-5, -5, 400, 300, 1}), "dog=on the right")
	f.Add([]byte{0, 0, 0, 0}, "")
	f.Fuzz(func(t *testing.T, data []byte, placement string) {
		res := layoutstest.FuzzResult(data)
		place, err := ParsePlacement(placement)
		if err != nil {
			place = Placement{}
		}
		l, err := newPlanner(t).Build(res, place)
		if res.Width <= 0 || res.Height <= 0 {
			if err == nil {
				t.Fatal("no error for an image without size")
			}
			return
		}
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		checkLayout(t, res, l)
	})
}

// checkLayout checks the invariants of any layout.
func checkLayout(t *testing.T, res core.Result, l Layout) {
	dropped := 0
	for _, d := range l.Dropped {
		if d.What == "object" {
			dropped++
		}
		if d.Reason == "" {
			t.Fatalf("drop without a reason: %+v", d)
		}
	}
	if len(l.Objects)+dropped != len(res.Objects) {
		t.Fatalf("%d kept + %d dropped != %d objects", len(l.Objects), dropped, len(res.Objects))
	}
	depths := map[int]bool{}
	for i, o := range l.Objects {
		for _, b := range []core.Box{o.Box, o.Placed} {
			if b.NormalizedProblem() != "" && b.Area() != 0 {
				t.Fatalf("object %d box %v: %s", i, b, b.NormalizedProblem())
			}
		}
		if o.Index != i || o.Sentence == "" || math.IsNaN(o.Area) || o.Depth < 1 || o.Depth > len(l.Objects) {
			t.Fatalf("object %d: %+v", i, o)
		}
		depths[o.Depth] = true
		if m := o.MaskRaster(32, 24, OnCanvas); o.HasMask && m == nil {
			t.Fatalf("object %d has a mask but no raster", i)
		}
	}
	if len(depths) != len(l.Objects) {
		t.Fatalf("depth ranks are not a permutation: %v", depths)
	}
	for _, r := range l.Relations {
		if r.Subject < 0 || r.Subject >= len(l.Objects) || r.Object < 0 || r.Object >= len(l.Objects) || r.Subject == r.Object {
			t.Fatalf("relation %+v", r)
		}
	}
}

func FuzzParsePlacement(f *testing.F) {
	for _, s := range []string{
		"character=top-left; dog=on the right", "mirror", "2=[0.1,0.5,0.4,1]", "a=b=c", ";;;", "cat=0,0,1,1,1",
		"teddy bear = upper right quadrant", "x=in the center; x=left", "=", "cat=[", "cat=1e400,0,1,1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePlacement(s)
		if err != nil {
			if !errors.Is(err, core.ErrBadRequest) {
				t.Fatalf("error without the sentinel: %v", err)
			}
			return
		}
		for _, m := range p.Moves {
			if m.Key == "" || (m.Box == nil) == (m.Place == "") {
				t.Fatalf("move %+v", m)
			}
			if m.Box != nil && m.Box.NormalizedProblem() != "" {
				t.Fatalf("box %v accepted: %s", *m.Box, m.Box.NormalizedProblem())
			}
		}
		if err := p.validate(); err != nil {
			t.Fatalf("parsed placement does not validate: %v", err)
		}
		l, err := newPlanner(t).Build(livingRoom(), p)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		checkLayout(t, livingRoom(), l)
	})
}
