package paligemma

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"paliprompt/core"
	"paliprompt/grounding"
)

// Grounder runs PaliGemma (an exported model folder) on ONNX Runtime.
// It implements Grounder and Describer. Use it from one goroutine at a
// time (the plugin serializes requests); Close releases the sessions.
type Grounder struct {
	cfg     grounding.ModelConfig
	eng     *engine
	masks   *ortMaskDecoder
	maskErr error // why segment requests cannot be served, when masks is nil
}

// New validates cfg and loads the model folder cfg.Dir and,
// when present, the mask decoder (run on ONNX Runtime, on the model's
// provider). progress (may be nil) hears about each load step. Errors wrap
// ErrBadRequest for a bad config and ErrUnavailable for missing or broken
// model files.
func New(cfg grounding.ModelConfig, progress LoadProgress) (*Grounder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	eng, err := openEngine(cfg, progress)
	if err != nil {
		return nil, err
	}
	g := &Grounder{cfg: cfg, eng: eng}
	path := cfg.MaskDecoderPath()
	if d, err := grounding.LoadMaskDecoder(path); err == nil {
		if g.masks, err = eng.openMaskDecoder(d); err != nil {
			eng.Close()
			return nil, err
		}
	} else if cfg.MaskDecoder != "" || !errors.Is(err, os.ErrNotExist) {
		eng.Close()
		return nil, err
	} else {
		g.maskErr = core.Errorf(core.ErrUnavailable, "segmentation needs the mask decoder and %s does not exist (set model.mask_decoder)", path)
	}
	return g, nil
}

// Describe implements Describer.
func (g *Grounder) Describe() grounding.Info {
	status := "ready"
	if g.eng.fallback != "" {
		status = "ready (CUDA requested, running on CPU: " + g.eng.fallback + ")"
	}
	return grounding.Info{Kind: "model", ModelDir: g.cfg.Dir, Provider: g.eng.provider, Status: status}
}

// Close releases the model.
func (g *Grounder) Close() error {
	if g.masks != nil {
		g.masks.Close()
	}
	g.eng.Close()
	return nil
}

// prompt is one prefix of a request and the task its answer belongs to
// (nil for a free-form prefix).
type prompt struct {
	prefix string
	task   *core.Task
}

// Ground runs the requested tasks on req.Image: the vision encoder once,
// then the tasks batched. Without object names the caption runs first and
// names the objects for the tasks that take them.
func (g *Grounder) Ground(ctx context.Context, req grounding.Request) (core.Result, error) {
	if req.Image == nil {
		return core.Result{}, core.Errorf(core.ErrBadRequest, "the model grounder needs an image")
	}
	w, h, err := req.Size()
	if err != nil {
		return core.Result{}, err
	}
	for _, name := range req.Tasks {
		if t, _ := core.LookupTask(name); t.Masks && g.masks == nil {
			return core.Result{}, g.maskErr
		}
	}
	if err := ctx.Err(); err != nil {
		return core.Result{}, fmt.Errorf("grounding not started: %w", err)
	}
	res := core.Result{Width: w, Height: h, Outputs: core.Outputs{}}
	sw := core.NewStopwatch()
	pixels := g.eng.prep.PixelValues(req.Image)
	sw.Lap("preprocess")
	features, err := g.eng.imageFeatures(pixels)
	if err != nil {
		return core.Result{}, err
	}
	sw.Lap("onnx vision_encoder")

	args := req.Args
	args.Lang = core.CleanName(args.Lang)
	args.Objects = core.CleanNames(args.Objects, g.cfg.MaxObjects)
	first, later, err := g.prompts(req, args)
	if err != nil {
		return core.Result{}, err
	}
	if err := g.runPrompts(ctx, sw, features, first, &res); err != nil {
		return core.Result{}, err
	}
	if len(later) > 0 {
		if args.Objects = grounding.NamesFromCaption(res.Outputs[core.TaskCaption], g.cfg.MaxObjects); len(args.Objects) == 0 {
			args.Objects = core.CleanNames(g.cfg.FallbackObjects, g.cfg.MaxObjects)
		}
		if later, err = buildPrompts(later, args); err != nil {
			return core.Result{}, err
		}
		if err := g.runPrompts(ctx, sw, features, later, &res); err != nil {
			return core.Result{}, err
		}
	}
	res.Timings = sw.Laps()
	if !req.Wants(core.TaskCaption) {
		res.Caption = "" // it ran only to name the objects; its output stays in Outputs
	}
	return res, nil
}

