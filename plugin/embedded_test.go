package plugin

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"paliprompt/core"
)

// embeddedConfig is a test config for the embedded server on a free port.
func embeddedConfig(t testing.TB) Config {
	cfg := testConfig(t, "")
	fastStages(&cfg)
	cfg.NATS.Embedded.Port = -1
	return cfg
}

// embeddedAddr is the address a test client reaches the embedded server
// at: the loopback address and the port it picked.
func embeddedAddr(t *testing.T, r *running, scheme string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(r.p.URL(), "nats://"), "tls://"))
	if err != nil {
		t.Fatalf("URL %s: %v", r.p.URL(), err)
	}
	return scheme + "://" + net.JoinHostPort("127.0.0.1", port)
}

// TestEmbeddedServerAuth: the embedded server takes users with passwords,
// a token, nkeys and TLS with client certificates from config; a client
// without them is refused, one with them is served (request/reply and the
// event bus, which paliprompt runs over its own nkey with exactly
// NeededPermissions).
func TestEmbeddedServerAuth(t *testing.T) {
	dir := t.TempDir()
	pub, seedFile := userNkey(t, dir)
	_, files := testTLS(t, dir)
	tests := []struct {
		name   string
		server func(*EmbeddedConfig)
		client NATSConfig
		scheme string
	}{
		{"users", func(e *EmbeddedConfig) { e.Users = []string{"app:secret", "cli:other"} }, NATSConfig{User: "app", Password: "secret"}, "nats"},
		{"token", func(e *EmbeddedConfig) { e.Token = "s3cr3t" }, NATSConfig{Token: "s3cr3t"}, "nats"},
		{"nkeys", func(e *EmbeddedConfig) { e.Nkeys = []string{pub} }, NATSConfig{NkeySeed: seedFile}, "nats"},
		{"TLS with client certificates and users", func(e *EmbeddedConfig) {
			e.Users = []string{"app:secret"}
			e.TLSCert, e.TLSKey, e.TLSCA = files.serverCert, files.serverKey, files.ca
		}, NATSConfig{User: "app", Password: "secret", TLSCA: files.ca, TLSCert: files.cert, TLSKey: files.key}, "tls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := embeddedConfig(t)
			tt.server(&cfg.NATS.Embedded)
			r := startPlugin(t, cfg, Deps{})
			url := embeddedAddr(t, r, tt.scheme)
			if !strings.HasPrefix(r.p.URL(), tt.scheme+"://") {
				t.Errorf("announced URL %s, want %s://", r.p.URL(), tt.scheme)
			}

			if nc, err := nats.Connect(url, nats.Timeout(2*time.Second)); err == nil {
				nc.Close()
				t.Fatal("a client without credentials was let in")
			}
			client := tt.client
			client.Name, client.InboxPrefix = "app", "_INBOX"
			opts, err := connectOptions(client, discardLogger(), nil)
			if err != nil {
				t.Fatal(err)
			}
			nc := connectClient(t, url, opts...)
			if reply := decodeReply(t, request(t, nc, "paliprompt.v1.layout", nil, []byte(`{"width": 4, "height": 4}`))); reply.Image.Width != 4 {
				t.Errorf("reply %+v", reply)
			}
			js := newJS(t, nc)
			publishReference(t, js, "aiviz.reference.auth-1", nil, []byte(`{"width": 8, "height": 8, "caption": "let in"}`))
			waitFor(t, "the result", func() bool { return streamMsgs(t, js, "AIVIZ_PROMPTS") == 1 })
			if refused := refusedSoFar(r); len(refused) > 0 {
				t.Errorf("paliprompt's own user was refused: %v", refused)
			}
		})
	}
}

// TestEmbeddedServerRefusesOpenNetwork: an embedded server on a
// non-loopback address without authentication is refused at start-up with
// what to configure; allow_unauthenticated starts it with a warning; one
// with logins but without TLS warns that they cross the network in clear.
func TestEmbeddedServerRefusesOpenNetwork(t *testing.T) {
	for _, host := range []string{"0.0.0.0", "::", "192.168.1.20", "nats.example"} {
		cfg := embeddedConfig(t)
		cfg.NATS.Embedded.Host = host
		err := cfg.Validate()
		if !errors.Is(err, core.ErrConfig) {
			t.Fatalf("host %s without auth: %v", host, err)
		}
		for _, want := range []string{"nats.embedded.host", "nats.embedded.users", "nats.embedded.token", "nats.embedded.nkeys", "tls_cert", "allow_unauthenticated"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("host %s: %q does not name %s", host, err, want)
			}
		}
	}
	for _, host := range []string{"127.0.0.1", "::1", "localhost", "127.0.0.2"} {
		cfg := embeddedConfig(t)
		cfg.NATS.Embedded.Host = host
		if err := cfg.Validate(); err != nil {
			t.Errorf("loopback %s: %v", host, err)
		}
	}

	for _, tt := range []struct {
		name string
		set  func(*EmbeddedConfig)
		warn string
	}{
		{"allow_unauthenticated", func(e *EmbeddedConfig) { e.AllowUnauthenticated = true }, "without authentication (nats.embedded.allow_unauthenticated = true)"},
		{"users without TLS", func(e *EmbeddedConfig) { e.Users = []string{"app:secret"} }, "without TLS: passwords and tokens cross the network in clear"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := embeddedConfig(t)
			cfg.NATS.Embedded.Host = "0.0.0.0"
			tt.set(&cfg.NATS.Embedded)
			var log logBuffer
			startPlugin(t, cfg, Deps{Log: log.logger()})
			if !strings.Contains(log.String(), tt.warn) {
				t.Errorf("no warning %q in the log:\n%s", tt.warn, log.String())
			}
			var out strings.Builder
			_ = Check(context.Background(), cfg, Deps{}, &out)
			if !strings.Contains(out.String(), tt.warn) {
				t.Errorf("paliprompt check does not warn %q:\n%s", tt.warn, out.String())
			}
		})
	}
}

// TestEmbeddedSecurityConfigErrors: bad logins and TLS settings name
// their keys.
func TestEmbeddedSecurityConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(*EmbeddedConfig)
		want string
	}{
		{"user without password", func(e *EmbeddedConfig) { e.Users = []string{"app"} }, `nats.embedded.users: "app" is not "name:password"`},
		{"user twice", func(e *EmbeddedConfig) { e.Users = []string{"app:a", "app:b"} }, `user "app" is listed twice`},
		{"bad nkey", func(e *EmbeddedConfig) { e.Nkeys = []string{"SUABC"} }, "nats.embedded.nkeys"},
		{"cert without key", func(e *EmbeddedConfig) { e.TLSCert = "c.pem" }, "nats.embedded.tls_cert"},
		{"CA without cert", func(e *EmbeddedConfig) { e.TLSCA = "ca.pem" }, "nats.embedded.tls_ca"},
	} {
		cfg := embeddedConfig(t)
		tt.set(&cfg.NATS.Embedded)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	// Unreadable TLS files fail at start, naming the keys.
	cfg := embeddedConfig(t)
	cfg.NATS.Embedded.TLSCert, cfg.NATS.Embedded.TLSKey = "/nonexistent/server.pem", "/nonexistent/server-key.pem"
	if _, err := tryStartPlugin(t, cfg, Deps{}); err == nil || !strings.Contains(err.Error(), "nats.embedded.tls_cert") {
		t.Errorf("missing certificate: %v", err)
	}
}
