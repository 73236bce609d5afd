// Package plugin is paliprompt's NATS side: configuration, the embedded
// NATS server, the micro service `paliprompt`, the JetStream event bus,
// the request and reply schema, limits and scheduling.
//
// Every request, whatever its way in (micro endpoint, event bus, `paliprompt
// run`), goes through one Pipeline: decode the request, load and decode the
// image, ground it through the one bounded queue in front of the grounder,
// and build the reply. The plugin holds no model math and no prompt logic:
// it calls a grounding.Grounder whose constructor it is given (Deps), so
// tests run it with the text grounder.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"

	"paliprompt/core"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"paliprompt/grounding"
	"paliprompt/sdxl"
)

// Deps are what the plugin is given rather than builds itself.
type Deps struct {
	// NewModel builds the model grounder from the [model] table; it is
	// called only when model.dir is set.
	NewModel func(cfg grounding.ModelConfig) (grounding.Grounder, error)
	// CheckModel checks the model folder, ONNX Runtime (library and
	// version), the execution provider, the tokenizer and the mask decoder
	// for `paliprompt check`: a report of one line per piece, and an error
	// when any piece is unusable.
	CheckModel func(cfg grounding.ModelConfig) (string, error)
	// LoadMasks loads the segmentation mask decoder (vae-oid.npz) that
	// the text grounder uses; nil: segment text is answered with 503.
	LoadMasks func(path string) (grounding.MaskDecoder, error)
	// LoadTokenCounter loads the CLIP tokenizer named by sdxl.tokenizer
	// (a Hugging Face tokenizer.json) to count prompt tokens; nil, or no
	// sdxl.tokenizer: sdxl's estimate. What it returns is closed by Close
	// when it has a Close method.
	LoadTokenCounter func(path string) (sdxl.TokenCounter, error)
	// Version is the service version (semver), shown by nats micro info.
	Version string
	// Log receives the plugin's logs; nil: slog.Default().
	Log *slog.Logger
	// Out receives the lines meant for the person at the terminal (the
	// NATS URL to use with the nats CLI); nil: discarded.
	Out io.Writer
}

// Plugin is one paliprompt instance.
type Plugin struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	pipe *Pipeline

	ready chan struct{}
	mu    sync.Mutex
	url   string
	nc    *nats.Conn
	// cancelWork ends in-flight work at once (the end of the grace
	// period, or an abrupt stop).
	cancelWork context.CancelFunc
	// closers are closed by Close: the model grounder, the token counter.
	closers []any
	// onPublished, when set, is called after a result event is stored and
	// before the reference is acked: tests stop the plugin there.
	onPublished func(id string)
	// refused are the permissions the server refused on the connection.
	refused *refusals
}

// New builds a plugin: the grounders and the pipeline. It connects to
// nothing; Serve does.
func New(cfg Config, deps Deps) (*Plugin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.Out == nil {
		deps.Out = io.Discard
	}
	if deps.Version == "" {
		deps.Version = "0.0.0-dev"
	}
	var counter sdxl.TokenCounter
	if cfg.SDXL.Tokenizer != "" {
		if deps.LoadTokenCounter == nil {
			return nil, core.Errorf(core.ErrUnavailable, "sdxl.tokenizer is %s, but this build cannot read tokenizers", cfg.SDXL.Tokenizer)
		}
		c, err := deps.LoadTokenCounter(cfg.SDXL.Tokenizer)
		if err != nil {
			return nil, fmt.Errorf("sdxl.tokenizer %s: %w", cfg.SDXL.Tokenizer, err)
		}
		counter = c
	}
	model, text, err := buildGrounders(cfg, deps)
	if err != nil {
		closeAll(counter)
		return nil, err
	}
	pipe, err := newPipeline(cfg, model, text, counter, deps.Log)
	if err != nil {
		closeAll(counter, model)
		return nil, err
	}
	return &Plugin{
		cfg: cfg, deps: deps, log: deps.Log, pipe: pipe,
		ready:   make(chan struct{}),
		closers: []any{model, counter},
		refused: &refusals{},
	}, nil
}

// Close releases the model and the tokenizer. Call it after Serve or
// RunFiles returned.
func (p *Plugin) Close() error {
	return closeAll(p.closers...)
}

