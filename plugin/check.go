package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Check reports whether everything the configuration needs is in place:
// the NATS server (or what the embedded one needs), the model through
// deps.CheckModel, and the mask decoder. It prints one line per item to w
// and fails when any item failed.
func Check(ctx context.Context, cfg Config, deps Deps, w io.Writer) error {
	c := checker{w: w}
	if cfg.NATS.URL == "" {
		c.checkEmbedded(cfg)
	} else {
		c.checkExternal(ctx, cfg)
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

// warn reports a risk the configuration accepts; it is no failure.
func (c *checker) warn(item, detail string) {
	fmt.Fprintf(c.w, "warn  %-13s %s\n", item, detail)
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
