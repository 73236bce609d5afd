package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"paliprompt/core"
	"paliprompt/grounding"
)

// storedResult is an event of the results stream with its reply decoded
// (ready events only).
type storedResult struct {
	event
	reply Reply
}

// storedResults reads every event of the results stream, in order.
func storedResults(t testing.TB, js jetstream.JetStream) []storedResult {
	t.Helper()
	var out []storedResult
	for _, e := range resultEvents(t, js) {
		r := storedResult{event: e}
		if strings.HasPrefix(e.subject, "aiviz.prompt.ready.") {
			if err := json.Unmarshal(e.data, &r.reply); err != nil {
				t.Fatalf("result %s: %v", e.subject, err)
			}
		}
		out = append(out, r)
	}
	return out
}

// publishRef publishes a reference and returns its stream sequence.
func publishRef(t testing.TB, js jetstream.JetStream, msg *nats.Msg) *jetstream.PubAck {
	t.Helper()
	ack, err := js.PublishMsg(context.Background(), msg)
	if err != nil {
		t.Fatalf("publish %s: %v", msg.Subject, err)
	}
	return ack
}

// checkIdentifies: a result names the reference it answers, in its JSON
// and in its headers, with the digest of what was published.
func checkIdentifies(t *testing.T, r storedResult, seq uint64, published *nats.Msg) {
	t.Helper()
	want := Reference{Stream: "AIVIZ_REFERENCES", Sequence: seq, Digest: RequestDigest(published.Header, published.Data)}
	if r.reply.Reference == nil || *r.reply.Reference != want {
		t.Errorf("result %s: JSON reference %+v, want %+v", r.subject, r.reply.Reference, want)
	}
	if got := r.header.Get(HeaderRefSeq); got != strconv.FormatUint(seq, 10) {
		t.Errorf("result %s: %s %q, want %d", r.subject, HeaderRefSeq, got, seq)
	}
	if got := r.header.Get(HeaderDigest); got != want.Digest {
		t.Errorf("result %s: %s %q, want %q", r.subject, HeaderDigest, got, want.Digest)
	}
	if got := r.header.Get(HeaderRefStream); got != want.Stream {
		t.Errorf("result %s: %s %q", r.subject, HeaderRefStream, got)
	}
	if got := r.msgID; got != want.MsgID(r.reply.ID) {
		t.Errorf("result %s: Nats-Msg-Id %q, want %q", r.subject, got, want.MsgID(r.reply.ID))
	}
}

