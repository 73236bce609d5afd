package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"paliprompt/core"

	"github.com/nats-io/nats.go"
	"github.com/schollz/progressbar/v3"
)

// RunOptions are the flags of `paliprompt run`.
type RunOptions struct {
	// Out is the folder for result JSON and PNGs.
	Out string
	// Endpoint for every file; empty: layout for a JSON file with width
	// and height, generate otherwise.
	Endpoint Endpoint
	// Objects and Lang apply to image files (JSON files carry their own).
	Objects []string
	Lang    string
	// Plan is a generate or layout result file (as run writes it): every
	// file is then a generated image to verify against it.
	Plan string
	// Progress receives a progress bar when there is more than one file.
	Progress io.Writer
}

// RunFiles runs the pipeline on files without NATS: images, or JSON
// requests as sent to the service. For each it writes <out>/<id>.json and
// the PNGs beside it in <out>/<id>/, then prints a summary table to w. It
// fails when any file failed.
func (p *Plugin) RunFiles(ctx context.Context, files []string, opts RunOptions, w io.Writer) error {
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return fmt.Errorf("create output folder: %w", err)
	}
	bar := newBar(len(files), opts.Progress, "grounding files")
	var rows []summaryRow
	failed := 0
	for _, file := range files {
		row := p.runFile(ctx, file, opts)
		if row.code != 0 {
			failed++
		}
		rows = append(rows, row)
		_ = bar.Add(1)
	}
	_ = bar.Finish()
	writeSummary(w, rows)
	fmt.Fprintf(w, "\nresults in %s\n", opts.Out)
	if failed > 0 {
		return fmt.Errorf("%d of %d files failed", failed, len(files))
	}
	return nil
}

func newBar(n int, w io.Writer, what string) *progressbar.ProgressBar {
	if w == nil || n < 2 {
		return progressbar.DefaultSilent(int64(n))
	}
	return progressbar.NewOptions(n, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
}

func (p *Plugin) runFile(ctx context.Context, file string, opts RunOptions) summaryRow {
	start := time.Now()
	row := p.runOne(ctx, file, opts)
	row.ms = float64(time.Since(start).Microseconds()) / 1e3
	return row
}

func (p *Plugin) runOne(ctx context.Context, file string, opts RunOptions) summaryRow {
	row := summaryRow{name: filepath.Base(file)}
	data, err := os.ReadFile(file)
	if err != nil {
		row.fail(err)
		return row
	}
	header := nats.Header{}
	if len(opts.Objects) > 0 {
		header.Set(core.ArgObjects.Header, strings.Join(opts.Objects, " ; "))
	}
	if opts.Lang != "" {
		header.Set(core.ArgLang.Header, opts.Lang)
	}
	row.task = fileEndpoint(opts.Endpoint, data)
	if opts.Plan != "" {
		row.task = EndpointVerify
	}
	req, err := decodeRequest(row.task, header, data, limitsOf(p.cfg))
	if err == nil && opts.Plan != "" {
		err = readPlanFile(&req, opts.Plan)
	}
	if err != nil {
		row.fail(err)
		return row
	}
	if req.ID == "" {
		req.ID = idFromName(file)
	}
	if req.Endpoint == EndpointVerify {
		return p.runVerify(ctx, req, opts.Out, row)
	}
	reply, err := p.pipe.Process(ctx, req, nil)
	if err != nil {
		row.fail(err)
		return row
	}
	row.fill(reply)
	if err := writeReplyFiles(opts.Out, reply); err != nil {
		row.fail(fmt.Errorf("write results: %w", err))
	}
	return row
}

// runVerify checks one generated image and writes <out>/<id>.json.
func (p *Plugin) runVerify(ctx context.Context, req Request, out string, row summaryRow) summaryRow {
	reply, err := p.pipe.Verify(ctx, req, nil)
	if err != nil {
		row.fail(err)
		return row
	}
	row.objects, row.caption = len(reply.Found), reply.Summary
	data, err := reply.encodeTimed(reply)
	if err == nil {
		err = writeIndented(filepath.Join(out, reply.ID+".json"), data)
	}
	if err != nil {
		row.fail(fmt.Errorf("write results: %w", err))
	}
	return row
}

// readPlanFile sets the request's plan from a result file; its masks are
// named relative to the file's folder.
func readPlanFile(req *Request, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return core.Errorf(core.ErrBadRequest, "plan: %v", err)
	}
	pj, err := decodePlan(data)
	if err != nil {
		return fmt.Errorf("plan %s: %w", file, err)
	}
	req.Plan, req.planDir = pj, filepath.Dir(file)
	return nil
}

