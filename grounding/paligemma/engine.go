package paligemma

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"paliprompt/core"
	"paliprompt/grounding"

	"paliprompt/grounding/internal/native"
)

// engine owns the ONNX Runtime sessions and the tokenizer of one model.
type engine struct {
	spec                    *modelSpec
	rt                      *native.Runtime
	vision, embeds, decoder *native.Session
	tok                     *native.Tokenizer
	prep                    *grounding.Preprocessor
	// provider is what actually runs: "cpu" or "cuda:N".
	provider string
	// fallback says why CUDA was requested but CPU is used ("" otherwise).
	fallback string
	// cuda is what the CUDA path offers, read when CUDA is requested.
	cuda cudaFacts
	// sessions is the configuration the sessions were opened with (after
	// any fallback), for the mask decoder's.
	sessions native.SessionConfig
	// kvMemory, when set, keeps the KV cache in that memory through
	// IoBinding (the GPU's on CUDA); nil uses host ping-pong buffers.
	kvMemory *native.MemoryInfo
	// onStep, when set (tests), sees each step's last-position logits.
	onStep func(step int, logits [][]float32)
}

// LoadProgress is told about each step of a model load (for a progress
// bar): done of total steps, and what is being loaded.
type LoadProgress func(done, total int, step string)

// openEngine loads a model folder: configs, tokenizer, then the three
// sessions on the configured provider (falling back to CPU when CUDA cannot
// be used).
func openEngine(cfg grounding.ModelConfig, progress LoadProgress) (*engine, error) {
	if progress == nil {
		progress = func(int, int, string) {}
	}
	const steps = 5
	progress(0, steps, "configuration")
	if cfg.Dir == "" {
		return nil, core.Errorf(core.ErrUnavailable, "no model folder configured (model.dir)")
	}
	for _, f := range []string{fileConfig, filePreprocess, fileTokenizer, fileVision, fileEmbed, fileDecoder} {
		if _, err := os.Stat(filepath.Join(cfg.Dir, f)); err != nil {
			return nil, core.Errorf(core.ErrUnavailable, "model folder %s: missing %s", cfg.Dir, f)
		}
	}
	spec, err := loadModelSpec(cfg.Dir)
	if err != nil {
		return nil, core.Errorf(core.ErrUnavailable, "%v", err)
	}
	e := &engine{spec: spec, provider: "cpu"}
	if e.prep, err = grounding.LoadPreprocessor(filepath.Join(cfg.Dir, filePreprocess)); err != nil {
		return nil, err
	}
	if e.tok, err = native.LoadTokenizer(filepath.Join(cfg.Dir, fileTokenizer)); err != nil {
		return nil, core.Errorf(core.ErrUnavailable, "%v", err)
	}
	if n := e.tok.VocabSize(); n > spec.vocab {
		e.Close()
		return nil, core.Errorf(core.ErrUnavailable, "tokenizer %s has %d tokens, more than the model's vocabulary of %d (tokenizer from another model?)",
			e.tok.Path(), n, spec.vocab)
	}
	progress(1, steps, "ONNX Runtime")
	if e.rt, err = native.LoadRuntime(cfg.OnnxRuntimeLibrary, strings.EqualFold(cfg.Provider, "cuda")); err != nil {
		e.Close()
		return nil, core.Errorf(core.ErrUnavailable, "%v", err)
	}
	sc := sessionConfig(cfg)
	if sc.CUDA != nil {
		e.cuda = readCUDAFacts(e.rt, sc.CUDA.DeviceID)
		if !e.rt.HasCUDA() {
			e.cpuFallback(&sc, fmt.Sprintf("%s has no CUDA execution provider (make setup-gpu installs the CUDA build)", e.rt.Path()))
		} else if _, err := e.cuda.deviceItem(sc.CUDA.DeviceID); err != nil {
			// Sessions would open, and then every kernel launch fail.
			e.cpuFallback(&sc, err.Error())
		}
	}
	for i, s := range []struct {
		file string
		dst  **native.Session
	}{{fileVision, &e.vision}, {fileEmbed, &e.embeds}, {fileDecoder, &e.decoder}} {
		progress(2+i, steps, filepath.Base(s.file))
		if *s.dst, err = e.openSession(cfg, s.file, &sc); err != nil {
			e.Close()
			return nil, err
		}
	}
	e.sessions = sc
	if sc.CUDA != nil {
		e.provider = fmt.Sprintf("cuda:%d", sc.CUDA.DeviceID)
		if e.kvMemory, err = native.CUDAMemory(sc.CUDA.DeviceID); err != nil {
			e.Close()
			return nil, core.Errorf(core.ErrUnavailable, "%v", err)
		}
		device, _ := e.cuda.deviceItem(sc.CUDA.DeviceID) // its error led to the CPU above
		slog.Info("running on CUDA: model.provider is cuda and the CUDA provider opened every session",
			"device", device, "provider_library", e.cuda.provider, "libraries", loadedLibraries())
	}
	progress(steps, steps, "ready")
	return e, nil
}

