package plugin

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"paliprompt/core"
)

// embedded is the embedded NATS server and how paliprompt connects to it.
type embedded struct {
	srv *server.Server
	// connect are paliprompt's own connection options: in-process, with
	// its own nkey when clients must authenticate.
	connect []nats.Option
}

// startEmbedded starts the embedded NATS server with JetStream, its store
// under the data dir, its authentication and TLS from config, and waits
// until it accepts connections.
func startEmbedded(cfg Config, log *slog.Logger) (*embedded, error) {
	e := cfg.NATS.Embedded
	store := cfg.StoreDir()
	if err := os.MkdirAll(store, 0o755); err != nil {
		return nil, fmt.Errorf("create JetStream store %s: %w", store, err)
	}
	opts := &server.Options{
		ServerName: "paliprompt-embedded",
		Host:       e.Host,
		Port:       e.Port,
		MaxPayload: int32(e.MaxPayload),
		// paliprompt's own connection must survive a flood of large
		// requests: the server buffers them while it reads.
		MaxPending:    int64(e.MaxPending),
		WriteDeadline: time.Duration(e.WriteDeadline),
		JetStream:     true,
		StoreDir:      store,
		NoSigs:        true, // paliprompt handles SIGINT/SIGTERM itself
	}
	own, err := secureEmbedded(opts, cfg)
	if err != nil {
		return nil, err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	srv.SetLoggerV2(serverLogger{log.With("component", "nats-server")}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS server did not start listening on %s:%d within 10s (port in use? set nats.embedded.port, or -1 for any free port)", e.Host, e.Port)
	}
	for _, w := range embeddedWarnings(e) {
		log.Warn(w)
	}
	return &embedded{srv: srv, connect: append(own, nats.InProcessServer(srv))}, nil
}

// secureEmbedded sets the server's logins and TLS from config. With logins
// on, paliprompt connects as a user of its own: an nkey made here, never
// written anywhere, holding exactly NeededPermissions (with creating), so
// that it gets no more on its own server than it asks for on another.
func secureEmbedded(opts *server.Options, cfg Config) ([]nats.Option, error) {
	e := cfg.NATS.Embedded
	for _, u := range e.Users {
		name, password, _ := strings.Cut(u, ":")
		opts.Users = append(opts.Users, &server.User{Username: name, Password: password})
	}
	opts.Authorization = e.Token
	for _, k := range e.Nkeys {
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: k})
	}
	if e.TLSCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: e.TLSCert, KeyFile: e.TLSKey, CaFile: e.TLSCA, Verify: e.TLSCA != ""})
		if err != nil {
			return nil, core.Errorf(core.ErrConfig, "nats.embedded.tls_cert, tls_key, tls_ca: %v", err)
		}
		opts.TLS, opts.TLSConfig, opts.TLSVerify, opts.TLSTimeout = true, tc, e.TLSCA != "", 2
	}
	if !e.authenticates() {
		return nil, nil
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("make paliprompt's own nkey: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("make paliprompt's own nkey: %w", err)
	}
	opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: pub, Permissions: NeededPermissions(cfg, true).server()})
	return []nats.Option{nats.Nkey(pub, kp.Sign)}, nil
}

// embeddedWarnings are the risks the configuration accepts: a server
// beyond loopback without logins (allow_unauthenticated), or with logins
// but without TLS.
func embeddedWarnings(e EmbeddedConfig) []string {
	if isLoopback(e.Host) {
		return nil
	}
	switch {
	case !e.authenticates():
		return []string{fmt.Sprintf("the embedded NATS server listens on %s without authentication (nats.embedded.allow_unauthenticated = true): "+
			"anyone who reaches it can publish references, read every result and delete the streams and buckets", e.Host)}
	case e.TLSCert == "":
		return []string{fmt.Sprintf("the embedded NATS server listens on %s without TLS: passwords and tokens cross the network in clear (set nats.embedded.tls_cert and tls_key)", e.Host)}
	}
	return nil
}

// clientURL is the URL clients use: tls:// when the server requires TLS,
// and the machine's name in place of a wildcard address.
func (e *embedded) clientURL(cfg EmbeddedConfig) string {
	scheme := "nats"
	if cfg.TLSCert != "" {
		scheme = "tls"
	}
	host := cfg.Host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil {
			host = name
		}
	}
	port := e.srv.Addr().(*net.TCPAddr).Port
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port))
}

// connectURL is the URL paliprompt dials: an embedded server's tls://
// URL becomes nats://, as its in-process connection needs no TLS.
func connectURL(url string) string {
	if rest, ok := strings.CutPrefix(url, "tls://"); ok && !strings.Contains(url, ",") {
		return "nats://" + rest
	}
	return url
}

// serverLogger passes the embedded server's log to slog: its notices are
// start-up chatter (debug), its warnings and errors matter.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Tracef(format string, v ...any)  {}
