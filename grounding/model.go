package grounding

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ModelGrounder runs PaliGemma (an exported model folder) on ONNX Runtime.
// It implements Grounder and Describer. Use it from one goroutine at a
// time (the plugin serializes requests); Close releases the sessions.
type ModelGrounder struct {
	cfg     ModelConfig
	eng     *engine
	masks   MaskDecoder
	maskErr error // why segment requests cannot be served, when masks is nil
}

// NewModelGrounder validates cfg and loads the model folder cfg.Dir and,
// when present, the mask decoder. progress (may be nil) hears about each
// load step. Errors wrap ErrBadRequest for a bad config and ErrUnavailable
// for missing or broken model files.
func NewModelGrounder(cfg ModelConfig, progress LoadProgress) (*ModelGrounder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	eng, err := openEngine(cfg, progress)
	if err != nil {
		return nil, err
	}
	g := &ModelGrounder{cfg: cfg, eng: eng}
	path := maskDecoderPath(cfg)
	if d, err := LoadMaskDecoder(path); err == nil {
		g.masks = d
	} else if cfg.MaskDecoder != "" || !errors.Is(err, os.ErrNotExist) {
		eng.Close()
		return nil, err
	} else {
		g.maskErr = fmt.Errorf("%w: segmentation needs the mask decoder and %s does not exist (set model.mask_decoder)", ErrUnavailable, path)
	}
	return g, nil
}

// maskDecoderPath is model.mask_decoder, else <dir>/vae-oid.npz.
func maskDecoderPath(cfg ModelConfig) string {
	if cfg.MaskDecoder != "" {
		return cfg.MaskDecoder
	}
	return filepath.Join(cfg.Dir, "vae-oid.npz")
}

// Describe implements Describer.
func (g *ModelGrounder) Describe() Info {
	status := "ready"
	if g.eng.fallback != "" {
		status = "ready (CUDA requested, running on CPU: " + g.eng.fallback + ")"
	}
	return Info{Kind: "model", ModelDir: g.cfg.Dir, Provider: g.eng.provider, Status: status}
}

// Close releases the model.
func (g *ModelGrounder) Close() error {
	g.eng.Close()
	return nil
}

// task is one prefix of a request and where its answer goes.
type task struct {
	prefix string
	kind   string // caption, detect, segment or "" (an extra prefix)
}

// Ground runs the requested tasks on req.Image: the vision encoder once,
// then the tasks batched. Without object names the caption runs first and
// names the objects for detect and segment.
func (g *ModelGrounder) Ground(ctx context.Context, req Request) (Result, error) {
	if req.Image == nil {
		return Result{}, fmt.Errorf("%w: the model grounder needs an image", ErrBadRequest)
	}
	w, h, err := requestSize(req)
	if err != nil {
		return Result{}, err
	}
	if req.Segment && g.masks == nil {
		return Result{}, g.maskErr
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("grounding not started: %w", err)
	}
	res := Result{Width: w, Height: h}
	timed := func(stage string, start time.Time) {
		res.Timings = append(res.Timings, Timing{Stage: stage, Duration: time.Since(start)})
	}
	start := time.Now()
	pixels := g.eng.prep.PixelValues(req.Image)
	timed("preprocess", start)
	start = time.Now()
	features, err := g.eng.imageFeatures(pixels)
	if err != nil {
		return Result{}, err
	}
	timed("vision", start)

	lang := sanitizeName(req.Lang)
	if lang == "" {
		lang = "en"
	}
	names := cleanNames(req.Objects, g.cfg.MaxObjects)
	needNames := (req.Detect || req.Segment) && len(names) == 0
	var first []task
	if req.Caption || needNames {
		first = append(first, task{"caption " + lang, "caption"})
	}
	for _, p := range req.Prefixes {
		if p = strings.Join(strings.Fields(p), " "); p != "" {
			first = append(first, task{p, ""})
		}
	}
	objectTasks := func() []task {
		var ts []task
		joined := strings.Join(names, " ; ")
		if req.Detect {
			ts = append(ts, task{"detect " + joined, "detect"})
		}
		if req.Segment {
			ts = append(ts, task{"segment " + joined, "segment"})
		}
		return ts
	}
	if !needNames {
		first = append(first, objectTasks()...)
	}
	if err := g.runTasks(ctx, features, first, &res); err != nil {
		return Result{}, err
	}
	if needNames {
		if names = namesFromCaption(res.Outputs.Caption, g.cfg.MaxObjects); len(names) == 0 {
			names = cleanNames(g.cfg.FallbackObjects, g.cfg.MaxObjects)
		}
		if err := g.runTasks(ctx, features, objectTasks(), &res); err != nil {
			return Result{}, err
		}
	}
	if !req.Caption {
		res.Caption = ""
	}
	return res, nil
}

// runTasks decodes one batch of tasks and stores their outputs in res.
func (g *ModelGrounder) runTasks(ctx context.Context, features []float32, tasks []task, res *Result) error {
	if len(tasks) == 0 {
		return nil
	}
	gen := make([]genTask, len(tasks))
	for i, t := range tasks {
		gen[i] = genTask{prompt: g.eng.tok.Encode(t.prefix+"\n", false), maxNew: g.cfg.MaxNewTokens.forPrefix(t.prefix)}
	}
	start := time.Now()
	ids, err := g.eng.generate(ctx, features, gen)
	if err != nil {
		return err
	}
	res.Timings = append(res.Timings, Timing{Stage: "generate " + taskNames(tasks), Duration: time.Since(start)})
	for i, t := range tasks {
		text := g.decodeText(ids[i])
		switch t.kind {
		case "caption":
			res.Outputs.Caption, res.Caption = text, text
		case "detect":
			res.Outputs.Detect = text
		case "segment":
			res.Outputs.Segment = text
		default:
			res.Answers = append(res.Answers, Answer{Prefix: t.prefix, Text: text})
		}
		if t.kind == "detect" || t.kind == "segment" {
			start := time.Now()
			if err := addObjects(res, t.kind, text, g.masks); err != nil {
				return err
			}
			res.Timings = append(res.Timings, Timing{Stage: "parse " + t.kind, Duration: time.Since(start)})
		}
	}
	return nil
}

func taskNames(tasks []task) string {
	var names []string
	for _, t := range tasks {
		names = append(names, taskKind(t.prefix))
	}
	return strings.Join(names, "+")
}

// decodeText turns generated ids into text: the eos that ended the
// sequence is dropped, special tokens are skipped (location and
// segmentation tokens are not special and stay), spaces trimmed.
func (g *ModelGrounder) decodeText(ids []int) string {
	if n := len(ids); n > 0 && slices.Contains(g.eng.spec.eos, ids[n-1]) {
		ids = ids[:n-1]
	}
	return strings.TrimSpace(g.eng.tok.Decode(ids, true))
}
