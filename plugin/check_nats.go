package plugin

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
)

// checkEmbedded reports what the embedded server needs (a writable store,
// a free port) and its security posture: where it listens, logins, TLS.
func (c *checker) checkEmbedded(cfg Config) {
	c.check("NATS", func() (string, error) { return embeddedReady(cfg) })
	e := cfg.NATS.Embedded
	scope := "this machine only"
	if !isLoopback(e.Host) {
		scope = "reachable from other machines"
	}
	c.info("listening", fmt.Sprintf("%s, port %s (%s)", e.Host, portName(e.Port), scope))
	if e.authenticates() {
		c.info("auth", "on: "+strings.Join(embeddedLogins(e), ", ")+"; paliprompt itself logs in with an nkey of its own holding only the permissions it needs")
	} else {
		c.info("auth", "off: anyone who reaches the port may publish, read and delete everything")
	}
	switch {
	case e.TLSCA != "":
		c.info("TLS", "on, client certificates required and verified against "+e.TLSCA)
	case e.TLSCert != "":
		c.info("TLS", "on (server certificate "+e.TLSCert+")")
	default:
		c.info("TLS", "off")
	}
	for _, w := range embeddedWarnings(e) {
		c.warn("security", w)
	}
}

func portName(port int) string {
	if port == -1 {
		return "any free one"
	}
	return strconv.Itoa(port)
}

// embeddedLogins describes the configured logins without their secrets.
func embeddedLogins(e EmbeddedConfig) []string {
	var out []string
	if n := len(e.Users); n > 0 {
		names := make([]string, n)
		for i, u := range e.Users {
			names[i], _, _ = strings.Cut(u, ":")
		}
		out = append(out, fmt.Sprintf("%d user(s) with passwords (%s)", n, strings.Join(names, ", ")))
	}
	if e.Token != "" {
		out = append(out, "a token")
	}
	if n := len(e.Nkeys); n > 0 {
		out = append(out, fmt.Sprintf("%d nkey(s)", n))
	}
	return out
}

// embeddedReady: the store is writable and the port is free.
func embeddedReady(cfg Config) (string, error) {
	store := cfg.StoreDir()
	if err := os.MkdirAll(store, 0o755); err != nil {
		return "", fmt.Errorf("JetStream store %s: %w", store, err)
	}
	probe, err := os.CreateTemp(store, ".check-")
	if err != nil {
		return "", fmt.Errorf("JetStream store %s is not writable: %w", store, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	e := cfg.NATS.Embedded
	addr := net.JoinHostPort(e.Host, strconv.Itoa(max(e.Port, 0)))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("embedded server cannot listen on %s: %w (another paliprompt serve? set nats.embedded.port, or -1 for any free port)", addr, err)
	}
	l.Close()
	if e.Port == -1 {
		addr = e.Host + " (a free port)"
	}
	return fmt.Sprintf("embedded server will listen on %s, JetStream store %s", addr, filepath.Clean(store)), nil
}

// checkExternal connects once (no retries) with paliprompt's credentials,
// asks for JetStream, and reports the server's security posture and the
// permissions refused: to a probe of its own, and to the running
// instances so far.
func (c *checker) checkExternal(ctx context.Context, cfg Config) {
	refused := &refusals{}
	opts, err := connectOptions(cfg.NATS, slog.New(slog.DiscardHandler), refused)
	if err != nil {
		c.report("NATS", "", err)
		return
	}
	nc, err := nats.Connect(cfg.NATS.URL, append(opts, nats.Timeout(5*time.Second), nats.MaxReconnects(0))...)
	if err != nil {
		c.report("NATS", "", fmt.Errorf("connect to %s: %w", redact(cfg.NATS.URL), err))
		return
	}
	defer nc.Close()
	c.check("NATS", func() (string, error) { return jetStreamReady(ctx, nc, cfg) })
	c.info("listening", fmt.Sprintf("connected to %s (%s); the server's client URLs: %s",
		nc.ConnectedUrlRedacted(), nc.ConnectedAddr(), strings.Join(nc.Servers(), ", ")))
	if nc.AuthRequired() {
		c.info("auth", "on; paliprompt logs in with "+clientLogin(cfg.NATS))
	} else {
		c.warn("auth", "off: the server lets anyone in (examples/nats/ shows users with only the permissions each needs)")
	}
	if state, err := nc.TLSConnectionState(); err == nil {
		c.info("TLS", "on, "+tls.VersionName(state.Version))
	} else if host, _, _ := net.SplitHostPort(nc.ConnectedAddr()); isLoopback(host) {
		c.info("TLS", "off (a loopback connection)")
	} else {
		c.warn("TLS", "off: credentials and images cross the network in clear")
	}
	probePermissions(ctx, nc, cfg)
	if list, n := refused.list(); n > 0 {
		c.report("permissions", "", fmt.Errorf("refused to this check: %s (what paliprompt needs: examples/nats/, or `paliprompt check -permissions`)", strings.Join(list, "; ")))
	} else {
		c.info("permissions", "none refused to this check (it tries the subscriptions and the read-only JetStream requests; writes are seen by the running instances, below)")
	}
	c.instancesRefused(nc, cfg)
}

// jetStreamReady asks JetStream for the first stream paliprompt uses (a
// request within its permissions, unlike the account info).
func jetStreamReady(ctx context.Context, nc *nats.Conn, cfg Config) (string, error) {
	detail := fmt.Sprintf("%s (server %s, max payload %d bytes)", nc.ConnectedUrlRedacted(), nc.ConnectedServerVersion(), nc.MaxPayload())
	stream := objectStream(cfg.Objects.ImagesBucket)
	if cfg.Events.Enabled {
		stream = cfg.Events.Stream
	}
	js, err := jetstream.New(nc)
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err = js.Stream(ctx, stream); errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Sprintf("%s, JetStream available; stream %s not there yet (paliprompt creates it if allowed; examples/nats/setup.sh)", detail, stream), nil
		}
	}
	if err != nil {
		if !cfg.Events.Enabled {
			return detail + "; no JetStream: image_object and large masks unavailable", nil
		}
		return "", fmt.Errorf("%s: JetStream is not available (%v); the event bus needs it (or set events.enabled = false)", detail, err)
	}
	return detail + ", JetStream available", nil
}

