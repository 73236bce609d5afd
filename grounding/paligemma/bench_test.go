package paligemma

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"paliprompt/core"
	"paliprompt/grounding"
	"paliprompt/grounding/groundingtest"
)

// BenchmarkStages times each stage of grounding on the tiny model.
func BenchmarkStages(b *testing.B) {
	e := tinyEngine(b, tinyOwn)
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
	b.Run("prefill-batch3", func(b *testing.B) {
		for b.Loop() {
			e.generate(context.Background(), f, tasks, nil)
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
			e.generate(context.Background(), f, tasks, nil)
			t1 := time.Now()
			out, _ := e.generate(context.Background(), f, long, nil)
			extra += time.Since(t1) - t1.Sub(t0)
			for _, o := range out {
				stepsDone = max(stepsDone, len(o)-1)
			}
		}
		if stepsDone > 0 {
			b.ReportMetric(float64(extra.Nanoseconds())/float64(b.N)/float64(stepsDone), "ns/step")
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
