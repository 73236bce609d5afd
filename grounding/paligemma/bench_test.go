package paligemma

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"paliprompt/core"
	"paliprompt/grounding"
	"paliprompt/grounding/groundingtest"
)

// BenchmarkStages times each stage of grounding on the tiny model, or on
// the model folder in PALIPROMPT_BENCH_STAGES_MODEL (e.g.
// testdata/models/tiny-paligemma2-v1, the same weights in the own layout's
// first version).
func BenchmarkStages(b *testing.B) {
	e := tinyEngine(b, tinyOwn)
	if dir := os.Getenv("PALIPROMPT_BENCH_STAGES_MODEL"); dir != "" {
		cfg := tinyConfig(b, tinyOwn)
		cfg.Dir = dir
		var err error
		if e, err = openEngine(cfg, nil); err != nil {
			b.Fatal(err)
		}
		defer e.Close()
	}
	data, err := os.ReadFile(groundingtest.FixturePath("images/photo_420.jpg"))
	if err != nil {
		b.Skip(err)
	}
	b.Run("decode-image", func(b *testing.B) {
		for b.Loop() {
			grounding.DecodeImage(data, grounding.DecodeOptions{})
		}
	})
	img, _, _ := grounding.DecodeImage(data, grounding.DecodeOptions{})
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
	// go-ms: the time outside ONNX Runtime's runs; cpu-ms: the process's
	// CPU time (every thread), which a loaded machine disturbs far less
	// than the wall clock.
	b.Run("prefill-batch3", func(b *testing.B) {
		var goSide time.Duration
		cpu0 := cpuTime()
		for b.Loop() {
			goSide += generateOverhead(b, e, f, tasks)
		}
		b.ReportMetric((cpuTime()-cpu0).Seconds()*1000/float64(b.N), "cpu-ms/op")
		b.ReportMetric(goSide.Seconds()*1000/float64(b.N), "go-ms/op")
	})
	b.Run("decode-token-batch3", func(b *testing.B) {
		// One decode step of the 3-row batch (up to 33 new tokens): the
		// time between two steps' logits, and the part of it spent
		// outside ONNX Runtime's runs (embed_tokens and the decoder).
		long := tasksFor(e, 33, "caption en", "detect cat ; dog", "segment cat ; dog")
		var wall, goSide time.Duration
		steps := 0
		for b.Loop() {
			var times runTimes
			var last time.Time
			var lastRuns time.Duration
			e.onStep = func(step int, _ [][]float32) {
				now, runs := time.Now(), times.embed+times.steps
				if step > 0 {
					wall += now.Sub(last)
					goSide += now.Sub(last) - (runs - lastRuns)
					steps++
				}
				last, lastRuns = now, runs
			}
			if _, err := e.generate(context.Background(), f, long, &times); err != nil {
				b.Fatal(err)
			}
			e.onStep = nil
		}
		if steps > 0 {
			b.ReportMetric(float64(wall.Nanoseconds())/float64(steps), "ns/step")
			b.ReportMetric(float64(goSide.Nanoseconds())/float64(steps), "go-ns/step")
		}
	})
}

// cpuTime is the CPU time the process has used, all threads.
func cpuTime() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// generateOverhead runs one generation and returns the time it spent
// outside ONNX Runtime's runs (masks, tensors, bindings, argmax).
func generateOverhead(b *testing.B, e *engine, f []float32, tasks []genTask) time.Duration {
	var times runTimes
	start := time.Now()
	if _, err := e.generate(context.Background(), f, tasks, &times); err != nil {
		b.Fatal(err)
	}
	return time.Since(start) - times.total()
}

// BenchmarkGround is paliprompt's side of bench/compare.py: read and
// decode the image file, then caption + detect + segment of the given
// objects, as one Ground call (vision once, one batch). Settings come from
// the environment so both sides run the same case:
// PALIPROMPT_BENCH_MODEL (model folder), PALIPROMPT_BENCH_PHOTO (image),
// PALIPROMPT_BENCH_OBJECTS ("cat ; dog"), PALIPROMPT_BENCH_MAX_NEW.
func BenchmarkGround(b *testing.B) {
	cfg := grounding.DefaultModelConfig()
	cfg.OnnxRuntimeLibrary = ortLibrary
	cfg.Dir = os.Getenv("PALIPROMPT_BENCH_MODEL")
	if cfg.Dir == "" {
		cfg.Dir = tinyModelDir(b, tinyOwn)
	}
	if cfg.MaskDecoder = os.Getenv("PALIPROMPT_BENCH_VAE"); cfg.MaskDecoder == "" {
		cfg.MaskDecoder = groundingtest.FixturePath("models/vae-oid-random.npz")
	}
	maxNew := 32
	if v := os.Getenv("PALIPROMPT_BENCH_MAX_NEW"); v != "" {
		fmt.Sscan(v, &maxNew)
	}
	cfg.MaxNewTokens = map[string]int{"other": maxNew}
	photo := os.Getenv("PALIPROMPT_BENCH_PHOTO")
	if photo == "" {
		photo = groundingtest.FixturePath("images/scene_landscape.png")
	}
	objects := os.Getenv("PALIPROMPT_BENCH_OBJECTS")
	if objects == "" {
		objects = "cat ; dog"
	}
	g, err := New(cfg, nil)
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
		img, _, err := grounding.DecodeImage(data, grounding.DecodeOptions{})
		if err != nil {
			b.Fatal(err)
		}
		res, err := g.Ground(context.Background(), grounding.Request{Image: img, Tasks: generateTasks,
			Args: core.PrefixArgs{Objects: strings.Split(objects, ";")}})
		if err != nil {
			b.Fatal(err)
		}
		generated = len(res.Outputs[core.TaskCaption]) + len(res.Outputs[core.TaskDetect]) + len(res.Outputs[core.TaskSegment])
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
	cfg := grounding.DefaultModelConfig()
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
		if _, err := e.generate(context.Background(), f, tasksFor(e, maxNew, prefixes...), nil); err != nil {
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
	workers := runtime.GOMAXPROCS(0)
	part := len(data) / workers
	for b.Loop() {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				var s0, s1, s2, s3 float32
				chunk := data[w*part : (w+1)*part]
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
		wg.Wait()
	}
	if sink == 1 {
		b.Log(sink)
	}
}
