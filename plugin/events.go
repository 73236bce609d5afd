package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"paliprompt/core"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HeaderMsgID is JetStream's de-duplication header.
const HeaderMsgID = "Nats-Msg-Id"

// eventBus consumes references from the work-queue stream and publishes
// results. A reference is acked only after its result (or its failure
// event) is stored in the results stream; results carry a Nats-Msg-Id
// made of the id, the reference's stream sequence and its request digest
// (Reference.MsgID), so a reference worked on twice (a crash between
// publish and ack) still has exactly one result, and two references with
// the same id have one each.
type eventBus struct {
	cfg        Config
	js         jetstream.JetStream
	cons       jetstream.Consumer
	pipe       *Pipeline
	objects    *objectStores
	maxPayload int
	log        *slog.Logger
	slots      chan struct{} // events.concurrency
	inflight   sync.WaitGroup
	counts     *eventCounts
	// onPublished is Plugin.onPublished.
	onPublished func(id string)
}

// setupEventBus creates the streams and the durable consumer when absent.
func setupEventBus(ctx context.Context, js jetstream.JetStream, cfg Config, pipe *Pipeline, objects *objectStores, maxPayload int, counts *eventCounts, log *slog.Logger) (*eventBus, error) {
	ev := cfg.Events
	refs, err := ensureStream(ctx, js, log, jetstream.StreamConfig{
		Name:        ev.Stream,
		Description: "Reference images for paliprompt, and generated images to verify (work queue)",
		Subjects:    append(slices.Clone(ev.Subjects), ev.GeneratedSubjects...),
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, err
	}
	if _, err := ensureStream(ctx, js, log, jetstream.StreamConfig{
		Name:        ev.ResultsStream,
		Description: "paliprompt results and failures",
		Subjects:    resultSubjects(ev),
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      time.Duration(ev.ResultsMaxAge),
		Duplicates:  time.Duration(ev.DuplicateWindow),
		Storage:     jetstream.FileStorage,
	}); err != nil {
		return nil, err
	}
	cons, err := ensureConsumer(ctx, refs, ev, log)
	if err != nil {
		return nil, err
	}
	return &eventBus{
		cfg: cfg, js: js, cons: cons, pipe: pipe, objects: objects, maxPayload: maxPayload,
		log: log, slots: make(chan struct{}, ev.Concurrency), counts: counts,
	}, nil
}

// resultSubjects are the subjects of the results stream: results,
// failures and verify results.
func resultSubjects(ev EventsConfig) []string {
	out := []string{ev.ReadySubject + ".>", ev.FailedSubject + ".>"}
	if len(ev.GeneratedSubjects) > 0 {
		out = append(out, ev.VerifiedSubject+".>")
	}
	return out
}

// ensureStream opens a stream, creating it when absent. A stream that
// lacks some of the subjects (made by an earlier version, or by hand) is
// used as it is, with a warning that names them and how to add them:
// paliprompt's least-privilege user may not edit streams.
func ensureStream(ctx context.Context, js jetstream.JetStream, log *slog.Logger, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if s, err = js.CreateStream(ctx, cfg); err == nil {
			log.Info("created stream", "stream", cfg.Name, "subjects", cfg.Subjects)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", cfg.Name, err)
	}
	have := s.CachedInfo().Config.Subjects
	var missing []string
	for _, want := range cfg.Subjects {
		if !slices.Contains(have, want) {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		log.Warn("stream lacks subjects paliprompt works on: messages published there are not stored",
			"stream", cfg.Name, "missing", missing,
			"fix", fmt.Sprintf("nats stream edit %s --subjects %s", cfg.Name, strings.Join(append(slices.Clone(have), missing...), " --subjects ")))
	}
	return s, nil
}

func ensureConsumer(ctx context.Context, stream jetstream.Stream, ev EventsConfig, log *slog.Logger) (jetstream.Consumer, error) {
	c, err := stream.Consumer(ctx, ev.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err = stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:     ev.Consumer,
			Description: "paliprompt instances",
			AckPolicy:   jetstream.AckExplicitPolicy,
			AckWait:     time.Duration(ev.AckWait),
			MaxDeliver:  ev.MaxDeliver,
		})
		if err == nil {
			log.Info("created consumer", "stream", ev.Stream, "consumer", ev.Consumer)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open consumer %s on stream %s: %w", ev.Consumer, ev.Stream, err)
	}
	if got := c.CachedInfo().Config; got.AckWait != time.Duration(ev.AckWait) || got.MaxDeliver != ev.MaxDeliver {
		log.Warn("existing consumer differs from config.toml; it is used as it is",
			"consumer", ev.Consumer, "ack_wait", got.AckWait, "max_deliver", got.MaxDeliver)
	}
	return c, nil
}

// run takes references until fetch ends; their work runs under work,
// which outlives fetch by the shutdown grace period.
func (b *eventBus) run(fetch, work context.Context) {
	for {
		select {
		case b.slots <- struct{}{}:
		case <-fetch.Done():
			return
		}
		msg, err := b.next(fetch)
		if msg == nil {
			<-b.slots
			if fetch.Err() != nil {
				return
			}
			if err != nil {
				b.log.Warn("fetch references", "stream", b.cfg.Events.Stream, "err", err)
				sleep(fetch, time.Second)
			}
			continue
		}
		b.inflight.Add(1)
		go func() {
			defer b.inflight.Done()
			defer func() { <-b.slots }()
			b.handle(work, msg)
		}()
	}
}

// idlePoll is how long one fetch waits for a reference.
const idlePoll = 5 * time.Second

// next fetches one reference, or nil when none came within idlePoll.
func (b *eventBus) next(ctx context.Context) (jetstream.Msg, error) {
	fctx, cancel := context.WithTimeout(ctx, idlePoll)
	defer cancel()
	batch, err := b.cons.Fetch(1, jetstream.FetchContext(fctx))
	if err != nil {
		return nil, err
	}
	for msg := range batch.Messages() {
		return msg, nil
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	return nil, nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// delivery is one reference (or generated image) as the event bus works
// on it.
type delivery struct {
	msg        jetstream.Msg
	ep         Endpoint
	id         string
	ref        Reference
	deliveries uint64
}

// handle works on one reference and settles it: ack after the result is
// stored, nak with delay on a transient failure, term plus a failure event
// on a permanent one.
func (b *eventBus) handle(work context.Context, msg jetstream.Msg) {
	d := &delivery{msg: msg, ref: Reference{Stream: b.cfg.Events.Stream, Digest: RequestDigest(msg.Headers(), msg.Data())}}
	if meta, err := msg.Metadata(); err == nil {
		d.ref.Stream, d.ref.Sequence, d.deliveries = meta.Stream, meta.Sequence.Stream, meta.NumDelivered
	}
	stop := b.keepAlive(work, msg)
	defer stop()
	// A reference waits for a place in the queue like a request does, but
	// is never refused: it stays in progress until there is room.
	release, err := b.pipe.queue.admit(work)
	if err != nil {
		_ = msg.Nak()
		return
	}
	defer release()
	// A reference is an image request (generate), or PaliGemma text with an
	// image size (layout), as `paliprompt run` tells JSON files apart; a
	// generated image is a verify request, by default against the plan of
	// the reference with its id.
	d.ep = fileEndpoint("", msg.Data())
	if b.generated(msg.Subject()) {
		d.ep = EndpointVerify
	}
	req, err := decodeRequest(d.ep, msg.Headers(), msg.Data(), limitsOf(b.cfg))
	d.id = b.eventID(req.ID, msg, d.ref.Sequence)
	req.ID, req.Reference = d.id, &d.ref
	if d.ep == EndpointVerify && req.Plan == nil && req.PlanID == "" {
		req.PlanID = d.id
	}
	if err == nil {
		err = b.process(work, d, req)
	}
	if err == nil {
		if b.onPublished != nil {
			b.onPublished(d.id)
		}
		// DoubleAck waits for the server to confirm: the reference leaves
		// the work queue before the next one is taken (or the log says why
		// not; a lost ack means a redelivery, whose result is de-duplicated).
		ackCtx, cancel := context.WithTimeout(work, 5*time.Second)
		err := msg.DoubleAck(ackCtx)
		cancel()
		if err != nil {
			b.log.Warn("result stored, but the ack failed: the reference will be redelivered and its result not stored twice", "id", d.id, "sequence", d.ref.Sequence, "err", err)
			return
		}
		b.log.Info("event done", "task", d.ep, "id", d.id, "sequence", d.ref.Sequence, "subject", msg.Subject())
		return
	}
	b.fail(work, d, err)
}

// process runs the pipeline and publishes the result.
func (b *eventBus) process(work context.Context, d *delivery, req Request) error {
	data, err := b.pipe.respond(work, req, b.objects, b.maxPayload)
	if err != nil {
		return err
	}
	subject := b.cfg.Events.ReadySubject
	if d.ep == EndpointVerify {
		subject = b.cfg.Events.VerifiedSubject
	}
	if err := b.publish(work, d, subject, d.ref.MsgID(d.id), data); err != nil {
		return err
	}
	b.counts.results.Add(1)
	return nil
}

// publish stores an event of a reference in the results stream on
// <prefix>.<id>. The stream answers Duplicate when an event with the same
// Nats-Msg-Id is stored already (the reference was worked on before: a
// crash or a lost ack between publish and ack); that is logged and
// counted, never silent, and the stored event stands.
func (b *eventBus) publish(ctx context.Context, d *delivery, prefix, msgID string, data []byte) error {
	subject := prefix + "." + d.id
	m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	m.Header.Set(HeaderMsgID, msgID)
	m.Header.Set(HeaderID, d.id)
	m.Header.Set("Content-Type", "application/json")
	d.ref.header(m.Header)
	ack, err := b.js.PublishMsg(ctx, m)
	if err != nil {
		return core.Errorf(core.ErrUnavailable, "publish %s: %v", subject, err)
	}
	if ack.Duplicate {
		b.counts.duplicate(fmt.Sprintf("%s (reference %s #%d, delivery %d): stored already as #%d", msgID, d.ref.Stream, d.ref.Sequence, d.deliveries, ack.Sequence))
		// A redelivery is the expected case; a first delivery whose event
		// is stored already means the Nats-Msg-Id was reused (a references
		// stream re-created with the same request).
		level := slog.LevelInfo
		if d.deliveries <= 1 {
			level = slog.LevelWarn
		}
		b.log.Log(ctx, level, "event stored already (duplicate Nats-Msg-Id); the stored one stands",
			"id", d.id, "sequence", d.ref.Sequence, "delivery", d.deliveries, "subject", subject, "msg_id", msgID, "stored_as", ack.Sequence)
	}
	return nil
}

func (b *eventBus) fail(work context.Context, d *delivery, err error) {
	kind := core.KindOf(err)
	code, desc := kind.Code(), core.Describe(err)
	msg, id := d.msg, d.id
	if work.Err() != nil {
		// Shutting down past the grace period: leave it to redelivery.
		_ = msg.Nak()
		b.log.Info("reference left for redelivery (shutdown)", "id", id, "sequence", d.ref.Sequence)
		return
	}
	maxDeliver := b.cfg.Events.MaxDeliver
	if !kind.Permanent() && (maxDeliver == -1 || d.deliveries < uint64(maxDeliver)) {
		delay := time.Duration(b.cfg.Events.NakDelay)
		_ = msg.NakWithDelay(delay)
		b.log.Warn("reference failed; will retry", "id", id, "sequence", d.ref.Sequence, "code", code, "err", desc, "delivery", d.deliveries, "retry_in", delay)
		return
	}
	if !kind.Permanent() {
		desc = fmt.Sprintf("gave up after %d deliveries: %s", d.deliveries, desc)
	}
	re := newReplyError(id, &d.ref, code, desc, d.deliveries)
	re.Task = d.ep
	data, _ := marshalJSON(re)
	if perr := b.publish(work, d, b.cfg.Events.FailedSubject, d.ref.MsgID(id)+":failed", data); perr != nil {
		_ = msg.NakWithDelay(time.Duration(b.cfg.Events.NakDelay))
		b.log.Error("publish failure event; will retry", "id", id, "sequence", d.ref.Sequence, "err", perr)
		return
	}
	b.counts.failures.Add(1)
	_ = msg.TermWithReason(desc)
	b.log.Warn("event failed", "task", d.ep, "id", id, "sequence", d.ref.Sequence, "code", code, "err", desc)
}

// eventCounts count what the event bus stored, for the service stats.
type eventCounts struct {
	results, failures, duplicates atomic.Int64
	lastDuplicate                 atomic.Value // string
}

func (c *eventCounts) duplicate(what string) {
	c.duplicates.Add(1)
	c.lastDuplicate.Store(what)
}

// EventStats is the event bus part of the service stats (in every
// endpoint's data, like the queue).
type EventStats struct {
	// Results and Failures count result and failure events this instance
	// stored.
	Results  int64 `json:"results"`
	Failures int64 `json:"failures"`
	// Duplicates counts events the results stream did not store because
	// their Nats-Msg-Id was stored already (a redelivered reference whose
	// result was stored before the crash); LastDuplicate says which.
	Duplicates    int64  `json:"duplicates"`
	LastDuplicate string `json:"last_duplicate,omitempty"`
}

func (c *eventCounts) stats() *EventStats {
	if c == nil {
		return nil
	}
	last, _ := c.lastDuplicate.Load().(string)
	return &EventStats{Results: c.results.Load(), Failures: c.failures.Load(), Duplicates: c.duplicates.Load(), LastDuplicate: last}
}

// keepAlive tells the server the reference is in progress every third of
// the ack wait, so that long work is not redelivered to another instance.
func (b *eventBus) keepAlive(ctx context.Context, msg jetstream.Msg) (stop func()) {
	every := time.Duration(b.cfg.Events.AckWait) / 3
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					b.log.Debug("in progress", "err", err)
				}
			}
		}
	}()
	return func() { close(done) }
}

