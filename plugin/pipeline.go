package plugin

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"strings"
	"time"

	"paliprompt/core"

	"paliprompt/grounding"
	"paliprompt/layouts"
	"paliprompt/sdxl"
)

// Pipeline is the one path every request takes, whether it comes from the
// micro service, the event bus or `paliprompt run`: load and decode the
// image, ground it (through the queue), then build the reply.
type Pipeline struct {
	cfg      Config
	model    grounding.Grounder // nil when no model is configured
	text     grounding.Grounder
	planner  *layouts.Planner
	composer *sdxl.Composer
	queue    *queue
	log      *slog.Logger
}

// imageSource fetches images named by image_object.
type imageSource interface {
	fetchImage(ctx context.Context, name string, max int64) ([]byte, error)
}

// newPipeline assembles a pipeline. model may be nil (text grounder only);
// counter counts CLIP tokens for the SDXL prompts (nil: sdxl's estimate).
func newPipeline(cfg Config, model, text grounding.Grounder, counter sdxl.TokenCounter, log *slog.Logger) (*Pipeline, error) {
	planner, err := layouts.New(cfg.Layout)
	if err != nil {
		return nil, err
	}
	composer, err := sdxl.New(cfg.SDXL, counter)
	if err != nil {
		return nil, err
	}
	return &Pipeline{
		cfg: cfg, model: model, text: text, planner: planner, composer: composer,
		queue: newQueue(cfg.Queue.Size), log: log,
	}, nil
}

// Process runs one request through every stage and returns its reply.
// Errors wrap the core error kinds that map to reply codes.
func (p *Pipeline) Process(ctx context.Context, req Request, images imageSource) (*Reply, error) {
	return withDeadline(ctx, p.timeout(req), func(ctx context.Context) (*Reply, error) {
		return p.process(ctx, req, images)
	})
}

// Verify checks a generated image against its plan (package verify).
func (p *Pipeline) Verify(ctx context.Context, req Request, src planSource) (*VerifyReply, error) {
	return withDeadline(ctx, p.timeout(req), func(ctx context.Context) (*VerifyReply, error) {
		return p.verifyRequest(ctx, req, src)
	})
}

// timeout is the request's own deadline, or the queue's.
func (p *Pipeline) timeout(req Request) time.Duration {
	if req.Timeout > 0 {
		return req.Timeout
	}
	return time.Duration(p.cfg.Queue.Timeout)
}

// withDeadline runs f under a deadline and says which one ran out.
func withDeadline[T any](ctx context.Context, timeout time.Duration, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := f(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("deadline of %s exceeded %w", timeout, err)
	}
	return v, err
}

// respond runs a request and encodes its reply, each PNG inline or in the
// results bucket (stores may be nil: no JetStream). It is the one path of
// the micro service and the event bus, all within the request's
// deadline. The plan of a generate or layout result is kept for later
// verify requests; failing to keep it fails nothing else.
func (p *Pipeline) respond(ctx context.Context, req Request, stores *objectStores, maxPayload int) ([]byte, error) {
	return withDeadline(ctx, p.timeout(req), func(ctx context.Context) ([]byte, error) {
		return p.respondWithin(ctx, req, stores, maxPayload)
	})
}

// respondWithin is respond within the request's deadline: the object
// store's uploads too.
func (p *Pipeline) respondWithin(ctx context.Context, req Request, stores *objectStores, maxPayload int) ([]byte, error) {
	var src planSource
	if stores != nil {
		src = stores
	}
	if req.Endpoint == EndpointVerify {
		reply, err := p.verifyRequest(ctx, req, src)
		if err != nil {
			return nil, err
		}
		data, err := reply.encodeTimed(reply)
		if err == nil && len(data) > maxPayload {
			err = fmt.Errorf("verify reply is %d bytes, over the max payload of %d bytes", len(data), maxPayload)
		}
		return data, err
	}
	reply, err := p.process(ctx, req, src)
	if err != nil {
		return nil, err
	}
	if req.Endpoint.plans() {
		if err := stores.storePlan(ctx, reply); err != nil {
			p.log.Warn("plan not kept: verify requests cannot name it", "id", reply.ID, "err", err)
		}
	}
	return stores.place(ctx, reply, maxPayload)
}

func (p *Pipeline) process(ctx context.Context, req Request, images imageSource) (*Reply, error) {
	clock := req.clock
	if clock == nil {
		clock = core.NewStopwatch()
	}
	img, info, err := p.loadImage(ctx, req, images)
	if err != nil {
		return nil, err
	}
	clock.Lap("image decoding")
	res, err := p.ground(ctx, req, clock, p.groundingRequest(req, img, info))
	if err != nil {
		return nil, err
	}
	reply := newReply(req.ID, req.Endpoint, info.Format, res, req.Include.has(PartObjectMasks))
	reply.Reference = req.Reference
	reply.clock = clock
	clock.Lap("reply objects")
	if req.Endpoint.plans() {
		if err := p.plan(reply, res, req, img); err != nil {
			return nil, err
		}
	}
	if err := reply.encodePNGs(); err != nil {
		return nil, err
	}
	return reply, nil
}

// ground runs the request's grounder on greq through the queue, timing
// the wait and the grounding.
func (p *Pipeline) ground(ctx context.Context, req Request, clock *core.Stopwatch, greq grounding.Request) (core.Result, error) {
	grounder, err := p.grounderFor(req)
	if err != nil {
		return core.Result{}, err
	}
	var res core.Result
	err = p.queue.run(ctx, func() error {
		clock.Lap("queue")
		res, err = grounder.Ground(ctx, greq)
		if ctx.Err() != nil {
			return fmt.Errorf("while grounding: %w", ctx.Err())
		}
		return err
	})
	if err != nil {
		return core.Result{}, err
	}
	clock.LapParts("ground", res.Timings)
	return res, nil
}