// fileEndpoint: the endpoint asked for, else layout for JSON with an
// image size ("width"), else generate. Files for `paliprompt run` and
// references on the event bus are told apart this way.
func fileEndpoint(ep Endpoint, data []byte) Endpoint {
	if ep != "" {
		return ep
	}
	var probe struct {
		Width *int `json:"width"`
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) && json.Unmarshal(data, &probe) == nil && probe.Width != nil {
		return EndpointLayout
	}
	return EndpointGenerate
}

var notID = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// idFromName makes a request id from a file name.
func idFromName(file string) string {
	base := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	id := strings.Trim(notID.ReplaceAllString(base, "-"), "-")
	if id == "" {
		id = "file"
	}
	return id[:min(len(id), 128)]
}

// writeReplyFiles writes <dir>/<id>.json with its PNGs as files in
// <dir>/<id>/ (named in the JSON by "file", relative to dir).
func writeReplyFiles(dir string, r *Reply) error {
	blobs := r.blobs()
	if len(blobs) > 0 {
		if err := os.MkdirAll(filepath.Join(dir, r.ID), 0o755); err != nil {
			return err
		}
	}
	for _, b := range blobs {
		if b.PNG == nil {
			continue
		}
		rel := r.ID + "/" + b.name
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(rel)), b.PNG, 0o644); err != nil {
			return err
		}
		b.PNG, b.File = nil, rel
	}
	if r.SDXL != nil && len(r.SDXL.ComfyUI) > 0 {
		// The graph on its own, for ComfyUI's /prompt API; its LoadImage
		// nodes name the mask PNGs beside it (copy them to ComfyUI's input
		// folder).
		if err := os.MkdirAll(filepath.Join(dir, r.ID), 0o755); err != nil {
			return err
		}
		if err := writeJSONFile(filepath.Join(dir, r.ID, "comfyui-api.json"), r.SDXL.ComfyUI); err != nil {
			return err
		}
	}
	// Each A1111/Forge request body on its own, to POST as it is (curl
	// --data @file ...<endpoint>); the result JSON names the files.
	if err := r.movePayloads(func(name string, body []byte) (*Blob, error) {
		rel := r.ID + "/" + name
		if err := os.MkdirAll(filepath.Join(dir, r.ID), 0o755); err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, body, "", "  "); err != nil {
			return nil, err
		}
		buf.WriteByte('\n')
		return &Blob{File: rel, Bytes: buf.Len()}, os.WriteFile(filepath.Join(dir, filepath.FromSlash(rel)), buf.Bytes(), 0o644)
	}); err != nil {
		return err
	}
	data, err := r.encode()
	if err != nil {
		return err
	}
	return writeIndented(filepath.Join(dir, r.ID+".json"), data)
}

// writeIndented writes JSON indented, for people to read.
func writeIndented(path string, data []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		return err
	}
	return os.WriteFile(path, append(buf.Bytes(), '\n'), 0o644)
}

func writeJSONFile(path string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// summaryRow is one line of the summary table of run and demo.
type summaryRow struct {
	name    string
	task    Endpoint
	via     string // "request" or "event" (demo)
	objects int
	skipped int
	caption string
	// placed lists the layout's objects as "label@quadrant"; prompt is the
	// SDXL global prompt (generate and layout only).
	placed []string
	prompt string
	ms     float64
	// code and desc describe a failure; code 0 is success.
	code int
	desc string
}

func (s *summaryRow) fail(err error) {
	s.code, s.desc = core.Code(err), core.Describe(err)
}

func (s *summaryRow) fill(r *Reply) {
	s.objects, s.skipped, s.caption = len(r.Objects), len(r.Skipped), r.Caption
	if r.Layout != nil {
		for _, o := range r.Layout.Objects {
			s.placed = append(s.placed, o.Label+"@"+o.Quadrant)
		}
	}
	if r.SDXL != nil {
		s.prompt = r.SDXL.Positive
	}
}

func writeSummary(w io.Writer, rows []summaryRow) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REQUEST\tTASK\tVIA\tRESULT\tOBJECTS\tSKIPPED\tMS\tCAPTION\tLAYOUT (label@quadrant)\tGLOBAL PROMPT")
	for _, r := range rows {
		result := "ok"
		if r.code != 0 {
			result = fmt.Sprintf("%d: %s", r.code, shorten(r.desc, 60))
		}
		via := r.via
		if via == "" {
			via = "file"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%.0f\t%s\t%s\t%s\n", r.name, r.task, via, result, r.objects, r.skipped, r.ms,
			shorten(r.caption, 48), shorten(strings.Join(r.placed, ", "), 64), shorten(r.prompt, 72))
	}
	_ = tw.Flush()
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
