package paligemma

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"paliprompt/core"
	"paliprompt/grounding"

	"paliprompt/grounding/internal/native"
)

// CheckItem is one line of a Check report.
type CheckItem struct {
	Name   string
	OK     bool
	Detail string
}

// Report is what `paliprompt check` prints: each piece the model grounder
// needs, and whether it is usable.
type Report struct {
	Items []CheckItem
}

// OK reports whether every item is usable.
func (r Report) OK() bool {
	for _, it := range r.Items {
		if !it.OK {
			return false
		}
	}
	return true
}

// Err is nil when every item is usable, else an error (wrapping
// ErrUnavailable) naming the failing items.
func (r Report) Err() error {
	var bad []string
	for _, it := range r.Items {
		if !it.OK {
			bad = append(bad, it.Name+": "+it.Detail)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return core.Errorf(core.ErrUnavailable, "%s", strings.Join(bad, "; "))
}

// String renders the report, one "ok"/"FAIL" line per item.
func (r Report) String() string {
	var b strings.Builder
	for _, it := range r.Items {
		status := "ok  "
		if !it.OK {
			status = "FAIL"
		}
		fmt.Fprintf(&b, "%s %-16s %s\n", status, it.Name, it.Detail)
	}
	return b.String()
}

// Check inspects the configuration, model files, ONNX Runtime library and
// provider, tokenizer and special ids, and mask decoder, without running
// the model. The provider line says what a grounder would actually use
// (CPU when CUDA is requested but unavailable).
func Check(cfg grounding.ModelConfig) Report {
	var r Report
	add := func(name string, err error, detail string) {
		if err != nil {
			r.Items = append(r.Items, CheckItem{Name: name, Detail: err.Error()})
			return
		}
		r.Items = append(r.Items, CheckItem{Name: name, OK: true, Detail: detail})
	}
	add("config", cfg.Validate(), "valid")
	if cfg.Dir == "" {
		add("model folder", errors.New("model.dir is empty: only requests carrying PaliGemma output text can be served"), "")
		return r
	}
	missing := false
	for _, f := range []string{fileConfig, fileGeneration, filePreprocess, fileTokenizer, fileVision, fileEmbed, fileDecoder} {
		st, err := os.Stat(filepath.Join(cfg.Dir, f))
		if err != nil && f == fileGeneration {
			continue // optional
		}
		missing = missing || err != nil
		add(f, err, fmt.Sprintf("%.1f MB", float64(fileSize(st, cfg.Dir, f))/1e6))
	}
	spec, err := loadModelSpec(cfg.Dir)
	if err == nil {
		window := "none or derived in the graph"
		if spec.slidingWindow > 0 {
			window = fmt.Sprintf("%d (%s input)", spec.slidingWindow, inputSlidingMask)
		}
		add("model", nil, fmt.Sprintf("decoder layout %s, %d layers, %d KV heads x %d, hidden %d, vocab %d, %d image tokens, KV cache %s, sliding window %s",
			spec.layout, spec.layers, spec.kvHeads, spec.headDim, spec.hidden, spec.vocab, spec.imageTokens, spec.kvType, window))
		add("special ids", nil, fmt.Sprintf("bos %d, eos %v, pad %d, image %d, <loc0000> %d, <seg000> %d",
			spec.bos, spec.eos, spec.pad, spec.image, spec.loc0, spec.seg0))
	} else {
		add("model", err, "")
	}
	if tok, err := native.LoadTokenizer(filepath.Join(cfg.Dir, fileTokenizer)); err == nil {
		add("tokenizer", nil, fmt.Sprintf("%s, %d tokens", tok.Path(), tok.VocabSize()))
		tok.Close()
	} else {
		add("tokenizer", err, "")
	}
	sc := sessionConfig(cfg)
	rt, err := native.LoadRuntime(cfg.OnnxRuntimeLibrary, sc.CUDA != nil)
	if err != nil {
		add("onnxruntime", err, "")
	} else {
		add("onnxruntime", nil, fmt.Sprintf("%s, version %s, providers %s", display(rt.Path()), rt.Version(), strings.Join(rt.Providers(), ", ")))
		var facts cudaFacts
		if sc.CUDA != nil {
			facts = readCUDAFacts(rt, cfg.DeviceID)
			detail, err := facts.providerItem(rt)
			add("cuda provider", err, detail)
			detail, err = facts.deviceItem(cfg.DeviceID)
			add("cuda device", err, detail)
		}
		if !missing {
			add("provider", nil, checkProvider(cfg, rt, facts))
		}
		for _, lib := range loadedLibraries() {
			add("loaded", nil, lib)
		}
	}
	path := cfg.MaskDecoderPath()
	if d, err := grounding.LoadMaskDecoder(path); err == nil {
		codes, dim := d.Codebook()
		add("mask decoder", nil, fmt.Sprintf("%s, %d codes x %d", d.Path(), codes, dim))
	} else if cfg.MaskDecoder == "" && errors.Is(err, os.ErrNotExist) {
		add("mask decoder", nil, fmt.Sprintf("none (%s not found): segment requests will fail, detect works", path))
	} else {
		add("mask decoder", err, "")
	}
	return r
}

func fileSize(st os.FileInfo, dir, f string) int64 {
	if st == nil {
		return 0
	}
	n := st.Size()
	if data, err := os.Stat(filepath.Join(dir, f+"_data")); err == nil {
		n += data.Size()
	}
	return n
}

// checkProvider opens the vision encoder on the configured provider to
// see what really runs, and says why.
func checkProvider(cfg grounding.ModelConfig, rt *native.Runtime, facts cudaFacts) string {
	sc := sessionConfig(cfg)
	if sc.CUDA == nil {
		return fmt.Sprintf("cpu (model.provider = %q)", cfg.Provider)
	}
	if !rt.HasCUDA() {
		return fmt.Sprintf("cpu (CUDA requested, but %s has no CUDA execution provider: make setup-gpu installs the CUDA build; falling back to CPU)", display(rt.Path()))
	}
	if _, err := facts.deviceItem(cfg.DeviceID); err != nil {
		return fmt.Sprintf("cpu (CUDA requested, but %v; falling back to CPU)", err)
	}
	s, err := rt.NewSession(filepath.Join(cfg.Dir, fileVision), sc)
	if err != nil {
		why := err.Error()
		if facts.noDevice != "" {
			why = fmt.Sprintf("no CUDA device: %s; ONNX Runtime says: %v", facts.noDevice, err)
		}
		return fmt.Sprintf("cpu (CUDA requested, but unusable: %s; falling back to CPU)", why)
	}
	s.Close()
	return fmt.Sprintf("cuda:%d (CUDA requested, and the CUDA provider opened the vision encoder on device %d)", cfg.DeviceID, cfg.DeviceID)
}