// closeAll closes every value that has a Close method.
func closeAll(things ...any) error {
	var errs []error
	for _, t := range things {
		if c, ok := t.(io.Closer); ok && !isNil(c) {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// isNil reports whether an interface holds a nil pointer.
func isNil(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// buildGrounders makes the model grounder (when model.dir is set) and the
// text grounder (always).
func buildGrounders(cfg Config, deps Deps) (model, text grounding.Grounder, err error) {
	if cfg.Model.Dir != "" {
		if deps.NewModel == nil {
			return nil, nil, core.Errorf(core.ErrUnavailable, "model.dir is %s, but this build has no model grounder", cfg.Model.Dir)
		}
		if model, err = deps.NewModel(cfg.Model); err != nil {
			return nil, nil, fmt.Errorf("load model %s: %w", cfg.Model.Dir, err)
		}
	}
	textCfg := grounding.TextConfig{MaskDecoderPath: cfg.Model.MaskDecoderPath()}
	if textCfg.MaskDecoderPath != "" && deps.LoadMasks != nil {
		_, statErr := os.Stat(textCfg.MaskDecoderPath)
		switch {
		case statErr == nil:
			if textCfg.Masks, err = deps.LoadMasks(textCfg.MaskDecoderPath); err != nil {
				return nil, nil, fmt.Errorf("load mask decoder %s: %w", textCfg.MaskDecoderPath, err)
			}
		case cfg.Model.MaskDecoder != "":
			return nil, nil, core.Errorf(core.ErrUnavailable, "model.mask_decoder %s: %v", cfg.Model.MaskDecoder, statErr)
		}
	}
	return model, grounding.NewTextGrounder(textCfg), nil
}

// Pipeline returns the plugin's pipeline (for `paliprompt run`).
func (p *Plugin) Pipeline() *Pipeline { return p.pipe }

// Ready is closed once Serve is connected and taking requests.
func (p *Plugin) Ready() <-chan struct{} { return p.ready }

// URL is the NATS URL in use, once Ready.
func (p *Plugin) URL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.url
}

// Serve runs the plugin until ctx ends: it starts the embedded NATS server
// (when nats.url is empty) or connects to the configured one, then serves
// the micro service and the event bus. When ctx ends it stops taking work,
// lets in-flight work finish within queue.shutdown_grace and leaves the
// rest to redelivery.
func (p *Plugin) Serve(ctx context.Context) error {
	url, natsCfg := p.cfg.NATS.URL, p.cfg.NATS
	var extra []nats.Option
	if url == "" {
		emb, err := startEmbedded(p.cfg, p.log)
		if err != nil {
			return err
		}
		defer func() {
			emb.srv.Shutdown()
			emb.srv.WaitForShutdown()
		}()
		url = emb.clientURL(p.cfg.NATS.Embedded)
		p.announce(url)
		// paliprompt's own connection is in-process (no TLS needed), with
		// its own nkey: the [nats] credentials are for an external server.
		natsCfg = natsCfg.withoutCredentials()
		extra = emb.connect
	}
	nc, err := connect(ctx, connectURL(url), natsCfg, p.log, p.refused, extra...)
	if err != nil {
		return err
	}
	defer nc.Close()

	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	p.mu.Lock()
	p.url, p.nc, p.cancelWork = url, nc, cancelWork
	p.mu.Unlock()

	svc, bus, err := p.startChecked(ctx, work, nc)
	if err != nil {
		return err
	}
	close(p.ready)
	p.log.Info("paliprompt ready", "nats", redact(url), "service", p.cfg.Service.Name, "version", p.deps.Version,
		"endpoints", fmt.Sprintf("%s.{%s}", p.cfg.Service.SubjectPrefix, joinEndpoints()),
		"events", p.cfg.Events.Enabled, "grounder", p.pipe.Stats().Grounder)

	fetch, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	var busDone sync.WaitGroup
	if bus != nil {
		busDone.Go(func() { bus.run(fetch, work) })
	}
	<-ctx.Done()
	p.shutdown(svc, bus, &busDone, cancelWork, nc)
	return nil
}

func joinEndpoints() string {
	var names []string
	for _, ep := range Endpoints() {
		names = append(names, string(ep))
	}
	return strings.Join(names, ",")
}

// announce prints the URL to use with the nats CLI.
func (p *Plugin) announce(url string) {
	e := p.cfg.NATS.Embedded
	fmt.Fprintf(p.deps.Out, "embedded NATS server with JetStream at %s (store: %s)\n", url, p.cfg.StoreDir())
	login := ""
	switch {
	case len(e.Users) > 0:
		login = " --user NAME --password PASSWORD"
	case e.Token != "":
		login = " --token TOKEN"
	case len(e.Nkeys) > 0:
		login = " --nkey SEED-FILE"
	}
	if e.TLSCA != "" {
		login += " --tlscert CERT --tlskey KEY"
	}
	if e.TLSCert != "" {
		login += " --tlsca CA"
	}
	fmt.Fprintf(p.deps.Out, "nats CLI: nats --server %s%s micro info %s\n", url, login, p.cfg.Service.Name)
}

// startChecked starts the service and the event bus, stopping at the
// first permission the server refuses (a JetStream request would only
// time out) and after the subscriptions are confirmed: a refused
// subscription is reported before the PONG that ends the flush.
func (p *Plugin) startChecked(ctx, work context.Context, nc *nats.Conn) (*service, *eventBus, error) {
	startCtx, refuse := context.WithCancelCause(ctx)
	defer refuse(nil)
	stop := p.refused.watch(func(err error) { refuse(refusedError(err)) })
	defer stop()
	svc, bus, err := p.start(startCtx, work, nc)
	if err == nil {
		// Ready means the endpoints' subscriptions are live on the server.
		if err = nc.FlushTimeout(10 * time.Second); err != nil {
			err = fmt.Errorf("flush subscriptions: %w", err)
		} else if last := nc.LastError(); errors.Is(last, nats.ErrPermissionViolation) {
			err = refusedError(last)
		}
	}
	// A refusal fails the start even when the request it hit did not
	// (a refused subscription, a clean-up request).
	if cause := context.Cause(startCtx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	if err != nil && svc != nil {
		_ = svc.stop()
	}
	return svc, bus, err
}

// start opens the object store, the micro service and the event bus.
func (p *Plugin) start(ctx, work context.Context, nc *nats.Conn) (*service, *eventBus, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, fmt.Errorf("JetStream: %w", err)
	}
	objects, err := openObjectStores(ctx, js, p.cfg.Objects, nc.MaxPayload())
	if err != nil {
		if p.cfg.Events.Enabled {
			return nil, nil, fmt.Errorf("%w (the event bus needs JetStream: enable it on the server, or set events.enabled = false)", err)
		}
		p.log.Warn("no object store: image_object requests will fail and large masks cannot be stored", "err", err)
		objects = nil
	}
	var events *eventCounts // shown in the service stats when the bus runs
	if p.cfg.Events.Enabled {
		events = &eventCounts{}
	}
	svc, err := startService(work, p.cfg, p.deps.Version, nc, p.pipe, objects, events, p.refused, p.log)
	if err != nil {
		return nil, nil, err
	}
	if !p.cfg.Events.Enabled {
		return svc, nil, nil
	}
	bus, err := setupEventBus(ctx, js, p.cfg, p.pipe, objects, int(nc.MaxPayload()), events, p.log)
	if err != nil {
		_ = svc.stop()
		return nil, nil, err
	}
	bus.onPublished = p.onPublished
	return svc, bus, nil
}

// shutdown stops taking work, waits for in-flight work up to the grace
// period, then cuts it off (those references are nak'ed for redelivery).
func (p *Plugin) shutdown(svc *service, bus *eventBus, busDone *sync.WaitGroup, cancelWork context.CancelFunc, nc *nats.Conn) {
	p.log.Info("shutting down: no new work; finishing in-flight work", "grace", p.cfg.Queue.ShutdownGrace)
	if err := svc.stop(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		p.log.Warn("stop micro service", "err", err)
	}
	busDone.Wait()
	done := make(chan struct{})
	go func() {
		svc.inflight.Wait()
		if bus != nil {
			bus.inflight.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Duration(p.cfg.Queue.ShutdownGrace)):
		p.log.Warn("grace period over: cutting in-flight work off; it will be redelivered")
		cancelWork()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			p.log.Error("in-flight work did not stop within 5s of being cancelled")
		}
	}
	if nc.IsConnected() {
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			p.log.Warn("flush NATS connection", "err", err)
		}
	}
	p.log.Info("stopped")
}
