package paligemma

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"paliprompt/core"
	"paliprompt/grounding"
	"paliprompt/grounding/groundingtest"
	"paliprompt/grounding/internal/native"
)

// generateTasks are the passes of the generate endpoint.
var generateTasks = core.TaskNames(func(t core.Task) bool { return t.Generate })

// The tiny test models of testdata/models (tools/tiny_models.py).
const (
	tinyOwn       = "tiny-paligemma2"
	tinyCommunity = "tiny-paligemma2-community"
	tinyPG1       = "tiny-paligemma1"
	tinyV1        = "tiny-paligemma2-v1"       // the own layout's first version
	tinyHidden12  = "tiny-paligemma2-hidden12" // sqrt(hidden) not a power of two
)

// testCUDA: PALIPROMPT_TEST_PROVIDER=cuda (make test-gpu) runs every test
// with model.provider = "cuda" on the CUDA build `make setup-gpu`
// installs: on a machine without a GPU each model falls back to the CPU,
// and every golden must still pass on that library.
var testCUDA = os.Getenv("PALIPROMPT_TEST_PROVIDER") == "cuda"

// ortLibrary is the library `make setup` (or, with testCUDA, `make
// setup-gpu`) installs, from this package's folder.
var ortLibrary = filepath.Join(groundingtest.Root(), ".deps", ortFolder(), "libonnxruntime.so.1")

func ortFolder() string {
	if testCUDA {
		return "onnxruntime-gpu"
	}
	return "onnxruntime"
}

func tinyModelDir(t testing.TB, name string) string {
	t.Helper()
	dir := groundingtest.FixturePath("models/" + name)
	if _, err := os.Stat(filepath.Join(dir, fileDecoder)); err != nil {
		t.Skipf("test model %s not built (make fixtures): %v", name, err)
	}
	return dir
}

func tinyConfig(t testing.TB, name string) grounding.ModelConfig {
	cfg := grounding.DefaultModelConfig()
	cfg.Dir = tinyModelDir(t, name)
	cfg.OnnxRuntimeLibrary = ortLibrary
	cfg.IntraOpThreads = 1
	if testCUDA {
		cfg.Provider = "cuda"
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "vae-oid.npz")); err != nil {
		cfg.MaskDecoder = groundingtest.FixturePath("models/vae-oid-random.npz")
	}
	return cfg
}

// engines caches one engine per model folder: loading is the slow part.
var (
	enginesMu sync.Mutex
	engines   = map[string]*engine{}
)

