package paligemma

import (
	"image"
	"math"
	"testing"
	"time"

	"paliprompt/core"
	"paliprompt/grounding"
	"paliprompt/grounding/groundingtest"
)

func maskDecoders(t testing.TB) (*grounding.VAEMaskDecoder, *ortMaskDecoder, groundingtest.MaskGolden) {
	t.Helper()
	var g groundingtest.MaskGolden
	groundingtest.ReadGolden(t, "maskdecoder.json", &g)
	vae, err := grounding.LoadMaskDecoder(groundingtest.FixturePath(g.Decoder))
	if err != nil {
		t.Fatal(err)
	}
	e := tinyEngine(t, tinyOwn)
	d, err := e.openMaskDecoder(vae)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return vae, d, g
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	worst := 0.0
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i])-float64(b[i])))
	}
	return worst
}

// TestORTMaskDecoderGolden: the mask decoder as an ONNX graph stays within
// 1e-5 of the NumPy reference, one mask a run and all in one batch, and
// places masks as the pure-Go decoder does.
func TestORTMaskDecoderGolden(t *testing.T) {
	_, d, g := maskDecoders(t)
	var reqs []grounding.MaskRequest
	codes := map[string][]int{}
	for _, c := range g.Decode {
		reqs = append(reqs, grounding.MaskRequest{Codes: c.Codes})
		codes[c.Name] = c.Codes
	}
	batched, err := d.decode(reqs)
	if err != nil {
		t.Fatal(err)
	}
	plane := grounding.MaskSize * grounding.MaskSize
	worst := 0.0
	for i, c := range g.Decode {
		one, err := d.decode(reqs[i : i+1])
		if err != nil {
			t.Fatal(err)
		}
		want, _ := groundingtest.Float32NPY(t, c.Output)
		if diff := maxDiff(one, want); diff > 1e-5 {
			t.Errorf("%s: output differs from the NumPy reference by %g", c.Name, diff)
		}
		if diff := maxDiff(batched[i*plane:(i+1)*plane], want); diff > 1e-5 {
			t.Errorf("%s in a batch of %d: output differs from the NumPy reference by %g", c.Name, len(reqs), diff)
		}
		worst = max(worst, maxDiff(one, want), maxDiff(batched[i*plane:(i+1)*plane], want))
	}
	t.Logf("largest difference from the NumPy reference: %.3g", worst)
	for _, p := range g.Placements {
		det := grounding.Detection{Locs: p.Locs}
		m, err := d.Mask(codes[p.Codes], det.Box(p.Width, p.Height), p.Width, p.Height)
		if err != nil {
			t.Fatal(err)
		}
		if p.Empty {
			if len(m.Values) != 0 {
				t.Errorf("%s: mask %v, want empty", p.Codes, m.Rect)
			}
			continue
		}
		if want := image.Rect(p.Box.X0, p.Box.Y0, p.Box.X1, p.Box.Y1); m.Rect != want {
			t.Errorf("%s: rect %v, want %v", p.Codes, m.Rect, want)
			continue
		}
		want, _ := groundingtest.Float32NPY(t, p.Values)
		if diff := maxDiff(m.Values, want); diff > 1e-5 {
			t.Errorf("%s: placed values differ from the reference by %g", p.Codes, diff)
		}
	}
	if _, err := d.Masks([]grounding.MaskRequest{{Codes: make([]int, 16)}, {Codes: []int{1, 2}}}, 10, 10); err == nil {
		t.Error("a mask of 2 codes decoded")
	}
}

// BenchmarkMaskDecode decodes the 6 masks of one segment output per
// iteration three ways: the pure-Go decoder (go-ms/mask), ONNX Runtime one
// mask a run (batch1-ms/mask), ONNX Runtime all 6 in one run, as the model
// grounder does (ms/mask); and reports the speed-ups over pure Go.
func BenchmarkMaskDecode(b *testing.B) {
	vae, d, _ := maskDecoders(b)
	const masks = 6
	reqs := make([]grounding.MaskRequest, masks)
	for i := range reqs {
		codes := make([]int, 16)
		for j := range codes {
			codes[j] = (i*17 + j*5) % 128
		}
		reqs[i] = grounding.MaskRequest{Codes: codes, Box: core.Box{X0: float64(10 * i), Y0: 20, X1: float64(300 + 10*i), Y1: 260}}
	}
	var pure, one, batch time.Duration
	for b.Loop() {
		t0 := time.Now()
		for _, r := range reqs {
			if _, err := vae.Mask(r.Codes, r.Box, 640, 480); err != nil {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		for _, r := range reqs {
			if _, err := d.Mask(r.Codes, r.Box, 640, 480); err != nil {
				b.Fatal(err)
			}
		}
		t2 := time.Now()
		if _, err := d.Masks(reqs, 640, 480); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		pure, one, batch = pure+t1.Sub(t0), one+t2.Sub(t1), batch+t3.Sub(t2)
	}
	perMask := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(b.N*masks) }
	b.ReportMetric(perMask(pure), "go-ms/mask")
	b.ReportMetric(perMask(one), "batch1-ms/mask")
	b.ReportMetric(perMask(batch), "ms/mask")
	b.ReportMetric(pure.Seconds()/one.Seconds(), "speedup-batch1")
	b.ReportMetric(pure.Seconds()/batch.Seconds(), "speedup")
}
