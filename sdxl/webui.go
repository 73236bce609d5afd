package sdxl

import "fmt"

// WebUIRequest is a complete request body for the A1111 / Forge web API:
// POST /sdapi/v1/txt2img, or /sdapi/v1/img2img when InitImages is set
// (A1111 v1.10's StableDiffusionTxt2ImgProcessingAPI fields; Forge keeps
// them). Images are base64 PNGs in the JSON (InlinePNG), as the API
// takes them.
type WebUIRequest struct {
	Prompt         string  `json:"prompt"`
	NegativePrompt string  `json:"negative_prompt"`
	Width          int     `json:"width"`
	Height         int     `json:"height"`
	Steps          int     `json:"steps"`
	CFGScale       float64 `json:"cfg_scale"`
	Seed           int64   `json:"seed"`
	SamplerName    string  `json:"sampler_name"`
	Scheduler      string  `json:"scheduler"`
	BatchSize      int     `json:"batch_size"`
	NIter          int     `json:"n_iter"`
	// OverrideSettings selects the checkpoint ([sdxl.comfyui] checkpoint).
	OverrideSettings map[string]any `json:"override_settings"`
	// AlwaysonScripts holds each extension's positional arguments, keyed
	// by its title ("Regional Prompter", "Forge Couple", "ControlNet").
	AlwaysonScripts map[string]ScriptArgs `json:"alwayson_scripts"`
	// InitImages and DenoisingStrength make it an img2img request.
	InitImages        []InlinePNG `json:"init_images,omitempty"`
	DenoisingStrength float64     `json:"denoising_strength,omitempty"`
}

// ScriptArgs are one extension's arguments in alwayson_scripts.
type ScriptArgs struct {
	Args []any `json:"args"`
}

// WebUI API endpoints.
const (
	EndpointTxt2Img = "/sdapi/v1/txt2img"
	EndpointImg2Img = "/sdapi/v1/img2img"
)

// webUISamplers maps ComfyUI KSampler names to A1111's sampler names
// (A1111 v1.10 sd_samplers_kdiffusion.py and sd_samplers_timesteps.py;
// A1111 takes the scheduler separately since v1.9). A ComfyUI sampler
// missing here has no A1111 counterpart.
var webUISamplers = map[string]string{
	"euler": "Euler", "euler_ancestral": "Euler a", "heun": "Heun", "dpm_2": "DPM2", "dpm_2_ancestral": "DPM2 a",
	"lms": "LMS", "dpm_fast": "DPM fast", "dpm_adaptive": "DPM adaptive", "dpmpp_2s_ancestral": "DPM++ 2S a",
	"dpmpp_sde": "DPM++ SDE", "dpmpp_sde_gpu": "DPM++ SDE", "dpmpp_2m": "DPM++ 2M",
	"dpmpp_2m_sde": "DPM++ 2M SDE", "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",
	"dpmpp_2m_sde_heun": "DPM++ 2M SDE Heun", "dpmpp_2m_sde_heun_gpu": "DPM++ 2M SDE Heun",
	"dpmpp_3m_sde": "DPM++ 3M SDE", "dpmpp_3m_sde_gpu": "DPM++ 3M SDE",
	"lcm": "LCM", "ddim": "DDIM", "uni_pc": "UniPC", "uni_pc_bh2": "UniPC",
}

// webUISchedulers maps ComfyUI scheduler names to A1111's (sd_schedulers.py
// of v1.10).
var webUISchedulers = map[string]string{
	"simple": "simple", "sgm_uniform": "sgm_uniform", "karras": "karras", "exponential": "exponential",
	"ddim_uniform": "ddim", "beta": "beta", "normal": "normal", "kl_optimal": "kl_optimal",
}

// Defaults for a sampler or scheduler A1111 lacks.
const (
	webUIFallbackSampler   = "DPM++ 2M"
	webUIFallbackScheduler = "automatic"
)

// webUIBase is the body every WebUI payload of a plan starts from: the
// sampler settings of the ComfyUI graph under A1111's names.
func webUIBase(p *Plan, r comfyRun, checkpoint string, notes *[]string) WebUIRequest {
	sampler, ok := webUISamplers[r.sampler]
	if !ok {
		sampler = webUIFallbackSampler
		*notes = append(*notes, fmt.Sprintf("A1111 has no sampler like ComfyUI's %q: the A1111/Forge payloads use %q", r.sampler, sampler))
	}
	scheduler, ok := webUISchedulers[r.scheduler]
	if !ok {
		scheduler = webUIFallbackScheduler
		*notes = append(*notes, fmt.Sprintf("A1111 has no scheduler like ComfyUI's %q: the A1111/Forge payloads use %q", r.scheduler, scheduler))
	}
	return WebUIRequest{
		Width: p.Width, Height: p.Height, Steps: r.steps, CFGScale: r.cfg, Seed: r.seed,
		SamplerName: sampler, Scheduler: scheduler, BatchSize: 1, NIter: 1,
		OverrideSettings: map[string]any{"sd_model_checkpoint": checkpoint},
		AlwaysonScripts:  map[string]ScriptArgs{},
	}
}

// WebUIPayloads are the plan as A1111 / Forge API requests, one per
// regional extension and mode; each is complete and posts as it is.
type WebUIPayloads struct {
	// Endpoint is where to POST each of them: EndpointTxt2Img, or
	// EndpointImg2Img when the plan has a start canvas.
	Endpoint string `json:"endpoint"`
	// RegionalPrompter uses its Mask mode with the colour mask.
	RegionalPrompter *WebUIRequest `json:"regional_prompter,omitempty"`
	// RegionalPrompterMatrix uses its Matrix mode; present when the
	// regions tile the canvas (RegionalPrompter.Matrix).
	RegionalPrompterMatrix *WebUIRequest `json:"regional_prompter_matrix,omitempty"`
	// ForgeCouple uses its Mask mode with the resolved region masks.
	ForgeCouple *WebUIRequest `json:"forge_couple,omitempty"`
	// ForgeCoupleAdvanced uses its Advanced mode: the objects' placed
	// rectangles, the fallback where masks are not wanted.
	ForgeCoupleAdvanced *WebUIRequest `json:"forge_couple_advanced,omitempty"`
}

// WebUIBody is one payload with the file name `paliprompt run` writes it
// under.
type WebUIBody struct {
	File string
	Body *WebUIRequest
}

// Bodies lists the payloads that are present, each with its file name.
func (w WebUIPayloads) Bodies() []WebUIBody {
	var out []WebUIBody
	for _, b := range []WebUIBody{
		{"a1111-regional-prompter.json", w.RegionalPrompter}, {"a1111-regional-prompter-matrix.json", w.RegionalPrompterMatrix},
		{"a1111-forge-couple.json", w.ForgeCouple}, {"a1111-forge-couple-advanced.json", w.ForgeCoupleAdvanced},
	} {
		if b.Body != nil {
			out = append(out, b)
		}
	}
	return out
}

// DropBodies removes the request bodies (a caller that keeps them
// elsewhere, such as the plugin's results bucket, keeps the endpoint).
func (w *WebUIPayloads) DropBodies() {
	w.RegionalPrompter, w.RegionalPrompterMatrix, w.ForgeCouple, w.ForgeCoupleAdvanced = nil, nil, nil, nil
}
