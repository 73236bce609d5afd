package plugin

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
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
	ctx, cancel, timeout := p.deadline(ctx, req)
	defer cancel()
	reply, err := p.process(ctx, req, images)
	return reply, deadlineProblem(err, timeout)
}

// deadline bounds a request by its timeout (queue.timeout by default).
func (p *Pipeline) deadline(ctx context.Context, req Request) (context.Context, context.CancelFunc, time.Duration) {
	timeout := time.Duration(p.cfg.Queue.Timeout)
	if req.Timeout > 0 {
		timeout = req.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return ctx, cancel, timeout
}

// deadlineProblem says which deadline an error ran into.
func deadlineProblem(err error, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("deadline of %s exceeded %w", timeout, err)
	}
	return err
}

// respond runs a request and encodes its reply, each PNG inline or in the
// results bucket (stores may be nil: no JetStream), all within the
// request's deadline. It is the one path of the micro service and the
// event bus.
func (p *Pipeline) respond(ctx context.Context, req Request, stores *objectStores, maxPayload int) ([]byte, error) {
	ctx, cancel, timeout := p.deadline(ctx, req)
	defer cancel()
	var images imageSource
	if stores != nil {
		images = stores
	}
	reply, err := p.Process(ctx, req, images)
	if err != nil {
		return nil, err
	}
	data, err := stores.place(ctx, reply, maxPayload)
	return data, deadlineProblem(err, timeout)
}

func (p *Pipeline) process(ctx context.Context, req Request, images imageSource) (*Reply, error) {
	start := time.Now()
	img, format, err := p.loadImage(ctx, req, images)
	if err != nil {
		return nil, err
	}
	grounder, err := p.grounderFor(req)
	if err != nil {
		return nil, err
	}
	decoded := time.Now()
	var res core.Result
	var grounded time.Time
	queued := time.Now()
	err = p.queue.run(ctx, func() error {
		queued = time.Now()
		res, err = grounder.Ground(ctx, p.groundingRequest(req, img))
		grounded = time.Now()
		if ctx.Err() != nil {
			return fmt.Errorf("while grounding: %w", ctx.Err())
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	reply, err := newReply(req.ID, req.Endpoint, format, res)
	if err != nil {
		return nil, err
	}
	reply.Reference = req.Reference
	reply.addTiming("decode", decoded.Sub(start))
	reply.addTiming("queue", queued.Sub(decoded))
	reply.addTiming("ground", grounded.Sub(queued))
	if req.Endpoint.plans() {
		if err := p.plan(reply, res, req, img); err != nil {
			return nil, err
		}
	}
	reply.addTiming("total", time.Since(start))
	return reply, nil
}

// plan runs the stages after grounding: the layout, the SDXL plan and the
// preview.
func (p *Pipeline) plan(reply *Reply, res core.Result, req Request, img image.Image) error {
	start := time.Now()
	layout, err := p.planner.Build(res, req.Place)
	if err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	laidOut := time.Now()
	sreq := req.SDXL
	sreq.ID, sreq.Lang = req.ID, req.Args.Lang
	plan, err := p.composer.Compose(layout, sreq)
	if err != nil {
		return fmt.Errorf("sdxl plan: %w", err)
	}
	planned := time.Now()
	preview, err := pngBlob(p.planner.Preview(img, layout, plan.Canvas()), png.DefaultCompression)
	if err != nil {
		return fmt.Errorf("encode preview: %w", err)
	}
	reply.Layout, reply.Preview = &layout, preview
	reply.setPlan(plan) // names the blobs
	reply.addTiming("layout", laidOut.Sub(start))
	reply.addTiming("sdxl", planned.Sub(laidOut))
	reply.addTiming("preview", time.Since(planned))
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
// layout requests have none.
func (p *Pipeline) loadImage(ctx context.Context, req Request, images imageSource) (image.Image, string, error) {
	if req.Endpoint == EndpointLayout {
		return nil, "", nil
	}
	data := req.Image
	if req.ImageObject != "" {
		if images == nil {
			return nil, "", core.Errorf(core.ErrUnavailable, "image_object needs the JetStream object store, which is not available here")
		}
		var err error
		if data, err = images.fetchImage(ctx, req.ImageObject, int64(p.cfg.Limits.MaxImageBytes)); err != nil {
			return nil, "", err
		}
	}
	img, format, err := grounding.DecodeImage(data, grounding.DecodeOptions{
		MaxPixels: p.cfg.MaxPixels(),
		ApplyEXIF: p.cfg.Model.ApplyEXIF,
	})
	if err != nil {
		return nil, "", fmt.Errorf("decode image: %w", err)
	}
	return img, format, nil
}

// groundingRequest asks the grounder for the tasks of the endpoint (with
// the SDXL stage's style questions for generate). A text request's
// outputs are cut to those tasks too, so that /caption returns a caption
// and nothing else whatever the JSON carried.
func (p *Pipeline) groundingRequest(req Request, img image.Image) grounding.Request {
	g := grounding.Request{Image: img, Width: req.Width, Height: req.Height, Args: req.Args, Tasks: req.Endpoint.tasks()}
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
