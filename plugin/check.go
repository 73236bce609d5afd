package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Check reports whether everything the configuration needs is in place:
// the NATS server (or what the embedded one needs), the model through
// deps.CheckModel, and the mask decoder. It prints one line per item to w
// and fails when any item failed.
func Check(ctx context.Context, cfg Config, deps Deps, w io.Writer) error {
	c := checker{w: w}
	if cfg.NATS.URL == "" {
		c.check("NATS", func() (string, error) { return checkEmbedded(cfg) })
	} else {
		c.check("NATS", func() (string, error) { return checkExternal(ctx, cfg) })
	}
	switch {
	case cfg.Model.Dir == "":
		c.info("model", "none configured (model.dir is empty): only requests that carry PaliGemma output text are answered")
	case deps.CheckModel == nil:
		c.report("model", "", fmt.Errorf("model.dir is %s, but this build has no model grounder", cfg.Model.Dir))
	default:
		// grounding's report has one line per piece (files, ONNX Runtime
		// and its version, provider, tokenizer, mask decoder).
		report, err := deps.CheckModel(cfg.Model)
		if err != nil {
			err = fmt.Errorf("%s is not usable (the lines below say why)", cfg.Model.Dir)
		}
		c.report("model", cfg.Model.Dir, err)
		for _, line := range strings.Split(strings.TrimSpace(report), "\n") {
			fmt.Fprintf(w, "      %s\n", line)
		}
	}
	if cfg.Model.Dir == "" {
		c.check("mask decoder", func() (string, error) { return checkMasks(cfg, deps) })
	}
	if c.failed > 0 {
		return fmt.Errorf("%d check(s) failed", c.failed)
	}
	return nil
}

type checker struct {
	w      io.Writer
	failed int
}

func (c *checker) report(item, detail string, err error) {
	if err != nil {
		c.failed++
		fmt.Fprintf(c.w, "FAIL  %-13s %v\n", item, err)
		return
	}
	fmt.Fprintf(c.w, "ok    %-13s %s\n", item, detail)
}

func (c *checker) check(item string, f func() (string, error)) {
	detail, err := f()
	c.report(item, detail, err)
}

func (c *checker) info(item, detail string) {
	fmt.Fprintf(c.w, "info  %-13s %s\n", item, detail)
}

// checkEmbedded: the store is writable and the port is free.
func checkEmbedded(cfg Config) (string, error) {
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

// checkExternal connects once (no retries) and asks for JetStream.
func checkExternal(ctx context.Context, cfg Config) (string, error) {
	opts, err := connectOptions(cfg.NATS, slog.New(slog.DiscardHandler))
	if err != nil {
		return "", err
	}
	nc, err := nats.Connect(cfg.NATS.URL, append(opts, nats.Timeout(5*time.Second), nats.MaxReconnects(0))...)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", redact(cfg.NATS.URL), err)
	}
	defer nc.Close()
	detail := fmt.Sprintf("%s (server %s, max payload %d bytes)", nc.ConnectedUrlRedacted(), nc.ConnectedServerVersion(), nc.MaxPayload())
	js, err := jetstream.New(nc)
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err = js.AccountInfo(ctx)
	}
	if err != nil {
		if !cfg.Events.Enabled {
			return detail + "; no JetStream: image_object and large masks unavailable", nil
		}
		return "", fmt.Errorf("%s: JetStream is not available (%v); the event bus needs it (or set events.enabled = false)", detail, err)
	}
	return detail + ", JetStream available", nil
}

func checkMasks(cfg Config, deps Deps) (string, error) {
	path := cfg.Model.MaskDecoderPath()
	if path == "" {
		return "none configured: segment output is answered with 503", nil
	}
	if _, err := os.Stat(path); err != nil {
		if cfg.Model.MaskDecoder == "" && errors.Is(err, os.ErrNotExist) {
			return fmt.Sprintf("none (%s not found): segment output is answered with 503", path), nil
		}
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if deps.LoadMasks == nil {
		return "", fmt.Errorf("%s: this build cannot load mask decoders", path)
	}
	if _, err := deps.LoadMasks(path); err != nil {
		return "", err
	}
	return path + " loads", nil
}