func tinyEngine(t testing.TB, name string) *engine {
	t.Helper()
	cfg := tinyConfig(t, name)
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if e, ok := engines[name]; ok {
		return e
	}
	e, err := openEngine(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	engines[name] = e
	return e
}

func goldenImage(t testing.TB, name string) *core.RGB {
	t.Helper()
	return decodeFile(t, groundingtest.FixturePath("images/"+name))
}

func decodeFile(t testing.TB, path string) *core.RGB {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := grounding.DecodeImage(data, grounding.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return grounding.ToRGB(img)
}

func features(t testing.TB, e *engine, img *core.RGB) []float32 {
	t.Helper()
	f, err := e.imageFeatures(e.prep.PixelValues(img))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func tasksFor(e *engine, maxNew int, prefixes ...string) []genTask {
	var ts []genTask
	for _, p := range prefixes {
		ts = append(ts, genTask{prompt: e.tok.Encode(p+"\n", false), maxNew: maxNew})
	}
	return ts
}

func TestBatchedEqualsOneByOne(t *testing.T) {
	e := tinyEngine(t, tinyOwn)
	f := features(t, e, goldenImage(t, "scene_landscape.png"))
	prefixes := []string{"caption en", "detect cat ; dog ; bird", "answer en what is in the middle of this picture?"}
	batched, err := e.generate(context.Background(), f, tasksFor(e, 12, prefixes...), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range prefixes {
		one, err := e.generate(context.Background(), f, tasksFor(e, 12, p), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(one[0], batched[i]) {
			t.Errorf("%q: batched %v, alone %v", p, batched[i], one[0])
		}
	}
}

func TestLayoutsAndKVCachesAgree(t *testing.T) {
	own := tinyEngine(t, tinyOwn)
	community := tinyEngine(t, tinyCommunity)
	img := goldenImage(t, "small_landscape.png")
	prefixes := []string{"caption en", "segment red ball"}
	want, err := own.generate(context.Background(), features(t, own, img), tasksFor(own, 10, prefixes...), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := community.generate(context.Background(), features(t, community, img), tasksFor(community, 10, prefixes...), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("community layout %v, own layout %v", got, want)
	}
	// The device-bound KV path (CUDA's), run with host memory.
	for _, e := range []*engine{own, community} {
		mem, err := native.CPUMemory()
		if err != nil {
			t.Fatal(err)
		}
		e.kvMemory = mem
		bound, err := e.generate(context.Background(), features(t, e, img), tasksFor(e, 10, prefixes...), nil)
		e.kvMemory = nil
		mem.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(bound, want) {
			t.Errorf("%s with IoBinding-bound KV cache: %v, want %v", e.spec.layout, bound, want)
		}
	}
}

func TestGenerateStopsOnCancel(t *testing.T) {
	e := tinyEngine(t, tinyOwn)
	f := features(t, e, goldenImage(t, "small_landscape.png"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.generate(ctx, f, tasksFor(e, 50, "caption en"), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

func TestModelGrounderGround(t *testing.T) {
	cfg := tinyConfig(t, tinyOwn)
	cfg.MaxNewTokens = map[string]int{"caption": 8, "detect": 24, "segment": 24, "other": 8}
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	info := g.Describe()
	ready := info.Kind == "model" && info.Provider == "cpu" && info.Status == "ready"
	if testCUDA { // on the GPU, or fallen back to the CPU (TestCUDAFallsBack checks why)
		ready = info.Kind == "model" && (info.Provider == "cuda:0" || info.Provider == "cpu") && strings.HasPrefix(info.Status, "ready")
	}
	if !ready {
		t.Errorf("Describe() = %+v", info)
	}
	img := goldenImage(t, "scene_landscape.png")
	res, err := g.Ground(context.Background(), grounding.Request{Image: img, Tasks: generateTasks,
		Prefixes: []string{"answer en what color is the sky?"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Width != 640 || res.Height != 427 || len(res.Answers) != 1 || res.Answers[0].Prefix != "answer en what color is the sky?" {
		t.Errorf("result %+v", res)
	}
	stages := map[string]bool{}
	for _, tm := range res.Timings {
		stages[tm.Stage] = true
	}
	for _, s := range []string{"preprocess", "onnx vision_encoder", "generate caption+answer", "generate detect+segment"} {
		if !stages[s] {
			t.Errorf("no timing for %q in %v", s, res.Timings)
		}
	}
	if _, err := g.Ground(context.Background(), grounding.Request{Width: 10, Height: 10, Tasks: []core.TaskName{core.TaskCaption}}); !errors.Is(err, core.ErrBadRequest) {
		t.Errorf("no image: error %v, want core.ErrBadRequest", err)
	}
}

// copyModel copies a model folder (files only, following links).
func copyModel(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755)
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func editFile(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", path, old)
	}
	os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644)
}

func TestModelGrounderErrors(t *testing.T) {
	base := tinyConfig(t, tinyOwn)
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string, cfg *grounding.ModelConfig)
		want   string
	}{
		{"missing decoder", func(t *testing.T, dir string, cfg *grounding.ModelConfig) {
			os.Remove(filepath.Join(dir, fileDecoder))
		}, "missing onnx/decoder_model_merged.onnx"},
		{"wrong tokenizer", func(t *testing.T, dir string, cfg *grounding.ModelConfig) {
			// Another model's tokenizer: <image> has another id.
			spec, err := loadModelSpec(dir)
			if err != nil {
				t.Fatal(err)
			}
			path, other := filepath.Join(dir, fileTokenizer), spec.image-100
			editFile(t, path, fmt.Sprintf(`{"id":%d,"content":"<image>"`, spec.image), fmt.Sprintf(`{"id":%d,"content":"<image>"`, other))
			editFile(t, path, fmt.Sprintf(`"<image>":%d`, spec.image), fmt.Sprintf(`"<image>":%d`, other))
		}, "but config.json says"},
		{"mismatched shapes", func(t *testing.T, dir string, cfg *grounding.ModelConfig) {
			spec, err := loadModelSpec(dir)
			if err != nil {
				t.Fatal(err)
			}
			editFile(t, filepath.Join(dir, fileConfig), fmt.Sprintf(`"num_hidden_layers": %d`, spec.layers), `"num_hidden_layers": 99`)
		}, "past_key_values inputs, config says 99 layers"},
		{"sliding mask input without a window", func(t *testing.T, dir string, cfg *grounding.ModelConfig) {
			editFile(t, filepath.Join(dir, fileConfig), `"sliding_window": 512`, `"sliding_window": null`)
		}, "takes sliding_attention_mask but text_config.sliding_window is missing"},
		{"missing mask decoder", func(t *testing.T, dir string, cfg *grounding.ModelConfig) {
			cfg.MaskDecoder = filepath.Join(dir, "nope.npz")
		}, "nope.npz"},
		{"bad config", func(t *testing.T, dir string, cfg *grounding.ModelConfig) {
			cfg.Provider = "tpu"
		}, `model.provider: "tpu" is not allowed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyModel(t, base.Dir)
			cfg := base
			cfg.Dir = dir
			tc.change(t, dir, &cfg)
			g, err := New(cfg, nil)
			if err == nil {
				g.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestSegmentWithoutMaskDecoder(t *testing.T) {
	cfg := tinyConfig(t, tinyOwn)
	dir := copyModel(t, cfg.Dir)
	os.Remove(filepath.Join(dir, "vae-oid.npz"))
	cfg.Dir, cfg.MaskDecoder = dir, ""
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	_, err = g.Ground(context.Background(), grounding.Request{Image: goldenImage(t, "small_landscape.png"), Tasks: []core.TaskName{core.TaskSegment}, Args: core.PrefixArgs{Objects: []string{"cat"}}})
	if !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "vae-oid.npz") {
		t.Errorf("error %v, want core.ErrUnavailable naming vae-oid.npz", err)
	}
}

// TestCUDAFallsBack: asking for CUDA where it cannot run falls back to
// the CPU and says why. On the CPU build (make test) the library has no
// CUDA provider; on the CUDA build without a GPU (make test-gpu here) the
// provider loads and CUDA itself gives the driver's reason.
func TestCUDAFallsBack(t *testing.T) {
	cfg := tinyConfig(t, tinyOwn)
	cfg.Provider = "cuda"
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	info := g.Describe()
	if strings.HasPrefix(info.Provider, "cuda") {
		t.Skip("CUDA works here")
	}
	want := "make setup-gpu installs the CUDA build"
	if testCUDA {
		want = "CUDA failure" // cudaGetDeviceCount's error, as ONNX Runtime reports it
	}
	if info.Provider != "cpu" || !strings.Contains(info.Status, "CUDA requested") || !strings.Contains(info.Status, want) {
		t.Errorf("Describe() = %+v, want provider cpu and a status naming the fallback and %q", info, want)
	}
	report := Check(cfg)
	if !strings.Contains(report.String(), "falling back to CPU") || !strings.Contains(report.String(), want) {
		t.Errorf("check report does not give the fallback and its reason %q:\n%s", want, report)
	}
	if testCUDA && !strings.Contains(info.Status, "no CUDA device") {
		t.Errorf("status %q does not say that the driver found no device", info.Status)
	}
}

func TestCheck(t *testing.T) {
	cfg := tinyConfig(t, tinyOwn)
	r := Check(cfg)
	if !r.OK() || r.Err() != nil {
		t.Errorf("check of the tiny model failed:\n%s", r)
	}
	wants := []string{"onnxruntime", "version 1.24.4", "special ids", "bos ", "mask decoder", "provider", "cpu",
		"loaded           libonnxruntime.so.1 from "}
	if testCUDA {
		wants = append(wants, "cuda provider", "200 fatbins, each with ELF sm_60 sm_70 sm_75 sm_80 sm_86 sm_90a and PTX sm_90",
			"cuda device", "libcudart.so.12 from ", "libonnxruntime_providers_cuda.so from ")
	}
	for _, want := range wants {
		if !strings.Contains(r.String(), want) {
			t.Errorf("report does not mention %q:\n%s", want, r)
		}
	}
	cfg.Dir = t.TempDir()
	if r := Check(cfg); r.OK() || !errors.Is(r.Err(), core.ErrUnavailable) || !strings.Contains(r.Err().Error(), "config.json") {
		t.Errorf("empty folder passes or does not name config.json:\n%s", r)
	}
}

func TestTokenCounter(t *testing.T) {
	c, err := LoadTokenCounter(groundingtest.FixturePath("models/tiny-paligemma2/tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := c.CountTokens(""); n != 0 {
		t.Errorf("empty text: %d tokens", n)
	}
	if a, b := c.CountTokens("a cat"), c.CountTokens("a cat on a red sofa"); a < 1 || b <= a {
		t.Errorf("counts %d, %d: want positive and growing", a, b)
	}
	if _, err := LoadTokenCounter("missing.json"); !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
}
