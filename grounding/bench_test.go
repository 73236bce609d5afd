package grounding

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchJPEG returns the JPEG in PALIPROMPT_BENCH_IMAGE (bench/compare.py
// sets it so that both sides read the same file), else a synthetic
// 4000x3000 photo-sized JPEG.
func benchJPEG(b *testing.B) []byte {
	b.Helper()
	if p := os.Getenv("PALIPROMPT_BENCH_IMAGE"); p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	img := image.NewYCbCr(image.Rect(0, 0, 4000, 3000), image.YCbCrSubsampleRatio420)
	for i := range img.Y {
		img.Y[i] = uint8(i*7 + i/4000*3)
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = uint8(i/2000), uint8(i*3)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkPreprocessLargeJPEG: decode + RGB + resize + normalize of a
// 4000x3000 JPEG to the 448x448 tensor (what the HF slow processor does
// after PIL's decode).
func BenchmarkPreprocessLargeJPEG(b *testing.B) {
	data := benchJPEG(b)
	p := goldenPreprocessor(b, preprocessGolden{Size: []int{448, 448}})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := DecodeImage(data, DecodeOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	img, _, _ := DecodeImage(data, DecodeOptions{})
	b.Run("rgb", func(b *testing.B) {
		for b.Loop() {
			ToRGB(img)
		}
	})
	rgb := ToRGB(img)
	b.Run("resize+normalize", func(b *testing.B) {
		for b.Loop() {
			p.PixelValues(rgb)
		}
	})
	b.Run("total", func(b *testing.B) {
		for b.Loop() {
			img, _, err := DecodeImage(data, DecodeOptions{})
			if err != nil {
				b.Fatal(err)
			}
			p.PixelValues(img)
		}
	})
}

// BenchmarkStages times each stage of grounding on the tiny model.
func BenchmarkStages(b *testing.B) {
	e := tinyEngine(b, tinyOwn)
	data, err := os.ReadFile(fixturePath("images/photo_420.jpg"))
	if err != nil {
		b.Skip(err)
	}
	b.Run("decode-image", func(b *testing.B) {
		for b.Loop() {
			DecodeImage(data, DecodeOptions{})
		}
	})
	img, _, _ := DecodeImage(data, DecodeOptions{})
	b.Run("preprocess", func(b *testing.B) {
		for b.Loop() {
			e.prep.PixelValues(img)
		}
	})
	pixels := e.prep.PixelValues(img)
	b.Run("vision", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.imageFeatures(pixels); err != nil {
				b.Fatal(err)
			}
		}
	})
	f, _ := e.imageFeatures(pixels)
	tasks := tasksFor(e, 1, "caption en", "detect cat ; dog", "segment cat ; dog")
	b.Run("prefill-batch3", func(b *testing.B) {
		for b.Loop() {
			e.generate(context.Background(), f, tasks)
		}
	})
	b.Run("decode-token-batch3", func(b *testing.B) {
		// The marginal cost of one decode step of the 3-row batch: a run
		// of up to 33 new tokens minus a prefill-only run, per extra step.
		long := tasksFor(e, 33, "caption en", "detect cat ; dog", "segment cat ; dog")
		var extra time.Duration
		var stepsDone int
		for b.Loop() {
			t0 := time.Now()
			e.generate(context.Background(), f, tasks)
			t1 := time.Now()
			out, _ := e.generate(context.Background(), f, long)
			extra += time.Since(t1) - t1.Sub(t0)
			for _, o := range out {
				stepsDone = max(stepsDone, len(o)-1)
			}
		}
		if stepsDone > 0 {
			b.ReportMetric(float64(extra.Nanoseconds())/float64(b.N)/float64(stepsDone), "ns/step")
		}
	})
	text := "<loc0100><loc0200><loc0700><loc0900>" + seg16(3) + " cat ; <loc0010><loc0020><loc0300><loc0400>" + seg16(40) + " dog"
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			ParseDetections("segment", text)
		}
	})
	d, err := LoadMaskDecoder(fixturePath("models/vae-oid-random.npz"))
	if err != nil {
		b.Skip(err)
	}
	b.Run("mask-decode", func(b *testing.B) {
		for b.Loop() {
			d.Mask(codes(3), Box{X0: 100, Y0: 50, X1: 400, Y1: 380}, 560, 420)
		}
	})
}

