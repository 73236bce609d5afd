// Package sdxl turns a layouts.Layout into an SDXL generation plan: a
// canvas size, prompts, regional masks and the same plan in the formats
// of the tools that run SDXL.
//
// # Contract
//
// Input: a layouts.Layout and a Request (the "sdxl" object of a JSON
// request: forced size, extra terms, sampler settings). Output: a Plan,
// a plain value with JSON tags that the plugin puts in its reply. Pure
// functions of the input: no I/O, no models, no NATS (encoding masks to
// PNG bytes in memory is all). A Composer holds its validated Config and
// a TokenCounter and is safe for concurrent use if the counter is.
// Errors only for options it cannot honour; they are core.ErrBadRequest
// errors (a 400).
//
// # The plan
//
//   - Bucket: the configured size (default SDXL's nine ~1 MP buckets)
//     nearest the reference's aspect ratio, or the request's forced size.
//   - Global prompt: caption, a sentence per object, style-question
//     answers, configured style terms, request terms; packed into chunks
//     of at most 75 CLIP tokens, cut only between phrases, joined with
//     BREAK. Negative: configured terms and request terms, the same way.
//   - Regions: one per object (its label with the caption's attributes
//     for it and its location phrase, within one 75-token window) and the
//     background (the caption's scene phrase, "background"). Each has a
//     weight and an 8-bit white-on-black PNG mask at the canvas size: the
//     object's soft segmentation mask scaled into its placed box, else the
//     box with a feathered edge; overlaps resolved by depth or average;
//     the background is the complement, so masks sum to white.
//   - Weights: the global prompt has global_weight, each region its
//     weight; where a region's mask is white its own prompt has
//     weight/(global_weight+weight) of the conditioning in every format
//     (Region.Share).
//   - Region controls (config [[sdxl.regions]], request "regions"): per
//     region extra prompt terms, a negative prompt, a weight and LoRAs,
//     carried into every format that supports them (Plan.Notes says where
//     one cannot).
//   - User and model text is neutralised for every tool's prompt syntax
//     (Escape; escape_test.go runs each tool's parsing rule on the plans).
//   - Conditioning images from the reference (hints.go), each only when
//     configured or requested: a Canny edge map and a segmentation map
//     for ControlNets, a colour start canvas for img2img, per-object RGBA
//     crops for IP-Adapters; all follow the layout, and the formats apply
//     them when their models are named in config. The reference reaches
//     sdxl only as Request.Reference, set by the plugin.
//   - Tokens are counted with the injected TokenCounter (a CLIP
//     tokenizer.json, which the binary loads with the model grounder's
//     tokenizer binding), else with
//     EstimateCounter, a conservative estimate. Plan.Notes says what was
//     cut or left out; nothing is dropped silently.
//   - Consumers: ComfyUI (a runnable API graph of core nodes, checked by
//     Graph.Check against comfyui_object_info.json, ComfyUI's own node
//     schema made by tools/comfyui_object_info.py), Regional Prompter
//     (Mask mode, and Matrix mode when the regions tile the canvas), Forge
//     Couple (Mask mode, Advanced mode as the rectangle fallback), each
//     also as a complete A1111/Forge API request (Plan.WebUI), and an
//     Omost canvas (with its Python). Regions whose mask is empty are left
//     out of them all.
//
// # How the plugin calls us
//
// Example (example_test.go, compiled and run by go test) shows the calls:
// New with the [sdxl] table and a token counter (nil: the estimate),
// StylePrefixes for the grounding request, Compose on the layout with the
// request's "sdxl" options (ID and Lang set by the plugin), and the plan's
// Canvas for the layout preview.
//
// Every image a consumer names is in the plan, and Plan.Files is the one
// list of them: Region.Mask (named Region.MaskFile) and
// RegionalPrompter.Mask (MaskFile), and the hints (Hints). Their names
// end in a hash of their pixels. sdxl makes the images; the caller encodes
// them (EncodeFiles, or the plugin's encoder pool), only those it sends. A
// ComfyUI user uploads those files to ComfyUI's input folder (with
// overwrite=true) and posts {"prompt": plan.comfyui}; the WebUI payloads
// carry their images inline (InlinePNG: read from the encoded files when
// marshalled) and post as they are.
package sdxl
