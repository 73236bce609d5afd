package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"paliprompt/core"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
)

// service is the micro service: one endpoint per task. Handlers admit a
// request into the queue at once (503 when full) and answer it from a
// goroutine, so one slow request never holds up the next one's refusal.
type service struct {
	cfg     Config
	version string
	nc      *nats.Conn
	pipe    *Pipeline
	objects *objectStores // nil without JetStream
	log     *slog.Logger
	svc     micro.Service
	// work is the context of in-flight requests; it ends when the grace
	// period after a shutdown is over.
	work     context.Context
	inflight sync.WaitGroup
	counts   map[Endpoint]*endpointCounts
	events   *eventCounts // nil without the event bus
	refused  *refusals
	busy     busyLog
}

// endpointCounts are an endpoint's own counters: micro's counters only see
// the handler, which returns before the reply is sent.
type endpointCounts struct {
	requests, errors atomic.Int64
	lastError        atomic.Value // string
}

// EndpointStats is the data of one endpoint in `nats micro stats`.
type EndpointStats struct {
	PipelineStats
	Requests  int64  `json:"requests"`
	Errors    int64  `json:"errors"`
	LastError string `json:"last_error,omitempty"`
	// Events is the event bus's part (absent when it is off): the same in
	// every endpoint, like the queue.
	Events *EventStats `json:"events,omitempty"`
	// PermissionsRefused are the permission violations the NATS server
	// reported on paliprompt's connection (distinct, the first 32), and
	// how many there were in all.
	PermissionsRefused      []string `json:"permissions_refused,omitempty"`
	PermissionsRefusedCount int64    `json:"permissions_refused_count"`
}

func startService(work context.Context, cfg Config, version string, nc *nats.Conn, pipe *Pipeline, objects *objectStores, events *eventCounts, refused *refusals, log *slog.Logger) (*service, error) {
	s := &service{cfg: cfg, version: version, nc: nc, pipe: pipe, objects: objects, log: log, work: work,
		counts: map[Endpoint]*endpointCounts{}, events: events, refused: refused}
	svc, err := micro.AddService(nc, micro.Config{
		Name:         cfg.Service.Name,
		Version:      version,
		Description:  cfg.Service.Description,
		QueueGroup:   cfg.Service.QueueGroup,
		Metadata:     map[string]string{"grounder": pipe.Stats().Grounder},
		StatsHandler: s.stats,
		ErrorHandler: func(_ micro.Service, err *micro.NATSError) {
			log.Error("micro service error", "subject", err.Subject, "err", err.Description)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("add micro service %s: %w", cfg.Service.Name, err)
	}
	group := svc.AddGroup(cfg.Service.SubjectPrefix)
	for _, ep := range Endpoints() {
		s.counts[ep] = &endpointCounts{}
		if err := group.AddEndpoint(string(ep), s.handler(ep), micro.WithEndpointMetadata(map[string]string{"task": string(ep)})); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("add endpoint %s.%s: %w", cfg.Service.SubjectPrefix, ep, err)
		}
	}
	s.svc = svc
	return s, nil
}

func (s *service) stats(e *micro.Endpoint) any {
	st := EndpointStats{PipelineStats: s.pipe.Stats(), Events: s.events.stats()}
	st.PermissionsRefused, st.PermissionsRefusedCount = s.refused.list()
	if c, ok := s.counts[Endpoint(e.Name)]; ok {
		st.Requests, st.Errors = c.requests.Load(), c.errors.Load()
		st.LastError, _ = c.lastError.Load().(string)
	}
	return st
}

// handler admits a request and answers it in its own goroutine.
func (s *service) handler(ep Endpoint) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		counts := s.counts[ep]
		counts.requests.Add(1)
		release, err := s.pipe.queue.tryAdmit()
		if err != nil {
			s.busy.note(s.log)
			s.answerError(r, counts, "", err)
			return
		}
		s.inflight.Add(1)
		go func() {
			defer s.inflight.Done()
			defer release()
			s.serve(ep, r, counts)
		}()
	})
}

func (s *service) serve(ep Endpoint, r micro.Request, counts *endpointCounts) {
	req, err := decodeRequest(ep, nats.Header(r.Headers()), r.Data(), limitsOf(s.cfg))
	if err != nil {
		s.replyError(r, counts, "", err)
		return
	}
	if req.ID == "" {
		req.ID = nuid.Next()
	}
	data, err := s.pipe.respond(s.work, req, s.objects, int(s.nc.MaxPayload()))
	if err != nil {
		s.replyError(r, counts, req.ID, err)
		return
	}
	header := nats.Header{"Content-Type": {"application/json"}, HeaderID: {req.ID}}
	s.send(r, &nats.Msg{Data: data, Header: header})
}

// replyError answers with the micro error headers: the code and a
// description that names the problem, and the same as a JSON body.
func (s *service) replyError(r micro.Request, counts *endpointCounts, id string, err error) {
	code, desc := core.Code(err), core.Describe(err)
	level := slog.LevelInfo
	if code >= 500 {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "request failed", "subject", r.Subject(), "id", id, "code", code, "err", desc)
	s.answerError(r, counts, id, err)
}

// answerError is replyError without the log line (refusals of a full
// queue are logged by busyLog instead).
func (s *service) answerError(r micro.Request, counts *endpointCounts, id string, err error) {
	code, desc := core.Code(err), core.Describe(err)
	counts.errors.Add(1)
	counts.lastError.Store(desc)
	body, _ := marshalJSON(newReplyError(id, nil, code, desc, 0))
	header := nats.Header{
		micro.ErrorHeader:     {desc},
		micro.ErrorCodeHeader: {strconv.Itoa(code)},
		"Content-Type":        {"application/json"},
	}
	s.send(r, &nats.Msg{Data: body, Header: header})
}

// busyLog logs refusals of a full queue as a count per interval: a flood
// of requests is thousands of refusals a second, and a line each would
// cost more than the refusal itself.
type busyLog struct {
	mu      sync.Mutex
	refused int64
	since   time.Time
}

// busyLogEvery is how often refusals are summed up in the log.
const busyLogEvery = 10 * time.Second

func (b *busyLog) note(log *slog.Logger) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if b.since.IsZero() {
		log.Warn("queue full: refusing requests with 503 (queue.size); refusals are counted here every 10s while they last")
		b.since = now
		return
	}
	b.refused++
	if now.Sub(b.since) >= busyLogEvery {
		log.Warn("queue full: requests refused with 503", "refused", b.refused, "in", now.Sub(b.since).Round(time.Second))
		b.refused, b.since = 0, now
	}
}

// send publishes a reply to the request's reply subject. Replies are sent
// on the connection rather than through micro.Request, which is not safe
// to use once its handler has returned (micro reads its state then).
func (s *service) send(r micro.Request, m *nats.Msg) {
	if r.Reply() == "" {
		s.log.Warn("request without a reply subject: nothing to answer", "subject", r.Subject())
		return
	}
	m.Subject = r.Reply()
	if err := s.nc.PublishMsg(m); err != nil {
		s.log.Error("send reply", "subject", r.Subject(), "err", err)
	}
}

// stop stops taking requests: the endpoints' subscriptions are drained, so
// requests already delivered are still answered.
func (s *service) stop() error {
	return s.svc.Stop()
}