// TestEventBusSameIDTwice: an app re-requests a layout under the same id
// with another request (a cat, then a dog placed top-left): both results
// are stored, each with its own reference sequence, digest and PNGs.
func TestEventBusSameIDTwice(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	fastStages(&cfg)
	cfg.Objects.InlineMaskBytes = 0 // every PNG into the results bucket
	startPlugin(t, cfg, Deps{})
	js := newJS(t, connectClient(t, srv.ClientURL()))

	img := b64(scenePNG(t, 64, 48))
	cat := &nats.Msg{Subject: "aiviz.reference.same1", Header: nats.Header{"Content-Type": {"application/json"}}, Data: jsonBody(t, map[string]any{
		"image_b64": img, "caption": "a cat", "detect": "<loc0100><loc0100><loc0900><loc0900> cat",
	})}
	dog := &nats.Msg{Subject: "aiviz.reference.same1", Header: nats.Header{"Content-Type": {"application/json"}}, Data: jsonBody(t, map[string]any{
		"image_b64": img, "caption": "a dog", "detect": "<loc0500><loc0500><loc1000><loc1000> dog", "place": map[string]any{"dog": "top-left"},
	})}
	catSeq := publishRef(t, js, cat).Sequence
	waitFor(t, "the first result", func() bool { return streamMsgs(t, js, "AIVIZ_PROMPTS") == 1 })
	dogSeq := publishRef(t, js, dog).Sequence
	waitFor(t, "the second result", func() bool { return streamMsgs(t, js, "AIVIZ_PROMPTS") == 2 })
	waitFor(t, "the work queue to empty", func() bool { return streamMsgs(t, js, "AIVIZ_REFERENCES") == 0 })

	results := storedResults(t, js)
	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}
	for i, want := range []struct {
		seq     uint64
		msg     *nats.Msg
		label   string
		caption string
	}{{catSeq, cat, "cat", "a cat"}, {dogSeq, dog, "dog", "a dog"}} {
		r := results[i]
		if r.subject != "aiviz.prompt.ready.same1" || r.reply.ID != "same1" || r.reply.Caption != want.caption ||
			len(r.reply.Objects) != 1 || r.reply.Objects[0].Label != want.label {
			t.Errorf("result %d: %s %s", i, r.subject, shorten(string(r.data), 300))
		}
		checkIdentifies(t, r, want.seq, want.msg)
	}
	if results[0].msgID == results[1].msgID {
		t.Errorf("both results have Nats-Msg-Id %q", results[0].msgID)
	}
	if q := results[1].reply.Layout.Objects[0].Quadrant; q != "top-left" {
		t.Errorf("the dog was placed in %q, want top-left", q)
	}

	// Each result's PNGs are its own: the second did not overwrite the first.
	store, err := js.ObjectStore(context.Background(), cfg.Objects.ResultsBucket)
	if err != nil {
		t.Fatal(err)
	}
	previews := map[string]bool{}
	for _, r := range results {
		p := r.reply.Preview
		if p == nil || p.Object != "same1/"+strconv.FormatUint(r.reply.Reference.Sequence, 10)+"/preview.png" {
			t.Fatalf("preview of #%d: %+v", r.reply.Reference.Sequence, p)
		}
		data, err := store.GetBytes(context.Background(), p.Object)
		if err != nil || len(data) != p.Bytes {
			t.Errorf("object %s: %d bytes, want %d (%v)", p.Object, len(data), p.Bytes, err)
		}
		previews[string(data)] = true
	}
	if len(previews) != 2 {
		t.Error("the two results' previews are the same bytes")
	}
	if st := serviceStats(t, connectClient(t, srv.ClientURL()))["generate"].Events; st == nil || st.Results != 2 || st.Duplicates != 0 {
		t.Errorf("event stats %+v, want 2 results and no duplicates", st)
	}
}

// TestEventBusRedeliveryOneResult: a reference redelivered after a crash
// has one result, whether the crash came mid-work (nothing published) or
// between publishing the result and acking the reference (the second
// publish is a duplicate, logged and counted in the service stats).
func TestEventBusRedeliveryOneResult(t *testing.T) {
	for _, tt := range []struct {
		name       string
		duplicates int64
	}{{"crash while grounding", 0}, {"crash between publish and ack", 1}} {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, 0)
			nc := connectClient(t, srv.ClientURL())
			js := newJS(t, nc)
			cfg := testConfig(t, srv.ClientURL())
			fastStages(&cfg)

			g := newGate()
			deps := Deps{}
			withModel(&cfg, &deps, g)
			var first *running
			var once sync.Once
			crashed := make(chan struct{})
			crash := func() { once.Do(func() { first.kill(); close(crashed) }) }
			first = startPlugin(t, cfg, deps, func(p *Plugin) {
				if tt.duplicates > 0 {
					p.onPublished = func(string) { crash() }
				}
			})
			ref := &nats.Msg{Subject: "aiviz.reference.crash1", Data: scenePNG(t, 16, 16)}
			seq := publishRef(t, js, ref).Sequence
			<-g.started
			if tt.duplicates == 0 {
				crash()
			} else {
				close(g.release)
			}
			<-crashed
			first.stop(t)
			if n := streamMsgs(t, js, "AIVIZ_PROMPTS"); n != uint64(tt.duplicates) {
				t.Fatalf("%d results before the restart, want %d", n, tt.duplicates)
			}

			second := grounding.NewTextGrounder(grounding.TextConfig{})
			deps2 := Deps{}
			withModel(&cfg, &deps2, constCaption{second, "after the crash"})
			startPlugin(t, cfg, deps2)
			waitFor(t, "the redelivered reference to be acked", func() bool { return streamMsgs(t, js, "AIVIZ_REFERENCES") == 0 })
			results := storedResults(t, js)
			if len(results) != 1 {
				t.Fatalf("%d results, want 1", len(results))
			}
			checkIdentifies(t, results[0], seq, ref)
			st := serviceStats(t, nc)["generate"].Events
			if st == nil || st.Duplicates != tt.duplicates {
				t.Fatalf("event stats %+v, want %d duplicates", st, tt.duplicates)
			}
			if tt.duplicates > 0 && !strings.Contains(st.LastDuplicate, results[0].msgID) {
				t.Errorf("last_duplicate %q does not name %s", st.LastDuplicate, results[0].msgID)
			}
		})
	}
}

