package grounding

// ModelConfig selects and tunes the PaliGemma model grounder. It is the
// [model] table of config.toml; DefaultModelConfig gives the defaults.
type ModelConfig struct {
	// Dir is the model folder (config.json, preprocessor_config.json,
	// tokenizer.json, onnx/*.onnx). Empty: no model, text grounder only.
	Dir string `toml:"dir"`
	// MaskDecoder is the vae-oid.npz file for segmentation masks. Empty:
	// <Dir>/vae-oid.npz when present.
	MaskDecoder string `toml:"mask_decoder"`
	// OnnxRuntimeLibrary is the path of libonnxruntime.so. Empty: the
	// library installed by `make setup`, else the system's.
	OnnxRuntimeLibrary string `toml:"onnxruntime_library"`
	// Provider is the execution provider: "cpu" or "cuda" (falls back to
	// CPU, with a log line, when CUDA cannot be used).
	Provider string `toml:"provider"`
	// ApplyEXIF rotates images by their EXIF orientation before grounding.
	ApplyEXIF bool `toml:"apply_exif"`
}

// DefaultModelConfig returns the defaults for the embedded, CPU case.
func DefaultModelConfig() ModelConfig {
	return ModelConfig{Provider: "cpu", ApplyEXIF: true}
}
