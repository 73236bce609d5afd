// Command paliprompt turns reference images into SDXL prompts with regional
// conditioning masks, served on NATS.
//
//	paliprompt serve [-config config.toml]
//	paliprompt run   [-config config.toml] [-out DIR] [-task T] [-objects "a ; b"] [-lang en] [-verify RESULT.json] FILE...
//	paliprompt check [-config config.toml] [-permissions]
//	paliprompt demo  [-config config.toml] [-out out/demo] [-examples examples]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"

	"github.com/schollz/progressbar/v3"

	"paliprompt/grounding"
	"paliprompt/grounding/paligemma"
	"paliprompt/plugin"
	"paliprompt/sdxl"
)

// version is set at build time: go build -ldflags "-X main.version=1.2.3".
var version = ""

const usage = `paliprompt turns a reference image into SDXL prompts with regional masks.

Usage:
  paliprompt serve [-config F]        serve on NATS (embedded server when nats.url is empty)
  paliprompt run   [-config F] [-out DIR] [-task T] [-objects "a ; b"] [-lang L] [-verify RESULT.json] FILE...
                                      the same pipeline on image or JSON request files, no NATS
  paliprompt check [-config F] [-permissions]
                                      check NATS (and its security), model, ONNX Runtime
                                      and mask decoder; -permissions: the NATS permissions needed
  paliprompt demo  [-config F] [-out DIR] [-examples DIR]
                                      embedded NATS + the example requests, then stop
  paliprompt version

Every command reads config.toml (when present); PALIPROMPT_<TABLE>_<KEY>
environment variables override it (PALIPROMPT_NATS_URL, PALIPROMPT_MODEL_DIR, ...).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "run":
		err = runFiles(ctx, args[1:], stdout, stderr)
	case "check":
		err = check(ctx, args[1:], stdout, stderr)
	case "demo":
		err = demo(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, buildVersion())
	default:
		fmt.Fprintf(stderr, "paliprompt: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "paliprompt %s: %v\n", args[0], err)
		}
		return 1
	}
	return 0
}

// common are the flags every command has.
type common struct {
	fs     *flag.FlagSet
	config *string
}

func newFlags(name string, stderr io.Writer) common {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return common{fs: fs, config: fs.String("config", "config.toml", "configuration file")}
}

// load reads the config: a missing config.toml is fine when it was not
// named explicitly (the defaults then apply), an explicit one must exist.
func (c common) load() (plugin.Config, error) {
	path := *c.config
	explicit := false
	c.fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	if _, err := os.Stat(path); err != nil && !explicit && errors.Is(err, os.ErrNotExist) {
		path = ""
	}
	return plugin.LoadConfig(path, os.LookupEnv)
}

func logger(cfg plugin.Config, w io.Writer, minLevel slog.Level) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: max(level, minLevel)}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// deps are the grounding pieces the plugin is given. progress receives the
// model load's progress bar.
func deps(log *slog.Logger, out, progress io.Writer) plugin.Deps {
	return plugin.Deps{
		NewModel: func(cfg grounding.ModelConfig) (grounding.Grounder, error) {
			return paligemma.New(cfg, loadProgress(progress))
		},
		CheckModel: func(cfg grounding.ModelConfig) (string, error) {
			r := paligemma.Check(cfg)
			return r.String(), r.Err()
		},
		LoadMasks: func(path string) (grounding.MaskDecoder, error) {
			return grounding.LoadMaskDecoder(path)
		},
		LoadTokenCounter: func(path string) (sdxl.TokenCounter, error) {
			return paligemma.LoadTokenCounter(path)
		},
		Version: buildVersion(),
		Log:     log,
		Out:     out,
	}
}

// loadProgress shows the model load as a progress bar.
func loadProgress(w io.Writer) paligemma.LoadProgress {
	var bar *progressbar.ProgressBar
	return func(done, total int, step string) {
		if bar == nil {
			bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(w),
				progressbar.OptionSetDescription("loading model"), progressbar.OptionShowCount())
		}
		bar.Describe("loading model: " + step)
		_ = bar.Set(done)
		if done >= total {
			_ = bar.Finish()
			fmt.Fprintln(w)
		}
	}
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFlags("serve", stderr)
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	p, err := plugin.New(cfg, deps(logger(cfg, stderr, slog.LevelDebug), stdout, stderr))
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Serve(ctx)
}

func runFiles(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFlags("run", stderr)
	out := c.fs.String("out", "out/run", "folder for result JSON and PNGs")
	task := c.fs.String("task", "", fmt.Sprintf("endpoint, one of %v (default: layout for JSON with width/height, else generate)", plugin.Endpoints()))
	objects := c.fs.String("objects", "", `objects to detect and segment in image files, "cat ; dog"`)
	lang := c.fs.String("lang", "", "language of captions (default en)")
	profile := c.fs.String("cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	plan := c.fs.String("verify", "", "a generate or layout result JSON (as run writes it): check each FILE, a generated image, against its plan")
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	if *profile != "" {
		stop, err := startCPUProfile(*profile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if c.fs.NArg() == 0 {
		return errors.New("no files: give image or JSON request files (paliprompt run [-out DIR] FILE...)")
	}
	if *task != "" && !slices.Contains(plugin.Endpoints(), plugin.Endpoint(*task)) {
		return fmt.Errorf("-task %q: use one of %v", *task, plugin.Endpoints())
	}
	if *plan != "" && *task != "" && *task != string(plugin.EndpointVerify) {
		return fmt.Errorf("-verify checks generated images: leave out -task %s", *task)
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	p, err := plugin.New(cfg, deps(logger(cfg, stderr, slog.LevelWarn), stdout, stderr))
	if err != nil {
		return err
	}
	defer p.Close()
	var names []string
	if *objects != "" {
		names = strings.Split(*objects, ";")
	}
	return p.RunFiles(ctx, c.fs.Args(), plugin.RunOptions{
		Out: *out, Endpoint: plugin.Endpoint(*task), Objects: names, Lang: *lang, Plan: *plan, Progress: stderr,
	}, stdout)
}

// startCPUProfile profiles the process until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func check(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFlags("check", stderr)
	perms := c.fs.Bool("permissions", false, "print the NATS permissions paliprompt needs with this configuration (nats-server config and nsc commands), and nothing else")
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	if *perms {
		plugin.WritePermissions(stdout, cfg)
		return nil
	}
	fmt.Fprintf(stdout, "paliprompt %s, config %s\n", buildVersion(), configName(*c.config))
	return plugin.Check(ctx, cfg, deps(logger(cfg, stderr, slog.LevelWarn), stdout, stderr), stdout)
}

func configName(path string) string {
	if _, err := os.Stat(path); err != nil {
		return "defaults (" + path + " not found)"
	}
	return path
}

func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFlags("demo", stderr)
	out := c.fs.String("out", "out/demo", "folder for the replies, masks and events")
	examples := c.fs.String("examples", "examples", "folder with requests/<task>-<name>.json")
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	// The summary table is the demo's output; logs only for problems.
	return plugin.Demo(ctx, cfg, deps(logger(cfg, stderr, slog.LevelWarn), nil, stderr), plugin.DemoOptions{Examples: *examples, Out: *out}, stdout)
}

var semver = regexp.MustCompile(`^v?(\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?)$`)

// buildVersion is the service version: set with -ldflags, else the module
// version `go install` recorded, else a development version with the VCS
// revision when the build recorded one.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "0.1.0-dev"
	}
	if m := semver.FindStringSubmatch(info.Main.Version); m != nil {
		return m[1]
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 7 {
			return "0.1.0-dev+" + s.Value[:7]
		}
	}
	return "0.1.0-dev"
}