// openSession loads one model file, retrying on CPU when CUDA fails (the
// sessions already opened on CUDA stay there; the log says which).
func (e *engine) openSession(cfg grounding.ModelConfig, file string, sc *native.SessionConfig) (*native.Session, error) {
	path := filepath.Join(cfg.Dir, file)
	c := *sc
	c.OptimizedModelPath = optimizedPath(cfg, file, sc)
	if c.OptimizedModelPath != "" && newer(c.OptimizedModelPath, path) {
		path, c.OptimizedModelPath = c.OptimizedModelPath, ""
	}
	s, err := e.rt.NewSession(path, c)
	if errors.Is(err, native.ErrNoCUDA) && e.vision == nil {
		e.cpuFallback(sc, err.Error())
		return e.openSession(cfg, file, sc)
	}
	if err != nil {
		return nil, core.Errorf(core.ErrUnavailable, "%v", err)
	}
	return s, nil
}

// openMaskDecoder runs vae's network on the sessions' provider, on the CPU
// when CUDA cannot take it (the log says so).
func (e *engine) openMaskDecoder(vae *grounding.VAEMaskDecoder) (*ortMaskDecoder, error) {
	d, err := newORTMaskDecoder(e.rt, vae, e.sessions)
	if errors.Is(err, native.ErrNoCUDA) {
		slog.Warn("mask decoder: CUDA not usable, running it on CPU", "reason", err)
		cpu := e.sessions
		cpu.CUDA = nil
		d, err = newORTMaskDecoder(e.rt, vae, cpu)
	}
	if err != nil {
		return nil, core.Errorf(core.ErrUnavailable, "%v", err)
	}
	return d, nil
}

func (e *engine) cpuFallback(sc *native.SessionConfig, why string) {
	if e.cuda.noDevice != "" {
		why = fmt.Sprintf("no CUDA device: %s; %s", e.cuda.noDevice, why)
	}
	slog.Warn("CUDA requested but not usable, running on CPU", "reason", why)
	e.fallback = why
	sc.CUDA = nil
}

func sessionConfig(cfg grounding.ModelConfig) native.SessionConfig {
	sc := native.SessionConfig{IntraOpThreads: cfg.IntraOpThreads, GraphOptimization: strings.ToLower(cfg.GraphOptimization)}
	if strings.EqualFold(cfg.Provider, "cuda") {
		sc.CUDA = &native.CUDAConfig{DeviceID: cfg.DeviceID, MemLimitMB: cfg.GPUMemLimitMB,
			CudnnConvAlgoSearch: strings.ToUpper(cfg.CudnnConvAlgoSearch)}
	}
	return sc
}

// optimizedPath is where a session's optimized graph is cached, per
// provider (optimizations differ between providers).
func optimizedPath(cfg grounding.ModelConfig, file string, sc *native.SessionConfig) string {
	if cfg.OptimizedModelCache == "" {
		return ""
	}
	provider := "cpu"
	if sc.CUDA != nil {
		provider = "cuda"
	}
	name := strings.TrimSuffix(filepath.Base(file), ".onnx")
	return filepath.Join(cfg.OptimizedModelCache, fmt.Sprintf("%s.%s.opt.onnx", name, provider))
}

func newer(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && sa.ModTime().After(sb.ModTime())
}

// imageFeatures runs the vision encoder on one image's pixel values.
func (e *engine) imageFeatures(pixels []float32) ([]float32, error) {
	p := e.prep
	in, err := native.NewFloat32([]int64{1, 3, int64(p.Height), int64(p.Width)}, pixels)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	features := make([]float32, e.spec.imageTokens*e.spec.hidden)
	out, err := native.NewFloat32([]int64{1, int64(e.spec.imageTokens), int64(e.spec.hidden)}, features)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	if err := e.vision.Run([]*native.Tensor{in}, []*native.Tensor{out}); err != nil {
		return nil, fmt.Errorf("vision encoder (image tokens %d, hidden %d from config.json): %w", e.spec.imageTokens, e.spec.hidden, err)
	}
	return features, nil
}

// newKV picks the KV cache strategy: device-bound when the engine has a
// KV memory (CUDA), host ping-pong buffers otherwise.
func (e *engine) newKV(b, maxLen int) (kvCache, error) {
	if e.kvMemory != nil {
		return newBoundKV(e.spec, b, e.kvMemory), nil
	}
	return newPingPongKV(e.spec, b, maxLen), nil
}

// Close releases the sessions and the tokenizer.
func (e *engine) Close() {
	for _, s := range []*native.Session{e.vision, e.embeds, e.decoder} {
		s.Close()
	}
	if e.tok != nil {
		e.tok.Close()
	}
	e.kvMemory.Close()
}
