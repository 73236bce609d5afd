package plugin

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestEmbeddedServer: with nats.url empty the plugin starts its own server
// with JetStream under the data dir, prints the URL for the nats CLI, and
// its results survive a restart.
func TestEmbeddedServer(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.NATS.Embedded.Port = -1
	var out bytes.Buffer
	r := startPlugin(t, cfg, Deps{Out: &out})
	url := r.p.URL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") || !strings.Contains(out.String(), "nats --server "+url) {
		t.Fatalf("url %q, printed %q", url, out.String())
	}
	nc := connectClient(t, url)
	js := newJS(t, nc)
	publishReference(t, js, "aiviz.reference.kept", jsonHeader, jsonBody(t, map[string]any{
		"image_b64": b64(scenePNG(t, 16, 16)), "caption": "kept",
	}))
	waitFor(t, "a result", func() bool { return streamMsgs(t, js, "AIVIZ_PROMPTS") == 1 })
	nc.Close()
	r.stop(t)
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "jetstream")); err != nil {
		t.Fatalf("no JetStream store under the data dir: %v", err)
	}

	r = startPlugin(t, cfg, Deps{})
	nc = connectClient(t, r.p.URL())
	js = newJS(t, nc)
	if n := streamMsgs(t, js, "AIVIZ_PROMPTS"); n != 1 {
		t.Errorf("%d results after a restart, want 1", n)
	}
	if r := decodeReply(t, request(t, nc, "paliprompt.v1.layout", nil, []byte(`{"width": 2, "height": 2}`))); r.Image.Width != 2 {
		t.Errorf("reply %+v", r)
	}
}

// recorder is a slog handler that keeps messages.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}

func (r *recorder) saw(msg string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if m == msg {
			return true
		}
	}
	return false
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestReconnect: the server goes away and comes back; the plugin logs the
// disconnect and the reconnect and serves again.
func TestReconnect(t *testing.T) {
	port, store := freePort(t), t.TempDir()
	start := func() *server.Server {
		srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: store, NoSigs: true, NoLog: true})
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatal("server did not start")
		}
		return srv
	}
	srv := start()
	cfg := testConfig(t, srv.ClientURL())
	cfg.NATS.ReconnectMaxWait = Duration(200 * time.Millisecond)
	rec := &recorder{}
	startPlugin(t, cfg, Deps{Log: slog.New(rec)})

	srv.Shutdown()
	srv.WaitForShutdown()
	waitFor(t, "the disconnect to be logged", func() bool { return rec.saw("NATS disconnected; reconnecting") })
	time.Sleep(300 * time.Millisecond) // a few failed attempts
	srv = start()
	defer srv.Shutdown()
	waitFor(t, "the reconnect to be logged", func() bool { return rec.saw("NATS reconnected") })

	nc := connectClient(t, srv.ClientURL())
	var reply *nats.Msg
	waitFor(t, "the service to answer again", func() bool {
		m, err := nc.Request("paliprompt.v1.layout", []byte(`{"width": 3, "height": 3}`), time.Second)
		reply = m
		return err == nil
	})
	if r := decodeReply(t, reply); r.Image.Width != 3 {
		t.Errorf("reply %+v", r)
	}
}

func TestRunFiles(t *testing.T) {
	cfg := testConfig(t, "")
	p, err := New(cfg, Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	image := filepath.Join(dir, "photo 1.png")
	if err := os.WriteFile(image, scenePNG(t, 40, 30), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	var summary bytes.Buffer
	err = p.RunFiles(context.Background(), []string{"../examples/requests/layout-two-shapes.json", "../examples/requests/generate-house.json", image},
		RunOptions{Out: out}, &summary)
	// The image file needs a model: it fails with 503, the others work.
	if err == nil || err.Error() != "1 of 3 files failed" {
		t.Errorf("RunFiles: %v", err)
	}
	for _, want := range []string{"layout-two-shapes.json  layout", "generate-house.json  generate  file  ok  3", "photo 1.png", "503: no model is loaded"} {
		if !strings.Contains(strings.Join(strings.Fields(summary.String()), "  "), strings.Join(strings.Fields(want), "  ")) {
			t.Errorf("summary lacks %q:\n%s", want, summary.String())
		}
	}
	for _, f := range []string{"layout-two-shapes.json", "house.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
}

// TestDemo runs `paliprompt demo` on the repository's examples: each must
// succeed by request/reply and on the event bus.
func TestDemo(t *testing.T) {
	out := t.TempDir()
	var w bytes.Buffer
	cfg := testConfig(t, "")
	err := Demo(context.Background(), cfg, Deps{Log: testLogger(t)}, DemoOptions{Examples: "../examples", Out: out}, &w)
	t.Log("\n" + w.String())
	if err != nil {
		t.Fatal(err)
	}
	events, _ := filepath.Glob(filepath.Join(out, "events", "*.json"))
	replies, _ := filepath.Glob(filepath.Join(out, "*.json"))
	if len(events) == 0 || len(replies) == 0 {
		t.Errorf("%d replies, %d events", len(replies), len(events))
	}
}

func TestCheck(t *testing.T) {
	srv := startServer(t, 0)
	tests := []struct {
		name  string
		cfg   func(*Config)
		fails bool
		lines []string
	}{
		{"embedded", func(c *Config) { c.NATS.URL = ""; c.NATS.Embedded.Port = -1 }, false,
			[]string{"ok    NATS", "embedded server will listen on 127.0.0.1 (a free port)", "info  listening     127.0.0.1, port any free one (this machine only)",
				"info  auth          off", "info  TLS           off", "info  model", "ok    mask decoder"}},
		{"embedded with logins and TLS", func(c *Config) {
			c.NATS.URL, c.NATS.Embedded.Port, c.NATS.Embedded.Host = "", -1, "0.0.0.0"
			c.NATS.Embedded.Users, c.NATS.Embedded.TLSCert, c.NATS.Embedded.TLSKey = []string{"app:secret"}, "server.pem", "server-key.pem"
		}, false, []string{"info  listening     0.0.0.0, port any free one (reachable from other machines)",
			"info  auth          on: 1 user(s) with passwords (app)", "info  TLS           on (server certificate server.pem)"}},
		{"external", func(c *Config) {}, false, []string{"JetStream available"}},
		{"unreachable", func(c *Config) { c.NATS.URL = "nats://127.0.0.1:1" }, true, []string{"FAIL  NATS", "connect to nats://127.0.0.1:1"}},
		{"model without grounder", func(c *Config) { c.Model.Dir = "models/x" }, true, []string{"FAIL  model", "no model grounder"}},
		{"missing mask decoder", func(c *Config) { c.Model.MaskDecoder = "nope.npz" }, true, []string{"FAIL  mask decoder", "nope.npz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, srv.ClientURL())
			tt.cfg(&cfg)
			var w bytes.Buffer
			err := Check(context.Background(), cfg, Deps{LoadMasks: testConfigMasks}, &w)
			if (err != nil) != tt.fails {
				t.Errorf("Check error %v, want failure %v", err, tt.fails)
			}
			for _, l := range tt.lines {
				if !strings.Contains(w.String(), l) {
					t.Errorf("report lacks %q:\n%s", l, w.String())
				}
			}
		})
	}
}