// eventID names a reference: its request id (JSON id or Paliprompt-Id),
// else the subject's token after the stream's wildcard
// (aiviz.reference.<id>, aiviz.generated.<id>), else its stream sequence. The id stays the
// same on every redelivery: it is part of the results' Nats-Msg-Id.
func (b *eventBus) eventID(reqID string, msg jetstream.Msg, seq uint64) string {
	if reqID != "" {
		return reqID
	}
	if h := strings.TrimSpace(msg.Headers().Get(HeaderID)); idRe.MatchString(h) {
		return h
	}
	for _, s := range append(slices.Clone(b.cfg.Events.Subjects), b.cfg.Events.GeneratedSubjects...) {
		prefix := strings.TrimRight(s, ">*")
		if prefix == s || strings.ContainsAny(prefix, "*>") || !strings.HasPrefix(msg.Subject(), prefix) {
			continue
		}
		tokens := strings.Split(msg.Subject()[len(prefix):], ".")
		if last := tokens[len(tokens)-1]; idRe.MatchString(last) {
			return last
		}
	}
	return fmt.Sprintf("%s-%d", strings.ToLower(b.cfg.Events.Stream), seq)
}

// generated reports whether a subject is one of generated images.
func (b *eventBus) generated(subject string) bool {
	return slices.ContainsFunc(b.cfg.Events.GeneratedSubjects, func(f string) bool { return server.SubjectMatchesFilter(subject, f) })
}