// prompts splits a request into the prompts of the first batch (tasks
// without objects, the free-form prefixes, then the object tasks) and the
// object tasks that wait for names from the caption (their prefixes are
// built once the names are known).
func (g *Grounder) prompts(req grounding.Request, args core.PrefixArgs) (first, later []prompt, err error) {
	var plain, objects []prompt
	for _, t := range core.Tasks {
		switch {
		case !req.Wants(t.Name):
		case t.TakesObjects() && len(args.Objects) == 0:
			later = append(later, prompt{task: &t})
		case t.TakesObjects():
			objects = append(objects, prompt{task: &t})
		default:
			plain = append(plain, prompt{task: &t})
		}
	}
	if len(later) > 0 && !req.Wants(core.TaskCaption) {
		caption, _ := core.LookupTask(core.TaskCaption)
		plain = append([]prompt{{task: &caption}}, plain...)
	}
	for _, p := range req.Prefixes {
		if p = strings.Join(strings.Fields(p), " "); p != "" {
			plain = append(plain, prompt{prefix: p})
		}
	}
	first, err = buildPrompts(append(plain, objects...), args)
	return first, later, err
}

// buildPrompts fills the prefixes of task prompts.
func buildPrompts(ps []prompt, args core.PrefixArgs) ([]prompt, error) {
	for i := range ps {
		if ps[i].task == nil {
			continue
		}
		prefix, err := ps[i].task.BuildPrefix(args)
		if err != nil {
			return nil, err
		}
		ps[i].prefix = prefix
	}
	return ps, nil
}

// runPrompts decodes one batch of prompts and stores their outputs in
// res, each step a lap of sw: the generation (its ONNX Runtime runs as
// parts), then the parsing of each object task's output.
func (g *Grounder) runPrompts(ctx context.Context, sw *core.Stopwatch, features []float32, ps []prompt, res *core.Result) error {
	if len(ps) == 0 {
		return nil
	}
	gen := make([]genTask, len(ps))
	names := make([]string, len(ps))
	for i, p := range ps {
		gen[i] = genTask{prompt: g.eng.tok.Encode(p.prefix+"\n", false), maxNew: g.cfg.TokensFor(p.prefix)}
		names[i], _, _ = strings.Cut(p.prefix, " ")
	}
	var times runTimes
	ids, err := g.eng.generate(ctx, features, gen, &times)
	if err != nil {
		return err
	}
	sw.LapParts("generate "+strings.Join(names, "+"), times.parts())
	for i, p := range ps {
		text := g.decodeText(ids[i])
		if p.task == nil {
			res.Answers = append(res.Answers, core.Answer{Prefix: p.prefix, Text: text})
			continue
		}
		before := len(res.Objects)
		if err := grounding.Store(res, *p.task, text, g.maskDecoder()); err != nil {
			return err
		}
		if p.task.Objects {
			sw.Lap(parseStage(p.task, res.Objects[before:]))
		}
	}
	return nil
}

// maskDecoder is g.masks as an interface: nil when there is none.
func (g *Grounder) maskDecoder() grounding.MaskDecoder {
	if g.masks == nil {
		return nil
	}
	return g.masks
}

// parseStage names the parsing of one task's output: with the number of
// masks decoded, the part that costs.
func parseStage(t *core.Task, objs []core.Object) string {
	masks := 0
	for _, o := range objs {
		if o.Mask != nil {
			masks++
		}
	}
	if !t.Masks {
		return fmt.Sprintf("parse %s (%d objects)", t.Name, len(objs))
	}
	return fmt.Sprintf("parse %s (%d objects) and mask decode (%d masks)", t.Name, len(objs), masks)
}

// decodeText turns generated ids into text: the eos that ended the
// sequence is dropped, special tokens are skipped (location and
// segmentation tokens are not special and stay), spaces trimmed.
func (g *Grounder) decodeText(ids []int) string {
	if n := len(ids); n > 0 && slices.Contains(g.eng.spec.eos, ids[n-1]) {
		ids = ids[:n-1]
	}
	return strings.TrimSpace(g.eng.tok.Decode(ids, true))
}