// BenchmarkGround is paliprompt's side of bench/compare.py: read and
// decode the image file, then caption + detect + segment of the given
// objects, as one Ground call (vision once, one batch). Settings come from
// the environment so both sides run the same case:
// PALIPROMPT_BENCH_MODEL (model folder), PALIPROMPT_BENCH_PHOTO (image),
// PALIPROMPT_BENCH_OBJECTS ("cat ; dog"), PALIPROMPT_BENCH_MAX_NEW.
func BenchmarkGround(b *testing.B) {
	cfg := DefaultModelConfig()
	cfg.OnnxRuntimeLibrary = ortLibrary
	cfg.Dir = os.Getenv("PALIPROMPT_BENCH_MODEL")
	if cfg.Dir == "" {
		cfg.Dir = tinyModelDir(b, tinyOwn)
	}
	if cfg.MaskDecoder = os.Getenv("PALIPROMPT_BENCH_VAE"); cfg.MaskDecoder == "" {
		cfg.MaskDecoder = fixturePath("models/vae-oid-random.npz")
	}
	maxNew := 32
	if v := os.Getenv("PALIPROMPT_BENCH_MAX_NEW"); v != "" {
		fmt.Sscan(v, &maxNew)
	}
	cfg.MaxNewTokens = TaskTokens{Caption: maxNew, Detect: maxNew, Segment: maxNew, Other: maxNew}
	photo := os.Getenv("PALIPROMPT_BENCH_PHOTO")
	if photo == "" {
		photo = fixturePath("images/scene_landscape.png")
	}
	objects := os.Getenv("PALIPROMPT_BENCH_OBJECTS")
	if objects == "" {
		objects = "cat ; dog"
	}
	g, err := NewModelGrounder(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	generated := 0
	for b.Loop() {
		data, err := os.ReadFile(photo)
		if err != nil {
			b.Fatal(err)
		}
		img, _, err := DecodeImage(data, DecodeOptions{})
		if err != nil {
			b.Fatal(err)
		}
		res, err := g.Ground(context.Background(), Request{Image: img, Caption: true, Detect: true, Segment: true,
			Objects: strings.Split(objects, ";")})
		if err != nil {
			b.Fatal(err)
		}
		generated = len(res.Outputs.Caption) + len(res.Outputs.Detect) + len(res.Outputs.Segment)
	}
	b.ReportMetric(float64(generated), "output-bytes")
}

// BenchmarkGenerateSteps times one generation on the model folder in
// PALIPROMPT_BENCH_MODEL (e.g. the full-size random PaliGemma 2 3B-448 of
// tools/make_bench_model.py): the prefill and each decode step separately,
// with PALIPROMPT_BENCH_BATCH rows (1 or 3 tasks) and
// PALIPROMPT_BENCH_MAX_NEW tokens. It reports the vision encoder, prefill
// and mean decode-step times, decode tokens/s (rows x steps / time) and the
// process's peak RSS.
func BenchmarkGenerateSteps(b *testing.B) {
	dir := os.Getenv("PALIPROMPT_BENCH_MODEL")
	if dir == "" {
		b.Skip("set PALIPROMPT_BENCH_MODEL to a model folder")
	}
	cfg := DefaultModelConfig()
	cfg.Dir, cfg.OnnxRuntimeLibrary = dir, ortLibrary
	e, err := openEngine(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	maxNew, rows := 8, 3
	if v := os.Getenv("PALIPROMPT_BENCH_MAX_NEW"); v != "" {
		fmt.Sscan(v, &maxNew)
	}
	if v := os.Getenv("PALIPROMPT_BENCH_BATCH"); v != "" {
		fmt.Sscan(v, &rows)
	}
	prefixes := []string{"caption en", "detect cat ; dog", "segment cat ; dog"}[:rows]
	img := goldenImage(b, "scene_landscape.png")
	var vision, prefill, decode time.Duration
	steps := 0
	for b.Loop() {
		t0 := time.Now()
		f := features(b, e, img)
		vision += time.Since(t0)
		last := time.Now()
		e.onStep = func(step int, _ [][]float32) {
			now := time.Now()
			if step == 0 {
				prefill += now.Sub(last)
			} else {
				decode += now.Sub(last)
				steps++
			}
			last = now
		}
		if _, err := e.generate(context.Background(), f, tasksFor(e, maxNew, prefixes...)); err != nil {
			b.Fatal(err)
		}
		e.onStep = nil
	}
	n := float64(b.N)
	b.ReportMetric(vision.Seconds()*1000/n, "vision-ms")
	b.ReportMetric(prefill.Seconds()*1000/n, "prefill-ms")
	if steps > 0 {
		b.ReportMetric(decode.Seconds()*1000/float64(steps), "ms/step")
		b.ReportMetric(float64(rows*steps)/decode.Seconds(), "tokens/s")
	}
	b.ReportMetric(peakRSSGB(), "peak-RSS-GB")
}

// peakRSSGB reads VmHWM from /proc/self/status.
func peakRSSGB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")), &kb)
			return kb / (1 << 20)
		}
	}
	return 0
}

// BenchmarkMemoryBandwidth measures this machine's read bandwidth with one
// goroutine per CPU summing a 1 GiB array: the bound a memory-bound decode
// step is compared with.
func BenchmarkMemoryBandwidth(b *testing.B) {
	if os.Getenv("PALIPROMPT_BENCH_MODEL") == "" && testing.Short() {
		b.Skip("short")
	}
	data := make([]float32, 1<<28)
	for i := range data {
		data[i] = float32(i & 7)
	}
	b.SetBytes(int64(len(data)) * 4)
	var sink float32
	for b.Loop() {
		var mu sync.Mutex
		parallelRows(len(data)/(1<<16), func(c0, c1 int) {
			var s0, s1, s2, s3 float32
			chunk := data[c0<<16 : c1<<16]
			for i := 0; i+3 < len(chunk); i += 4 {
				s0 += chunk[i]
				s1 += chunk[i+1]
				s2 += chunk[i+2]
				s3 += chunk[i+3]
			}
			mu.Lock()
			sink += s0 + s1 + s2 + s3
			mu.Unlock()
		})
	}
	if sink == 1 {
		b.Log(sink)
	}
}
