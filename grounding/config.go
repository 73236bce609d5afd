package grounding

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"paliprompt/core"
)

// ModelConfig selects and tunes the PaliGemma model grounder. It is the
// [model] table of config.toml; DefaultModelConfig gives the defaults and
// Validate names any bad field.
type ModelConfig struct {
	// Dir is the model folder (config.json, preprocessor_config.json,
	// tokenizer.json, onnx/*.onnx). Empty: no model, text grounder only.
	Dir string `toml:"dir"`
	// MaskDecoder is the vae-oid.npz file for segmentation masks. Empty:
	// <Dir>/vae-oid.npz when present.
	MaskDecoder string `toml:"mask_decoder"`
	// OnnxRuntimeLibrary is the path of libonnxruntime.so. Empty: for
	// provider "cuda" the CUDA build of `make setup-gpu`
	// (.deps/onnxruntime-gpu) when present, else the CPU build of `make
	// setup` (.deps/onnxruntime), found from the working directory or the
	// executable; else the system's.
	OnnxRuntimeLibrary string `toml:"onnxruntime_library"`
	// Provider is the execution provider: "cpu" or "cuda" (falls back to
	// CPU, with a log line, when CUDA cannot be used).
	Provider string `toml:"provider"`
	// DeviceID is the CUDA device.
	DeviceID int `toml:"device_id"`
	// GPUMemLimitMB caps the CUDA memory arena; 0 means no limit.
	GPUMemLimitMB int `toml:"gpu_mem_limit_mb"`
	// CudnnConvAlgoSearch is "exhaustive", "heuristic" or "default".
	CudnnConvAlgoSearch string `toml:"cudnn_conv_algo_search"`
	// IntraOpThreads is the number of threads per operator; 0 lets ONNX
	// Runtime use one per physical core.
	IntraOpThreads int `toml:"intra_op_threads"`
	// GraphOptimization is "disable", "basic", "extended" or "all".
	GraphOptimization string `toml:"graph_optimization"`
	// OptimizedModelCache is a folder where ONNX Runtime writes each
	// session's optimized graph (<name>.<provider>.opt.onnx), loaded instead
	// of the original next time when newer. Empty: no cache.
	OptimizedModelCache string `toml:"optimized_model_cache"`
	// ApplyEXIF rotates images by their EXIF orientation before grounding.
	ApplyEXIF bool `toml:"apply_exif"`
	// FastDecodeMinSide turns on the fast JPEG mode (DecodeOptions.
	// FastMinSize) with this minimum side in pixels; 0 is off.
	FastDecodeMinSide int `toml:"fast_decode_min_side"`
	// MaxNewTokens bounds the tokens generated per task: a budget per task
	// name (core.Tasks), and "other" for every task without one and for
	// free-form prefixes.
	MaxNewTokens map[string]int `toml:"max_new_tokens"`
	// FallbackObjects are detected when the request names no objects and
	// the caption yields none.
	FallbackObjects []string `toml:"fallback_objects"`
	// MaxObjects caps the object names taken from a caption or request.
	MaxObjects int `toml:"max_objects"`
}

// DefaultModelConfig returns the defaults for the embedded, CPU case.
func DefaultModelConfig() ModelConfig {
	return ModelConfig{
		Provider:            "cpu",
		CudnnConvAlgoSearch: "heuristic",
		GraphOptimization:   "all",
		ApplyEXIF:           true,
		MaxNewTokens:        defaultMaxNewTokens(),
		FallbackObjects:     []string{"person", "animal", "object"},
		MaxObjects:          8,
	}
}

// defaultOtherTokens is the budget of tasks the task table gives none.
const defaultOtherTokens = 64

// defaultMaxNewTokens is the task table's budgets, and "other".
func defaultMaxNewTokens() map[string]int {
	m := map[string]int{core.OtherTokens: defaultOtherTokens}
	for _, t := range core.Tasks {
		if t.MaxNewTokens > 0 {
			m[string(t.Name)] = t.MaxNewTokens
		}
	}
	return m
}

// Allowed values, for Validate's messages.
var (
	providers         = []string{"cpu", "cuda"}
	optimizations     = []string{"disable", "basic", "extended", "all"}
	cudnnAlgoSearches = []string{"exhaustive", "heuristic", "default"}
)

// Validate reports every invalid field, naming its config.toml key and the
// allowed values; the error is a core.ErrConfig.
func (c ModelConfig) Validate() error {
	p := core.NewProblems("model")
	p.OneOf("provider", strings.ToLower(c.Provider), providers...)
	p.OneOf("graph_optimization", strings.ToLower(c.GraphOptimization), optimizations...)
	p.OneOf("cudnn_conv_algo_search", strings.ToLower(c.CudnnConvAlgoSearch), cudnnAlgoSearches...)
	p.AtLeast("device_id", c.DeviceID, 0)
	p.AtLeast("gpu_mem_limit_mb", c.GPUMemLimitMB, 0)
	p.AtLeast("intra_op_threads", c.IntraOpThreads, 0)
	p.AtLeast("max_objects", c.MaxObjects, 1)
	p.AtLeast("fast_decode_min_side", c.FastDecodeMinSide, 0)
	keys := []string{core.OtherTokens}
	for _, t := range core.Tasks {
		keys = append(keys, string(t.Name))
	}
	for _, key := range slices.Sorted(maps.Keys(c.MaxNewTokens)) {
		if !slices.Contains(keys, key) {
			p.Add("max_new_tokens."+key, "is not a task: use one of %s", strings.Join(keys, ", "))
			continue
		}
		p.AtLeast("max_new_tokens."+key, c.MaxNewTokens[key], 1)
	}
	if _, ok := c.MaxNewTokens[core.OtherTokens]; !ok {
		p.Add("max_new_tokens.other", "must be set: it is the budget of every task without its own")
	}
	for _, o := range c.FallbackObjects {
		if core.CleanName(o) == "" {
			p.Add("fallback_objects", "has an empty name %q", o)
		}
	}
	return p.Err()
}

// TokensFor returns the max_new_tokens budget of a prefix: its task's,
// else "other".
func (c ModelConfig) TokensFor(prefix string) int {
	if t, ok := core.TaskOf(prefix); ok {
		if n, ok := c.MaxNewTokens[string(t.Name)]; ok {
			return n
		}
	}
	return c.MaxNewTokens[core.OtherTokens]
}

// MaskDecoderPath is model.mask_decoder, else <dir>/vae-oid.npz, else ""
// (no model folder, no decoder configured).
func (c ModelConfig) MaskDecoderPath() string {
	switch {
	case c.MaskDecoder != "":
		return c.MaskDecoder
	case c.Dir != "":
		return filepath.Join(c.Dir, "vae-oid.npz")
	}
	return ""
}