// clientLogin names the kind of credentials of the [nats] table.
func clientLogin(n NATSConfig) string {
	switch {
	case n.User != "":
		return "user " + n.User + " and a password"
	case n.Token != "":
		return "a token"
	case n.NkeySeed != "":
		return "the nkey in " + n.NkeySeed
	case n.Creds != "":
		return "the creds file " + n.Creds
	}
	return "no credentials"
}

// probePermissions tries what paliprompt does that changes nothing: each
// subscription it needs (on a subject nobody sends to, so that the probe
// takes no one's requests) and the read-only JetStream requests (stream
// and consumer info). Refusals reach the connection's refusals.
func probePermissions(ctx context.Context, nc *nats.Conn, cfg Config) {
	probe := "paliprompt-check-" + nuid.Next()
	for _, entry := range NeededPermissions(cfg, false).Subscribe {
		subject, queue, _ := strings.Cut(entry, " ")
		tokens := strings.Split(subject, ".")
		for i, t := range tokens {
			if t == "*" || t == ">" {
				tokens[i] = probe
			}
		}
		if sub, err := nc.QueueSubscribeSync(strings.Join(tokens, "."), queue); err == nil {
			defer func() { _ = sub.Unsubscribe() }()
		}
	}
	_ = nc.FlushTimeout(5 * time.Second)
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	streams := []string{objectStream(cfg.Objects.ImagesBucket), objectStream(cfg.Objects.ResultsBucket)}
	if cfg.Events.Enabled {
		streams = append(streams, cfg.Events.Stream, cfg.Events.ResultsStream)
		if s, err := js.Stream(ctx, cfg.Events.Stream); err == nil {
			_, _ = s.Consumer(ctx, cfg.Events.Consumer)
		}
	}
	for _, name := range streams {
		_, _ = js.Stream(ctx, name)
	}
	_ = nc.FlushTimeout(5 * time.Second)
	time.Sleep(100 * time.Millisecond) // the async error handler runs after the flush
}

// instancesRefused asks every running instance of the service for the
// permissions the server refused it so far (their service stats).
func (c *checker) instancesRefused(nc *nats.Conn, cfg Config) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$SRV.STATS."+cfg.Service.Name, inbox, nil); err != nil {
		return
	}
	instances := 0
	for {
		m, err := sub.NextMsg(time.Second)
		if err != nil {
			break
		}
		instances++
		var stats micro.Stats
		if json.Unmarshal(m.Data, &stats) != nil || len(stats.Endpoints) == 0 {
			continue
		}
		var st EndpointStats
		_ = json.Unmarshal(stats.Endpoints[0].Data, &st)
		if st.PermissionsRefusedCount > 0 {
			c.warn("permissions", fmt.Sprintf("instance %s was refused %d time(s) so far: %s", stats.ID, st.PermissionsRefusedCount, strings.Join(st.PermissionsRefused, "; ")))
		} else {
			c.info("permissions", fmt.Sprintf("instance %s: none refused so far", stats.ID))
		}
	}
	if instances == 0 {
		c.info("instances", "no running instance of "+cfg.Service.Name+" answered")
	}
}
