package grounding

import (
	"errors"
	"fmt"
	"slices"
	"strings"
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
	// OnnxRuntimeLibrary is the path of libonnxruntime.so. Empty: the
	// library installed by `make setup` (.deps/onnxruntime, found from the
	// working directory or the executable), else the system's.
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
	// MaxNewTokens bounds the tokens generated per task.
	MaxNewTokens TaskTokens `toml:"max_new_tokens"`
	// FallbackObjects are detected when the request names no objects and
	// the caption yields none.
	FallbackObjects []string `toml:"fallback_objects"`
	// MaxObjects caps the object names taken from a caption or request.
	MaxObjects int `toml:"max_objects"`
}

// TaskTokens is a max_new_tokens per kind of task.
type TaskTokens struct {
	Caption int `toml:"caption"`
	Detect  int `toml:"detect"`
	Segment int `toml:"segment"`
	// Other covers every other prefix (answer, question, ocr, describe).
	Other int `toml:"other"`
}

// DefaultModelConfig returns the defaults for the embedded, CPU case.
func DefaultModelConfig() ModelConfig {
	return ModelConfig{
		Provider:            "cpu",
		CudnnConvAlgoSearch: "heuristic",
		GraphOptimization:   "all",
		ApplyEXIF:           true,
		// A segment object costs 4 + 16 tokens plus its label.
		MaxNewTokens:    TaskTokens{Caption: 64, Detect: 128, Segment: 256, Other: 64},
		FallbackObjects: []string{"person", "animal", "object"},
		MaxObjects:      8,
	}
}

// Allowed values, for Validate's messages.
var (
	providers         = []string{"cpu", "cuda"}
	optimizations     = []string{"disable", "basic", "extended", "all"}
	cudnnAlgoSearches = []string{"exhaustive", "heuristic", "default"}
)

// Validate reports every invalid field, naming its config.toml key and the
// allowed values; errors wrap ErrBadRequest.
func (c ModelConfig) Validate() error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: model.%s %s", ErrBadRequest, key, fmt.Sprintf(format, args...)))
	}
	oneOf := func(key, v string, allowed []string) {
		if !slices.Contains(allowed, strings.ToLower(v)) {
			bad(key, "is %q, want one of %s", v, strings.Join(allowed, ", "))
		}
	}
	oneOf("provider", c.Provider, providers)
	oneOf("graph_optimization", c.GraphOptimization, optimizations)
	oneOf("cudnn_conv_algo_search", c.CudnnConvAlgoSearch, cudnnAlgoSearches)
	for _, f := range []struct {
		key string
		v   int
		min int
	}{
		{"device_id", c.DeviceID, 0}, {"gpu_mem_limit_mb", c.GPUMemLimitMB, 0}, {"intra_op_threads", c.IntraOpThreads, 0},
		{"max_new_tokens.caption", c.MaxNewTokens.Caption, 1}, {"max_new_tokens.detect", c.MaxNewTokens.Detect, 1},
		{"max_new_tokens.segment", c.MaxNewTokens.Segment, 1}, {"max_new_tokens.other", c.MaxNewTokens.Other, 1},
		{"max_objects", c.MaxObjects, 1},
	} {
		if f.v < f.min {
			bad(f.key, "is %d, want %d or more", f.v, f.min)
		}
	}
	for _, o := range c.FallbackObjects {
		if sanitizeName(o) == "" {
			bad("fallback_objects", "has an empty name %q", o)
		}
	}
	return errors.Join(errs...)
}

// maxNewTokens returns the budget of a task prefix.
func (t TaskTokens) forPrefix(prefix string) int {
	switch taskKind(prefix) {
	case "caption":
		return t.Caption
	case "detect":
		return t.Detect
	case "segment":
		return t.Segment
	}
	return t.Other
}

// taskKind is the first word of a prefix ("caption en" -> "caption").
func taskKind(prefix string) string {
	kind, _, _ := strings.Cut(strings.TrimSpace(prefix), " ")
	return kind
}
