package plugin

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"paliprompt/core"
	"paliprompt/grounding"
)

// noisePNG is a w x h PNG of random pixels (a fixed seed): it does not
// compress, so it is as large as an image of its size gets.
func noisePNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = byte(rng.Uint32())
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// flood sends n requests with body to subject at once, each with its own
// reply subject, and collects the replies: codes[i] lists the reply codes
// request i got (0: a result), in order. onRefused is called once every
// request not admitted has its reply (n - admitted replies in).
type flood struct {
	mu     sync.Mutex
	codes  [][]int
	got    atomic.Int64
	notify chan struct{}
	want   int64
}

func startFlood(t testing.TB, nc *nats.Conn, subject string, n int, body []byte, notifyAt int) *flood {
	t.Helper()
	f := &flood{codes: make([][]int, n), notify: make(chan struct{}), want: int64(notifyAt)}
	prefix := "flood." + strconv.FormatInt(time.Now().UnixNano(), 36)
	sub, err := nc.Subscribe(prefix+".*", func(m *nats.Msg) {
		i, err := strconv.Atoi(m.Subject[len(prefix)+1:])
		if err != nil || i >= n {
			return
		}
		code, _ := errorOf(m)
		if status := m.Header.Get("Status"); code == 0 && status != "" {
			code = -1 // the server's "no responders": paliprompt was not subscribed
		}
		f.mu.Lock()
		f.codes[i] = append(f.codes[i], code)
		f.mu.Unlock()
		if f.got.Add(1) == f.want {
			close(f.notify)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// The replies are small, but come in a burst.
	_ = sub.SetPendingLimits(-1, -1)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := nc.PublishMsg(&nats.Msg{Subject: subject, Reply: prefix + "." + strconv.Itoa(i), Data: body}); err != nil {
			t.Fatalf("publish request %d: %v", i, err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

// count tallies the replies: results, 503s, other codes, requests with no
// reply and requests with more than one.
func (f *flood) count() (results, busy, other, none, extra int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, codes := range f.codes {
		switch {
		case len(codes) == 0:
			none++
		case len(codes) > 1:
			extra++
		}
		for _, c := range codes {
			switch c {
			case 0:
				results++
			case 503:
				busy++
			default:
				other++
			}
		}
	}
	return
}

// TestFloodRequests sends 50 times queue.size requests with 0.8 MB images
// at once while the grounder holds the admitted ones: every request not
// admitted is answered 503 before any admitted one finishes (no timeout
// without a reply, no dropped message), every admitted one gets its
// result, each request exactly one reply, and the service answers
// normally right after, on the same connection.
func TestFloodRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 300 MB of requests")
	}
	const size, n = 8, 400
	cfg := embeddedConfig(t) // the defaults: max_payload 8MiB, max_pending 256MiB
	cfg.Queue.Size = size
	g := newGate()
	deps := Deps{}
	withModel(&cfg, &deps, g)
	r := startPlugin(t, cfg, deps)
	nc := connectClient(t, r.p.URL())
	body := noisePNG(t, 600, 440)
	t.Logf("%d requests of %d bytes", n, len(body))

	f := startFlood(t, nc, "paliprompt.v1.generate", n, body, n-size)
	select {
	case <-f.notify:
	case <-time.After(60 * time.Second):
		results, busy, other, none, extra := f.count()
		t.Fatalf("refusals still missing: %d results, %d busy, %d other, %d without reply, %d with several", results, busy, other, none, extra)
	}
	if results, busy, other, _, _ := f.count(); results != 0 || busy != n-size || other != 0 {
		t.Fatalf("while the queue is held: %d results, %d busy, %d other; want 0, %d, 0", results, busy, other, n-size)
	}
	close(g.release)
	waitLong(t, 30*time.Second, "every reply", func() bool { return f.got.Load() >= n })
	// One more round trip on the same connection: a second reply to any
	// request would have come before this one.
	if reply := decodeReply(t, request(t, nc, "paliprompt.v1.layout", nil, []byte(`{"width": 64, "height": 48, "caption": "right after"}`))); reply.Caption != "right after" {
		t.Errorf("the request after the flood: %+v", reply)
	}
	results, busy, other, none, extra := f.count()
	if results != size || busy != n-size || other != 0 || none != 0 || extra != 0 {
		t.Errorf("%d results, %d busy, %d other, %d without reply, %d with several; want %d, %d, 0, 0, 0", results, busy, other, none, extra, size, n-size)
	}
	st := serviceStats(t, nc)["generate"]
	if st.Admitted != 0 || st.Requests != n || st.Errors != n-size {
		t.Errorf("stats after the flood: %+v", st)
	}
	if s := r.p.nc.Stats(); s.Reconnects != 0 {
		t.Errorf("paliprompt's connection reconnected %d times (dropped as a slow consumer?)", s.Reconnects)
	}
}

// concurrent is a grounder that records how many calls run at once.
type concurrent struct {
	now, peak, calls atomic.Int64
	d                time.Duration
}

func (c *concurrent) Ground(ctx context.Context, req grounding.Request) (core.Result, error) {
	c.calls.Add(1)
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(c.d)
	b := req.Image.Bounds()
	return core.Result{Width: b.Dx(), Height: b.Dy(), Caption: "burst"}, nil
}

// TestFloodEventBus publishes 50 times queue.size references with large
// images at once: they are worked off events.concurrency at a time, each
// delivered once (no redelivery storm: the rest wait in the stream, not
// in flight), each with one result, and the queue stays open to
// request/reply meanwhile.
func TestFloodEventBus(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 400 references")
	}
	const size, n = 8, 400
	srv := startServer(t, 8<<20)
	cfg := testConfig(t, srv.ClientURL())
	fastStages(&cfg)
	cfg.Queue.Size, cfg.Events.Concurrency = size, 2
	model := &concurrent{d: 5 * time.Millisecond}
	deps := Deps{}
	withModel(&cfg, &deps, model)
	startPlugin(t, cfg, deps)
	nc := connectClient(t, srv.ClientURL())
	js := newJS(t, nc)
	body := noisePNG(t, 300, 220)
	ctx := context.Background()
	acks := make([]jetstream.PubAckFuture, 0, n)
	for i := range n {
		ack, err := js.PublishAsync(fmt.Sprintf("aiviz.reference.burst-%03d", i), body)
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, ack)
	}
	for i, a := range acks {
		select {
		case <-a.Ok():
		case err := <-a.Err():
			t.Fatalf("reference %d: %v", i, err)
		case <-time.After(30 * time.Second):
			t.Fatalf("reference %d not stored", i)
		}
	}
	// Request/reply still answers while the burst is worked off.
	if reply := decodeReply(t, request(t, nc, "paliprompt.v1.layout", nil, []byte(`{"width": 64, "height": 48, "caption": "meanwhile"}`))); reply.Caption != "meanwhile" {
		t.Errorf("request during the burst: %+v", reply)
	}
	waitLong(t, 120*time.Second, "the burst to be worked off", func() bool { return streamMsgs(t, js, "AIVIZ_REFERENCES") == 0 })
	seen := map[string]int{}
	for _, e := range resultEvents(t, js) {
		seen[e.subject]++
	}
	for i := range n {
		if s := fmt.Sprintf("aiviz.prompt.ready.burst-%03d", i); seen[s] != 1 {
			t.Errorf("%s: %d results", s, seen[s])
		}
	}
	cons, err := js.Consumer(ctx, "AIVIZ_REFERENCES", "paliprompt")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 || info.Delivered.Consumer != n || model.calls.Load() != n {
		t.Errorf("%d deliveries, %d redelivered, %d grounder calls for %d references", info.Delivered.Consumer, info.NumRedelivered, model.calls.Load(), n)
	}
	if p := model.peak.Load(); p > int64(cfg.Events.Concurrency) {
		t.Errorf("%d references grounded at once, events.concurrency is %d", p, cfg.Events.Concurrency)
	}
}

// rssBytes reads the resident set size of this process (Linux).
func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkFlood sends 12.5, 50 and 200 times queue.size requests with
// 4 MiB images at once (0.4, 1.7 and 6.7 GB) to a service holding its
// queue full, over its embedded server with the default config, and
// prints the process's resident memory (the server, paliprompt and the
// client together) before and at its peak during the flood, with how long
// the refusals took. Every request gets one reply, or it fails.
//
//	go test ./plugin -run '^$' -bench Flood -benchtime 1x
//
// FLOOD_URL=nats://... runs it against another server instead (with
// nats-server's default max_pending of 64 MiB, a flood read slower than
// it comes gets paliprompt's connection dropped as a slow consumer).
func BenchmarkFlood(b *testing.B) {
	body := noisePNG(b, 1400, 1000) // about 4 MiB
	for _, n := range []int{100, 400, 1600} {
		b.Run(fmt.Sprintf("requests-%d", n), func(b *testing.B) {
			cfg := embeddedConfig(b)
			cfg.Queue.Size = 8
			if url := os.Getenv("FLOOD_URL"); url != "" {
				cfg.NATS.URL = url
			}
			for range b.N {
				floodOnce(b, cfg, n, body)
			}
		})
	}
}

func floodOnce(b *testing.B, cfg Config, n int, body []byte) {
	size := cfg.Queue.Size
	g := newGate()
	var log logBuffer
	deps := Deps{Log: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	withModel(&cfg, &deps, g)
	r := startPlugin(b, cfg, deps)
	defer r.stop(b)
	nc := connectClient(b, r.p.URL())
	defer nc.Close()
	runtime.GC()
	debug.FreeOSMemory()
	before := rssBytes()
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			if v := rssBytes(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	f := startFlood(b, nc, "paliprompt.v1.generate", n, body, n-size)
	select {
	case <-f.notify:
	case <-time.After(2 * time.Minute):
		close(done)
		results, busy, other, none, extra := f.count()
		b.Fatalf("refusals missing after 2 minutes: %d results, %d busy, %d other, %d without reply, %d with several; paliprompt's connection %+v; its warnings:\n%s",
			results, busy, other, none, extra, r.p.nc.Stats(), shorten(log.String(), 3000))
	}
	refused := time.Since(start)
	close(g.release)
	for f.got.Load() < int64(n) {
		time.Sleep(5 * time.Millisecond)
	}
	close(done)
	results, busy, other, none, extra := f.count()
	if results != size || busy != n-size || other+none+extra != 0 {
		b.Fatalf("%d results, %d busy, %d other, %d without reply, %d with several", results, busy, other, none, extra)
	}
	b.ReportMetric(float64(before)/(1<<20), "RSS-before-MiB")
	b.ReportMetric(float64(peak.Load())/(1<<20), "RSS-peak-MiB")
	b.ReportMetric(ms(refused), "ms-to-all-503s")
	reconnects := r.p.nc.Stats().Reconnects
	b.ReportMetric(float64(reconnects), "reconnects")
	b.Logf("%d requests of %d bytes (%.1f GB): %d results, %d refused in %s; RSS %d MiB before, %d MiB at the peak; paliprompt reconnected %d times",
		n, len(body), float64(n*len(body))/1e9, results, busy, refused.Round(time.Millisecond), before>>20, peak.Load()>>20, reconnects)
}
