package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"paliprompt/core"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"paliprompt/grounding"
)

// publishReference publishes one reference on the event bus.
func publishReference(t testing.TB, js jetstream.JetStream, subject string, header nats.Header, body []byte) {
	t.Helper()
	if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: subject, Header: header, Data: body}); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
}

// event is a message stored in the results stream.
type event struct {
	subject string
	msgID   string
	data    []byte
	header  nats.Header
}

// resultEvents reads every message of the results stream, in order.
func resultEvents(t testing.TB, js jetstream.JetStream) []event {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, "AIVIZ_PROMPTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []event
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get message %d: %v", seq, err)
		}
		out = append(out, event{subject: m.Subject, msgID: m.Header.Get(HeaderMsgID), data: m.Data, header: m.Header})
	}
	return out
}

func streamMsgs(t testing.TB, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func newJS(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestEventBusResultsAndFailures(t *testing.T) {
	srv := startServer(t, 0)
	startPlugin(t, testConfig(t, srv.ClientURL()), Deps{})
	nc := connectClient(t, srv.ClientURL())
	js := newJS(t, nc)

	// A good reference (id from the subject), a permanent failure (a text
	// file), and a JSON reference whose id is in the body.
	publishReference(t, js, "aiviz.reference.ref-1", jsonHeader, jsonBody(t, map[string]any{
		"image_b64": b64(scenePNG(t, 64, 48)), "detect": "<loc0000><loc0000><loc1023><loc1023> everything",
	}))
	publishReference(t, js, "aiviz.reference.ref-2", nil, []byte("not an image"))
	publishReference(t, js, "aiviz.reference.x", nats.Header{HeaderID: {"ref-3"}}, jsonBody(t, map[string]any{
		"image_b64": b64(scenePNG(t, 16, 16)), "caption": "small",
	}))

	// PaliGemma text with an image size is a layout reference.
	publishReference(t, js, "aiviz.reference.ref-4", nil, []byte(`{"width": 50, "height": 40, "caption": "text only"}`))

	waitFor(t, "4 events", func() bool { return streamMsgs(t, js, "AIVIZ_PROMPTS") == 4 })
	waitFor(t, "the work queue to empty", func() bool { return streamMsgs(t, js, "AIVIZ_REFERENCES") == 0 })
	got := map[string]event{}
	for _, e := range resultEvents(t, js) {
		got[e.subject] = e
	}
	ready := got["aiviz.prompt.ready.ref-1"]
	var r Reply
	if err := json.Unmarshal(ready.data, &r); err != nil || r.ID != "ref-1" || len(r.Objects) != 1 || r.Image.Width != 64 {
		t.Errorf("ready ref-1: %s (%v)", ready.data, err)
	}
	if r.Reference == nil || ready.msgID != r.Reference.MsgID("ref-1") || !strings.HasPrefix(ready.msgID, "ref-1:1:") {
		t.Errorf("Nats-Msg-Id = %q, reference %+v", ready.msgID, r.Reference)
	}
	failed := got["aiviz.prompt.failed.ref-2"]
	var f ReplyError
	if err := json.Unmarshal(failed.data, &f); err != nil || f.ID != "ref-2" || f.Error.Code != 415 || !strings.Contains(f.Error.Description, "not an image") {
		t.Errorf("failed ref-2: %s (%v)", failed.data, err)
	}
	if f.Reference == nil || failed.msgID != f.Reference.MsgID("ref-2")+":failed" {
		t.Errorf("failure event ref-2: Nats-Msg-Id %q, reference %+v", failed.msgID, f.Reference)
	}
	if e, ok := got["aiviz.prompt.ready.ref-3"]; !ok || !strings.Contains(string(e.data), `"caption":"small"`) {
		t.Errorf("ready ref-3 missing or wrong: %+v", got)
	}
	if e, ok := got["aiviz.prompt.ready.ref-4"]; !ok || !strings.Contains(string(e.data), `"task":"layout"`) {
		t.Errorf("ready ref-4 missing or wrong: %+v", got)
	}
}

// flaky fails with ErrUnavailable on its first n calls, then grounds.
type flaky struct {
	n, calls atomic.Int64
}

func (f *flaky) Ground(ctx context.Context, req grounding.Request) (core.Result, error) {
	if f.calls.Add(1) <= f.n.Load() {
		return core.Result{}, core.Errorf(core.ErrUnavailable, "GPU is busy (test)")
	}
	b := req.Image.Bounds()
	return core.Result{Width: b.Dx(), Height: b.Dy(), Caption: "after retries"}, nil
}

func TestEventBusTransientFailures(t *testing.T) {
	srv := startServer(t, 0)
	nc := connectClient(t, srv.ClientURL())
	js := newJS(t, nc)

	// Fails twice, then works: nak'ed with delay, then one result.
	cfg := testConfig(t, srv.ClientURL())
	cfg.Events.MaxDeliver = 3
	f := &flaky{}
	f.n.Store(2)
	deps := Deps{}
	withModel(&cfg, &deps, f)
	r := startPlugin(t, cfg, deps)
	publishReference(t, js, "aiviz.reference.retry", nil, scenePNG(t, 8, 8))
	waitFor(t, "a result", func() bool { return streamMsgs(t, js, "AIVIZ_PROMPTS") == 1 })
	if ev := resultEvents(t, js); ev[0].subject != "aiviz.prompt.ready.retry" || f.calls.Load() != 3 {
		t.Errorf("event %s after %d calls", ev[0].subject, f.calls.Load())
	}

	// Fails more often than max_deliver: given up with a failure event.
	f.calls.Store(0)
	f.n.Store(100)
	publishReference(t, js, "aiviz.reference.hopeless", nil, scenePNG(t, 8, 8))
	waitFor(t, "a failure event", func() bool { return streamMsgs(t, js, "AIVIZ_PROMPTS") == 2 })
	ev := resultEvents(t, js)[1]
	var fe ReplyError
	if err := json.Unmarshal(ev.data, &fe); err != nil || ev.subject != "aiviz.prompt.failed.hopeless" ||
		fe.Error.Code != 503 || fe.Deliveries != 3 || !strings.Contains(fe.Error.Description, "gave up after 3 deliveries: GPU is busy") {
		t.Errorf("failure event %s: %s (%v)", ev.subject, ev.data, err)
	}
	r.stop(t)
}

// counting wraps a grounder and counts calls.
type counting struct {
	grounding.Grounder
	calls atomic.Int64
}

func (c *counting) Ground(ctx context.Context, req grounding.Request) (core.Result, error) {
	c.calls.Add(1)
	return c.Grounder.Ground(ctx, req)
}

// TestEventBusDurability publishes 200 references, stops the plugin
// abruptly mid-way (its connection cut between publishing a result and
// acking it, with other references in flight), restarts it, and checks
// that every reference has exactly one result event and none is lost.
func TestEventBusDurability(t *testing.T) {
	const n = 200
	srv := startServer(t, 0)
	nc := connectClient(t, srv.ClientURL())
	js := newJS(t, nc)
	cfg := testConfig(t, srv.ClientURL())
	fastStages(&cfg)
	cfg.Events.Concurrency = 4
	model := &counting{Grounder: grounding.NewTextGrounder(grounding.TextConfig{})}
	deps := Deps{}
	withModel(&cfg, &deps, model)

	var first *running
	var killOnce sync.Once
	killed := make(chan struct{})
	first = startPlugin(t, cfg, deps, func(p *Plugin) {
		p.onPublished = func(id string) {
			if id == "ref-080" {
				killOnce.Do(func() { first.kill(); close(killed) })
			}
		}
	})

	img := scenePNG(t, 32, 32)
	for i := range n {
		id := fmt.Sprintf("ref-%03d", i)
		publishReference(t, js, "aiviz.reference."+id, nil, img)
	}
	select {
	case <-killed:
	case <-time.After(30 * time.Second):
		t.Fatal("the first plugin never reached ref-080")
	}
	first.stop(t)
	before := streamMsgs(t, js, "AIVIZ_PROMPTS")
	t.Logf("killed after %d results, %d grounder calls", before, model.calls.Load())
	if before >= n {
		t.Fatalf("the first plugin finished everything (%d) before it was killed", before)
	}

	startPlugin(t, cfg, deps)
	waitFor(t, "the work queue to empty", func() bool { return streamMsgs(t, js, "AIVIZ_REFERENCES") == 0 })
	events := resultEvents(t, js)
	seen := map[string]int{}
	for _, e := range events {
		if !strings.HasPrefix(e.subject, "aiviz.prompt.ready.") {
			t.Errorf("unexpected event %s: %s", e.subject, e.data)
		}
		seen[strings.TrimPrefix(e.subject, "aiviz.prompt.ready.")]++
	}
	for i := range n {
		id := fmt.Sprintf("ref-%03d", i)
		if seen[id] != 1 {
			t.Errorf("%s has %d result events, want 1", id, seen[id])
		}
	}
	if len(events) != n {
		t.Errorf("%d result events, want %d", len(events), n)
	}
	// ref-080 was published and not acked before the kill: it was worked
	// on twice and de-duplicated.
	if calls := model.calls.Load(); calls <= n {
		t.Errorf("%d grounder calls: the kill should have left at least one reference to redo", calls)
	} else {
		t.Logf("%d grounder calls for %d references", calls, n)
	}
}

// TestEventBusShutdown: a reference in progress when SIGTERM comes is
// finished and acked within the grace period; one still running when the
// grace period ends is left to redelivery and done by the next instance.
func TestEventBusShutdown(t *testing.T) {
	srv := startServer(t, 0)
	nc := connectClient(t, srv.ClientURL())
	js := newJS(t, nc)
	cfg := testConfig(t, srv.ClientURL())
	fastStages(&cfg)
	cfg.Queue.ShutdownGrace = Duration(300 * time.Millisecond)

	// Finished within the grace period.
	g := newGate()
	deps := Deps{}
	withModel(&cfg, &deps, g)
	r := startPlugin(t, cfg, deps)
	publishReference(t, js, "aiviz.reference.finish-me", nil, scenePNG(t, 8, 8))
	<-g.started
	stopped := make(chan struct{})
	go func() { r.stop(t); close(stopped) }()
	time.Sleep(100 * time.Millisecond)
	close(g.release)
	<-stopped
	if n := streamMsgs(t, js, "AIVIZ_PROMPTS"); n != 1 {
		t.Fatalf("%d results after a graceful stop, want 1", n)
	}
	if n := streamMsgs(t, js, "AIVIZ_REFERENCES"); n != 0 {
		t.Fatalf("%d references left, want 0 (acked)", n)
	}

	// Still running when the grace period ends: nak'ed, redone later.
	g2 := newGate()
	deps2 := Deps{}
	withModel(&cfg, &deps2, g2)
	r = startPlugin(t, cfg, deps2)
	publishReference(t, js, "aiviz.reference.cut-off", nil, scenePNG(t, 8, 8))
	<-g2.started
	start := time.Now()
	r.stop(t)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("stop took %s with a 300ms grace period", took)
	}
	if n := streamMsgs(t, js, "AIVIZ_REFERENCES"); n != 1 {
		t.Fatalf("%d references left after the cut, want 1", n)
	}
	startPlugin(t, cfg, Deps{NewModel: deps.NewModel}) // g: releases at once now
	waitFor(t, "the cut-off reference to be redone", func() bool { return streamMsgs(t, js, "AIVIZ_PROMPTS") == 2 })
	if ev := resultEvents(t, js); ev[1].subject != "aiviz.prompt.ready.cut-off" {
		t.Errorf("second event %s", ev[1].subject)
	}
}

// TestEventBusInProgress: work longer than the ack wait is not redelivered
// meanwhile: the plugin tells the server it is in progress.
func TestEventBusInProgress(t *testing.T) {
	srv := startServer(t, 0)
	nc := connectClient(t, srv.ClientURL())
	js := newJS(t, nc)
	cfg := testConfig(t, srv.ClientURL()) // ack_wait 1s
	fastStages(&cfg)
	cfg.Events.Concurrency = 2 // a redelivery would be taken at once
	cfg.Queue.Size = 4
	g := newGate()
	deps := Deps{}
	withModel(&cfg, &deps, g)
	startPlugin(t, cfg, deps)
	publishReference(t, js, "aiviz.reference.slow", nil, scenePNG(t, 8, 8))
	<-g.started
	time.Sleep(2500 * time.Millisecond) // 2.5 ack waits
	close(g.release)
	waitFor(t, "the result", func() bool { return streamMsgs(t, js, "AIVIZ_PROMPTS") == 1 })
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.calls != 1 {
		t.Errorf("grounded %d times: the reference was redelivered while in progress", g.calls)
	}
}
