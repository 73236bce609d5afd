package plugin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"paliprompt/core"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"paliprompt/grounding"
)

// startServer starts a real NATS server with JetStream on a free port,
// its store in a temporary folder; it stands for the deployment's server
// and outlives plugin restarts within a test.
func startServer(t testing.TB, maxPayload int32) *server.Server {
	t.Helper()
	return startServerWith(t, func(o *server.Options) { o.MaxPayload = maxPayload })
}

// startServerWith is startServer with other options set by set.
func startServerWith(t testing.TB, set func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
	set(opts)
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("test NATS server did not start")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// testConfig is a config for tests: the given server, short waits.
func testConfig(t testing.TB, url string) Config {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.NATS.URL = url
	cfg.NATS.ReconnectWait = Duration(50 * time.Millisecond)
	cfg.Events.AckWait = Duration(time.Second)
	cfg.Events.NakDelay = Duration(50 * time.Millisecond)
	cfg.Queue.ShutdownGrace = Duration(5 * time.Second)
	// The text grounder: tests that need the model grounder set a model.
	cfg.Model.Dir = ""
	// The injected test mask decoder (boxMasks) ignores the file; it only
	// has to exist.
	cfg.Model.MaskDecoder = filepath.Join(cfg.DataDir, "vae-oid.npz")
	if err := os.WriteFile(cfg.Model.MaskDecoder, []byte("test"), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// fastStages shrinks the SDXL canvas and the preview: tests about the
// NATS side run hundreds of requests on a 2-core machine, and a full-size
// canvas and preview cost about 150ms a request there.
func fastStages(cfg *Config) {
	cfg.SDXL.Buckets = []string{"256x256", "384x256", "256x384"}
	cfg.Layout.PreviewHeight = 64
}

// testLogger logs to the test's output only when it fails (-v shows all).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// running is a plugin serving in the background.
type running struct {
	p       *Plugin
	cancel  context.CancelFunc
	done    chan error
	stopped sync.Once
}

// startPlugin serves a plugin until the test ends (or stop/kill).
func startPlugin(t testing.TB, cfg Config, deps Deps, setup ...func(*Plugin)) *running {
	t.Helper()
	r, err := tryStartPlugin(t, cfg, deps, setup...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryStartPlugin is startPlugin for a plugin that may not start: it
// returns why not.
func tryStartPlugin(t testing.TB, cfg Config, deps Deps, setup ...func(*Plugin)) (*running, error) {
	t.Helper()
	if deps.Log == nil {
		deps.Log = testLogger(t)
	}
	if deps.LoadMasks == nil {
		deps.LoadMasks = testConfigMasks
	}
	p, err := New(cfg, deps)
	if err != nil {
		return nil, err
	}
	for _, f := range setup {
		f(p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Serve(ctx) }()
	select {
	case <-p.Ready():
	case err := <-r.done:
		cancel()
		return nil, fmt.Errorf("plugin stopped before it was ready: %w", err)
	case <-time.After(15 * time.Second):
		cancel()
		return nil, errors.New("plugin not ready after 15s")
	}
	t.Cleanup(func() {
		r.stop(t)
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r, nil
}

// stop shuts the plugin down gracefully and waits for Serve to return.
func (r *running) stop(t testing.TB) {
	r.stopped.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("plugin did not stop within 20s")
		}
	})
}

// kill stops the plugin abruptly, as a crash would: its connection is
// closed at once, in-flight work is cut off and nothing is acked or
// nak'ed any more.
func (r *running) kill() {
	r.p.mu.Lock()
	nc, cancelWork := r.p.nc, r.p.cancelWork
	r.p.mu.Unlock()
	nc.Close()
	cancelWork()
	r.cancel()
}

// connectClient connects a test client to the server.
func connectClient(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// request sends a request and returns the reply message.
func request(t testing.TB, nc *nats.Conn, subject string, header nats.Header, body []byte) *nats.Msg {
	t.Helper()
	msg := &nats.Msg{Subject: subject, Header: header, Data: body}
	resp, err := nc.RequestMsg(msg, 20*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	return resp
}

// errorOf returns the micro error code and description of a reply, or
// 0 when it is no error.
func errorOf(m *nats.Msg) (int, string) {
	code := m.Header.Get(micro.ErrorCodeHeader)
	if code == "" {
		return 0, ""
	}
	n, _ := strconv.Atoi(code)
	return n, m.Header.Get(micro.ErrorHeader)
}

func decodeReply(t testing.TB, m *nats.Msg) Reply {
	t.Helper()
	if code, desc := errorOf(m); code != 0 {
		t.Fatalf("error reply %d: %s", code, desc)
	}
	var r Reply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		t.Fatalf("decode reply: %v\n%s", err, m.Data)
	}
	return r
}

func jsonBody(t testing.TB, v any) []byte {
	t.Helper()
	data, err := marshalJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

var jsonHeader = nats.Header{"Content-Type": {"application/json"}}

// scenePNG draws a w x h test image: a red square on grey.
func scenePNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{128, 128, 128, 255}
			if x >= w/4 && x < w/2 && y >= h/4 && y < h/2 {
				c = color.RGBA{220, 40, 40, 255}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// truncatedJPEG is a valid JPEG header with most of its data cut off.
func truncatedJPEG(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()[:buf.Len()/2]
}

// hugePNGHeader is a PNG signature and IHDR claiming w x h pixels, with
// no pixel data: a decompression bomb's calling card.
func hugePNGHeader(w, h uint32) []byte {
	var ihdr bytes.Buffer
	ihdr.WriteString("IHDR")
	binary.Write(&ihdr, binary.BigEndian, w)
	binary.Write(&ihdr, binary.BigEndian, h)
	ihdr.Write([]byte{8, 2, 0, 0, 0}) // 8-bit RGB
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	binary.Write(&out, binary.BigEndian, uint32(ihdr.Len()-4))
	out.Write(ihdr.Bytes())
	binary.Write(&out, binary.BigEndian, crc32.ChecksumIEEE(ihdr.Bytes()))
	return out.Bytes()
}

func b64(data []byte) string { return base64.StdEncoding.EncodeToString(data) }

// boxMasks is a test mask decoder: an ellipse filling the box, with raw
// values from 1 at the centre to -1 at the corners. It stands in for
// vae-oid.npz, which tests do not download.
type boxMasks struct{}

func (boxMasks) Mask(codes []int, box core.Box, width, height int) (*core.Mask, error) {
	r := image.Rect(int(box.X0), int(box.Y0), int(box.X1+0.999), int(box.Y1+0.999)).Intersect(image.Rect(0, 0, width, height))
	m := &core.Mask{Rect: r, Values: make([]float32, r.Dx()*r.Dy())}
	cx, cy := float64(r.Min.X+r.Max.X)/2, float64(r.Min.Y+r.Max.Y)/2
	rx, ry := float64(r.Dx())/2, float64(r.Dy())/2
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			dx, dy := (float64(x)+0.5-cx)/rx, (float64(y)+0.5-cy)/ry
			m.Values[(y-r.Min.Y)*r.Dx()+(x-r.Min.X)] = float32(1 - (dx*dx + dy*dy))
		}
	}
	return m, nil
}

// gate is a test model grounder that blocks each call until released, to
// hold the queue full or run past a deadline. It honours ctx like a real
// model grounder does between decode steps.
type gate struct {
	started chan struct{}
	release chan struct{}
	mu      sync.Mutex
	calls   int
}

func newGate() *gate {
	return &gate{started: make(chan struct{}, 100), release: make(chan struct{})}
}

func (g *gate) Ground(ctx context.Context, req grounding.Request) (core.Result, error) {
	g.mu.Lock()
	g.calls++
	g.mu.Unlock()
	g.started <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
		return core.Result{}, ctx.Err()
	}
	b := req.Image.Bounds()
	return core.Result{Width: b.Dx(), Height: b.Dy(), Caption: "a gated caption"}, nil
}

func (g *gate) Describe() grounding.Info {
	return grounding.Info{Kind: "model", ModelDir: "gate", Provider: "test", Status: "ready"}
}

// withModel injects m as the model grounder.
func withModel(cfg *Config, deps *Deps, m grounding.Grounder) {
	cfg.Model.Dir = "test-model"
	deps.NewModel = func(grounding.ModelConfig) (grounding.Grounder, error) { return m, nil }
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testConfigMasks loads the test mask decoder whatever the path.
func testConfigMasks(string) (grounding.MaskDecoder, error) { return boxMasks{}, nil }