// plan runs the stages after grounding: the layout, the SDXL plan and the
// preview (their PNGs are encoded with the reply's).
func (p *Pipeline) plan(reply *Reply, res core.Result, req Request, img image.Image) error {
	layout, err := p.planner.Build(res, req.Place)
	if err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	reply.clock.Lap("layout")
	sreq := req.SDXL
	sreq.ID, sreq.Lang, sreq.Formats, sreq.Reference = req.ID, req.Args.Lang, req.Include.formats(), img
	plan, err := p.composer.Compose(layout, sreq)
	if err != nil {
		return fmt.Errorf("sdxl plan: %w", err)
	}
	reply.clock.LapParts("sdxl", plan.Timings())
	reply.Layout = &layout
	if req.Include.has(PartPreview) {
		reply.Preview = imageBlob(p.planner.Preview(img, layout, plan.Canvas()))
		reply.clock.Lap("preview")
	}
	reply.setPlan(plan, req.Include) // names the blobs
	return nil
}

// grounderFor picks the grounder: the text grounder when the request
// carries PaliGemma output text (and for layout), else the model.
func (p *Pipeline) grounderFor(req Request) (grounding.Grounder, error) {
	if req.Endpoint == EndpointLayout || len(req.Outputs) > 0 {
		return p.text, nil
	}
	if p.model == nil {
		return nil, core.Errorf(core.ErrUnavailable, "no model is loaded (model.dir is empty): send the image as JSON with PaliGemma output text (%s), or use %s.layout",
			strings.Join(taskFields(), ", "), p.cfg.Service.SubjectPrefix)
	}
	return p.model, nil
}

// taskFields are the JSON fields that carry PaliGemma output text.
func taskFields() []string {
	var out []string
	for _, name := range core.TaskNames(core.Task.Served) {
		out = append(out, string(name))
	}
	return out
}

// loadImage fetches (for image_object) and decodes the request's image;
// layout requests may have none (nil), and one they carry must be of
// their width and height.
func (p *Pipeline) loadImage(ctx context.Context, req Request, images imageSource) (image.Image, grounding.ImageInfo, error) {
	var info grounding.ImageInfo
	if req.Endpoint == EndpointLayout && req.Image == nil && req.ImageObject == "" {
		return nil, info, nil
	}
	data := req.Image
	if req.ImageObject != "" {
		if images == nil {
			return nil, info, core.Errorf(core.ErrUnavailable, "image_object needs the JetStream object store, which is not available here")
		}
		var err error
		if data, err = images.fetchImage(ctx, req.ImageObject, int64(p.cfg.Limits.MaxImageBytes)); err != nil {
			return nil, info, err
		}
	}
	side := p.cfg.Model.FastDecodeMinSide
	img, info, err := grounding.DecodeImage(data, grounding.DecodeOptions{
		MaxPixels:   p.cfg.MaxPixels(),
		ApplyEXIF:   p.cfg.Model.ApplyEXIF,
		FastMinSize: image.Pt(side, side),
	})
	if err != nil {
		return nil, info, fmt.Errorf("decode image: %w", err)
	}
	// The full size: a JPEG may be decoded smaller (fast mode).
	if req.Endpoint == EndpointLayout && (info.Width != req.Width || info.Height != req.Height) {
		return nil, info, core.Errorf(core.ErrBadRequest, "the image is %dx%d, but the layout request says %dx%d (width, height): they must match",
			info.Width, info.Height, req.Width, req.Height)
	}
	return img, info, nil
}

// groundingRequest asks the grounder for the tasks of the endpoint (with
// the SDXL stage's style questions for generate). A text request's
// outputs are cut to those tasks too, so that /caption returns a caption
// and nothing else whatever the JSON carried.
func (p *Pipeline) groundingRequest(req Request, img image.Image, info grounding.ImageInfo) grounding.Request {
	g := grounding.Request{Image: img, Width: req.Width, Height: req.Height, Args: req.Args, Tasks: req.Endpoint.tasks()}
	if img != nil {
		g.Width, g.Height = info.Width, info.Height // the image may be decoded smaller (fast mode)
	}
	if len(req.Outputs) > 0 {
		g.Outputs = core.Outputs{}
		for _, t := range g.Tasks {
			if text, ok := req.Outputs[t]; ok {
				g.Outputs[t] = text
			}
		}
	}
	if req.Endpoint == EndpointGenerate {
		g.Prefixes = p.composer.StylePrefixes(req.Args.Lang)
	}
	return g
}

// PipelineStats describes the grounders and the queue for the service stats.
type PipelineStats struct {
	QueueStats
	Grounder    string `json:"grounder"`
	ModelStatus string `json:"model_status"`
	Provider    string `json:"execution_provider"`
	ModelDir    string `json:"model_dir,omitempty"`
}

// Stats reports the queue and the grounder in use.
func (p *Pipeline) Stats() PipelineStats {
	s := PipelineStats{QueueStats: p.queue.stats(), Grounder: "text", ModelStatus: "no model configured (text grounder only)", Provider: "none"}
	if p.model == nil {
		return s
	}
	s.Grounder, s.ModelStatus = "model", "ready"
	if d, ok := p.model.(grounding.Describer); ok {
		info := d.Describe()
		s.Grounder, s.ModelStatus, s.Provider, s.ModelDir = info.Kind, info.Status, info.Provider, info.ModelDir
	}
	return s
}