// constCaption grounds with a fixed caption.
type constCaption struct {
	grounding.Grounder
	caption string
}

func (c constCaption) Ground(ctx context.Context, req grounding.Request) (core.Result, error) {
	b := req.Image.Bounds()
	return core.Result{Width: b.Dx(), Height: b.Dy(), Caption: c.caption}, nil
}

// TestEventBusSameBodyTwice: an app that publishes the same request twice
// (a retried publish) gets two references and so two results, unless it
// sets Nats-Msg-Id on the reference: then the references stream keeps
// one, and there is one result.
func TestEventBusSameBodyTwice(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	fastStages(&cfg)
	startPlugin(t, cfg, Deps{})
	js := newJS(t, connectClient(t, srv.ClientURL()))
	body := []byte(`{"width": 40, "height": 30, "caption": "twice"}`)

	first := publishRef(t, js, &nats.Msg{Subject: "aiviz.reference.twice", Data: body})
	again := publishRef(t, js, &nats.Msg{Subject: "aiviz.reference.twice", Data: body})
	waitFor(t, "two results", func() bool { return streamMsgs(t, js, "AIVIZ_PROMPTS") == 2 })
	results := storedResults(t, js)
	if results[0].reply.Reference.Digest != results[1].reply.Reference.Digest ||
		results[0].reply.Reference.Sequence != first.Sequence || results[1].reply.Reference.Sequence != again.Sequence {
		t.Errorf("references %+v and %+v", results[0].reply.Reference, results[1].reply.Reference)
	}

	// With the app's own Nats-Msg-Id the second publish is a duplicate of
	// the first on the references stream: one reference, one result.
	retried := func() *nats.Msg {
		return &nats.Msg{Subject: "aiviz.reference.retried", Header: nats.Header{HeaderMsgID: {"app-request-7"}}, Data: body}
	}
	if ack := publishRef(t, js, retried()); ack.Duplicate {
		t.Fatal("the first publish is a duplicate")
	}
	if ack := publishRef(t, js, retried()); !ack.Duplicate {
		t.Fatal("the retried publish was stored as a second reference")
	}
	waitFor(t, "the third result", func() bool { return streamMsgs(t, js, "AIVIZ_PROMPTS") == 3 })
	waitFor(t, "the work queue to empty", func() bool { return streamMsgs(t, js, "AIVIZ_REFERENCES") == 0 })
	time.Sleep(200 * time.Millisecond) // room for a wrong fourth result
	if n := streamMsgs(t, js, "AIVIZ_PROMPTS"); n != 3 {
		t.Errorf("%d results, want 3", n)
	}
}

// TestRequestDigest: the digest covers the body and the headers
// paliprompt reads, nothing else.
func TestRequestDigest(t *testing.T) {
	body := []byte("image bytes")
	base := RequestDigest(nil, body)
	for _, tt := range []struct {
		name   string
		header nats.Header
		same   bool
	}{
		{"no headers", nats.Header{}, true},
		{"Nats-Msg-Id", nats.Header{HeaderMsgID: {"x"}}, true},
		{"tracing", nats.Header{"Traceparent": {"00-abc"}}, true},
		{"objects", nats.Header{"Paliprompt-Objects": {"cat"}}, false},
		{"place", nats.Header{HeaderPlace: {"cat=top-left"}}, false},
		{"content type", nats.Header{"Content-Type": {"application/json"}}, false},
	} {
		if got := RequestDigest(tt.header, body); (got == base) != tt.same {
			t.Errorf("%s: digest %s, base %s, want same = %v", tt.name, got, base, tt.same)
		}
	}
	if RequestDigest(nil, []byte("other")) == base {
		t.Error("another body has the same digest")
	}
	// The formula the README gives, by hand.
	if got, want := RequestDigest(nats.Header{"Paliprompt-Objects": {"cat"}}, body), sha256Hex("Paliprompt-Objects: cat\n\nimage bytes"); got != want {
		t.Errorf("digest %s, want %s", got, want)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}
