package plugin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"paliprompt/core"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// connectOptions builds the client options: authentication, TLS, and
// reconnecting forever with exponential backoff, logging each disconnect
// and reconnect. Permission violations go to refused (nil: logged only).
func connectOptions(cfg NATSConfig, log *slog.Logger, refused *refusals) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.CustomInboxPrefix(cfg.InboxPrefix),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(backoff(time.Duration(cfg.ReconnectWait), time.Duration(cfg.ReconnectMaxWait))),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err == nil { // a Close, not a lost connection
				return
			}
			log.Warn("NATS disconnected; reconnecting", "server", nc.ConnectedUrlRedacted(), "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) { log.Debug("NATS connection closed") }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			if errors.Is(err, nats.ErrPermissionViolation) {
				if refused == nil || refused.add(err) {
					log.Error("NATS refused a permission paliprompt needs (examples/nats/ lists them all)", "err", err)
				}
				if refused != nil {
					refused.notify(err)
				}
				return
			}
			log.Error("NATS async error", "subject", subject, "err", err)
		}),
	}
	switch {
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.Creds != "":
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	if cfg.NkeySeed != "" {
		opt, err := nats.NkeyOptionFromSeed(cfg.NkeySeed)
		if err != nil {
			return nil, core.Errorf(core.ErrConfig, "nats.nkey_seed %s: %v", cfg.NkeySeed, err)
		}
		opts = append(opts, opt)
	}
	return opts, nil
}

// backoff doubles the delay per attempt from first up to max, with up to
// 20% jitter so that many instances do not reconnect in lockstep.
func backoff(first, max time.Duration) func(attempts int) time.Duration {
	return func(attempts int) time.Duration {
		d := first
		for i := 1; i < attempts && d < max; i++ {
			d *= 2
		}
		d = min(d, max)
		return d + time.Duration(rand.Int64N(int64(d)/5+1))
	}
}

// connect connects to url, retrying with the same backoff until it works
// or ctx ends: at start-up the server may not be up yet.
func connect(ctx context.Context, url string, cfg NATSConfig, log *slog.Logger, refused *refusals, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := connectOptions(cfg, log, refused)
	if err != nil {
		return nil, err
	}
	opts = append(opts, extra...)
	delay := backoff(time.Duration(cfg.ReconnectWait), time.Duration(cfg.ReconnectMaxWait))
	for attempt := 1; ; attempt++ {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			return nc, nil
		}
		if permanentConnectError(err) {
			return nil, fmt.Errorf("connect to NATS %s: %w", redact(url), err)
		}
		wait := delay(attempt)
		log.Warn("cannot connect to NATS; retrying", "url", redact(url), "err", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to NATS %s: %w (last error: %v)", redact(url), ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// permanentConnectError: errors no retry can fix (refused credentials,
// unreadable credential files, TLS set-up), as opposed to a server that
// is not up yet. Classified by the errors' types, never their text.
func permanentConnectError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		path     *fs.PathError
	)
	for _, target := range []error{nats.ErrAuthorization, nats.ErrAuthExpired, nats.ErrAuthRevoked, nats.ErrAccountAuthExpired,
		nats.ErrSecureConnRequired, nats.ErrSecureConnWanted, nats.ErrClientCertOrRootCAsRequired,
		nkeys.ErrInvalidSeed, nkeys.ErrInvalidEncoding, nkeys.ErrInvalidPrefixByte} {
		if errors.Is(err, target) {
			return true
		}
	}
	return errors.As(err, &verify) || errors.As(err, &record) || errors.As(err, &unknown) ||
		errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &path)
}

// redact hides passwords in URLs for logs.
func redact(url string) string {
	if i := strings.Index(url, "@"); i > 0 {
		if j := strings.Index(url, "://"); j >= 0 && j < i {
			return url[:j+3] + "***" + url[i:]
		}
	}
	return url
}
