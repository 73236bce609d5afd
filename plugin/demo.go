package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"paliprompt/core"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// DemoOptions are the flags of `paliprompt demo`.
type DemoOptions struct {
	// Examples is the folder with requests/<task>-<name>.json (PaliGemma
	// output text, answered by the text grounder) and scenes/*.png (images
	// the model grounds; sent only when a model is loaded).
	Examples string
	// Out receives the replies, their PNGs and the event bus results.
	Out string
}

// Demo runs the whole service end to end on this machine and stops: an
// embedded NATS server (any free port, a temporary store), the plugin,
// every example request sent to its endpoint (named by the file name's
// first word), every scene image sent to generate as raw bytes (as the
// nats CLI sends a file), and every generate example and scene published
// on the event bus. Replies and events are written to opts.Out with their
// PNGs, and a summary table is printed to w.
func Demo(ctx context.Context, cfg Config, deps Deps, opts DemoOptions, w io.Writer) error {
	store, err := os.MkdirTemp("", "paliprompt-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(store)
	cfg.NATS.URL, cfg.NATS.Embedded.Port, cfg.NATS.Embedded.StoreDir = "", -1, ""
	cfg.DataDir, cfg.Events.Enabled = store, true
	// The demo's own server, for this machine and the demo's client only:
	// no logins, no TLS, whatever config.toml sets for serve.
	e := &cfg.NATS.Embedded
	e.Host, e.Users, e.Token, e.Nkeys, e.TLSCert, e.TLSKey, e.TLSCA = "127.0.0.1", nil, "", nil, "", "", ""

	p, err := New(cfg, deps)
	if err != nil {
		return err
	}
	defer p.Close()
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- p.Serve(serveCtx) }()
	defer func() { stop(); <-served }()
	select {
	case <-p.Ready():
	case err := <-served:
		served <- err
		return fmt.Errorf("start the service: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}

	stats := p.pipe.Stats()
	examples, err := loadExamples(opts.Examples, stats.Grounder == "model")
	if err != nil {
		return err
	}
	nc, err := nats.Connect(p.URL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	d := demo{cfg: cfg, nc: nc, js: js, out: opts.Out}
	if err := os.MkdirAll(filepath.Join(opts.Out, "events"), 0o755); err != nil {
		return err
	}
	uploaded, err := d.uploadImages(ctx, filepath.Join(opts.Examples, "images"))
	if err != nil {
		return err
	}
	model := "no model (model.dir is empty): scene images skipped"
	if stats.Grounder == "model" {
		model = fmt.Sprintf("model %s on %s", stats.ModelDir, stats.Provider)
	}
	fmt.Fprintf(w, "paliprompt demo: embedded NATS at %s, %s, %d examples, %d images in bucket %s\n\n",
		p.URL(), model, len(examples), uploaded, cfg.Objects.ImagesBucket)
	rows := d.requests(examples)
	rows = append(rows, d.events(ctx, examples)...)
	writeSummary(w, rows)
	failed := 0
	for _, r := range rows {
		if r.code != 0 {
			failed++
		}
	}
	fmt.Fprintf(w, "\nreplies in %s/<id>.json (masks as PNG in %s/<id>/), event bus results in %s/events/\n", opts.Out, opts.Out, opts.Out)
	if failed > 0 {
		return fmt.Errorf("%d of %d demo requests failed", failed, len(rows))
	}
	return nil
}

type demo struct {
	cfg Config
	nc  *nats.Conn
	js  jetstream.JetStream
	out string
}

// uploadImages puts the example images into the images bucket, named by
// their file names, for the requests that use image_object.
func (d demo) uploadImages(ctx context.Context, dir string) (int, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	store, err := d.js.ObjectStore(ctx, d.cfg.Objects.ImagesBucket)
	if err != nil {
		return 0, fmt.Errorf("images bucket %s: %w", d.cfg.Objects.ImagesBucket, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		if _, err := store.PutBytes(ctx, filepath.Base(f), data); err != nil {
			return 0, fmt.Errorf("put %s into bucket %s: %w", f, d.cfg.Objects.ImagesBucket, err)
		}
	}
	return len(files), nil
}

// example is one input of the demo: a JSON request file, or a scene
// image sent as raw bytes to generate.
type example struct {
	name string
	task Endpoint
	body []byte
	json bool
}

// loadExamples reads requests/*.json, and scenes/*.png when a model is
// there to ground them.
func loadExamples(dir string, withScenes bool) ([]example, error) {
	files, err := filepath.Glob(filepath.Join(dir, "requests", "*.json"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no example requests in %s/requests (run the demo from the repository root)", dir)
	}
	sort.Strings(files)
	var examples []example
	for _, file := range files {
		task, err := exampleEndpoint(file)
		if err != nil {
			return nil, err
		}
		body, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		examples = append(examples, example{name: strings.TrimSuffix(filepath.Base(file), ".json"), task: task, body: body, json: true})
	}
	if !withScenes {
		return examples, nil
	}
	scenes, _ := filepath.Glob(filepath.Join(dir, "scenes", "*.png"))
	sort.Strings(scenes)
	for _, file := range scenes {
		body, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		examples = append(examples, example{name: strings.TrimSuffix(filepath.Base(file), ".png"), task: EndpointGenerate, body: body})
	}
	return examples, nil
}

// exampleEndpoint is the endpoint named by an example file:
// <endpoint>-<name>.json.
func exampleEndpoint(file string) (Endpoint, error) {
	word, _, _ := strings.Cut(filepath.Base(file), "-")
	for _, ep := range Endpoints() {
		if string(ep) == word {
			return ep, nil
		}
	}
	return "", fmt.Errorf("%s: the file name must start with an endpoint (%v)", file, Endpoints())
}

// message is the NATS message the nats CLI would send for the example:
// JSON with its content type, an image as raw bytes named by a header.
func (e example) message(subject, id string) *nats.Msg {
	msg := &nats.Msg{Subject: subject, Data: e.body, Header: nats.Header{}}
	if e.json {
		msg.Header.Set("Content-Type", "application/json")
	} else if id != "" {
		msg.Header.Set(HeaderID, id)
	}
	return msg
}

// requests sends each example to its endpoint.
func (d demo) requests(examples []example) []summaryRow {
	var rows []summaryRow
	for _, ex := range examples {
		row := summaryRow{name: ex.name, task: ex.task, via: "request"}
		start := time.Now()
		reply, err := d.request(ex, &row)
		row.ms = float64(time.Since(start).Microseconds()) / 1e3
		if err == nil {
			row.fill(reply)
			err = writeReplyFiles(d.out, reply)
		}
		if err != nil && row.code == 0 {
			row.fail(err)
		}
		rows = append(rows, row)
	}
	return rows
}

func (d demo) request(ex example, row *summaryRow) (*Reply, error) {
	msg := ex.message(d.cfg.Service.SubjectPrefix+"."+string(ex.task), ex.name)
	resp, err := d.nc.RequestMsg(msg, time.Duration(d.cfg.Queue.Timeout)+5*time.Second)
	if err != nil {
		return nil, err
	}
	if code := resp.Header.Get(micro.ErrorCodeHeader); code != "" {
		row.code, _ = strconv.Atoi(code)
		row.desc = resp.Header.Get(micro.ErrorHeader)
		return nil, errors.New(row.desc)
	}
	var reply Reply
	if err := json.Unmarshal(resp.Data, &reply); err != nil {
		return nil, fmt.Errorf("decode reply: %w", err)
	}
	reply.nameBlobs()
	if err := d.fetchBlobs(&reply); err != nil {
		return nil, err
	}
	return &reply, nil
}

// fetchBlobs downloads the PNGs the reply left in the results bucket
// (those over objects.inline_mask_bytes, e.g. the preview of a noisy
// scene), so that out/demo holds every file of every reply.
func (d demo) fetchBlobs(r *Reply) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, b := range r.blobs() {
		if b == nil || b.PNG != nil || b.Object == "" {
			continue
		}
		store, err := d.js.ObjectStore(ctx, b.Bucket)
		if err != nil {
			return fmt.Errorf("results bucket %s: %w", b.Bucket, err)
		}
		if b.PNG, err = store.GetBytes(ctx, b.Object); err != nil {
			return fmt.Errorf("get %s from bucket %s: %w", b.Object, b.Bucket, err)
		}
	}
	return nil
}

// events publishes the generate examples on the event bus and collects
// their results (or failures) from the results subjects.
func (d demo) events(ctx context.Context, examples []example) []summaryRow {
	ev := d.cfg.Events
	got := make(chan *nats.Msg, 64)
	sub, err := d.nc.ChanSubscribe(ev.ReadySubject+".>", got)
	if err == nil {
		defer sub.Unsubscribe()
		var fsub *nats.Subscription
		if fsub, err = d.nc.ChanSubscribe(ev.FailedSubject+".>", got); err == nil {
			defer fsub.Unsubscribe()
		}
	}
	if err != nil {
		return []summaryRow{{name: "event bus", via: "event", code: core.ErrInternal.Code(), desc: err.Error()}}
	}
	pending := map[string]*summaryRow{}
	var order []string
	for _, ex := range examples {
		if ex.task != EndpointGenerate {
			continue
		}
		id := "event-" + ex.name
		row := &summaryRow{name: ex.name, task: EndpointGenerate, via: "event"}
		pending[id], order = row, append(order, id)
		var err error
		if ex.json {
			// The reference's id comes from its subject: drop the JSON id.
			ex.body, err = withoutID(ex.body)
		}
		if err == nil {
			err = d.publish(ctx, ev.Subjects, id, ex)
		}
		if err != nil {
			row.fail(err)
			delete(pending, id)
		}
	}
	d.collect(ctx, got, pending)
	rows := make([]summaryRow, 0, len(order))
	for _, id := range order {
		if r, ok := pending[id]; ok {
			rows = append(rows, *r)
		}
	}
	return rows
}

// publish puts a reference on the event bus, waiting for JetStream's ack.
func (d demo) publish(ctx context.Context, subjects []string, id string, ex example) error {
	if !strings.HasSuffix(subjects[0], ".>") {
		return fmt.Errorf("events.subjects[0] %q does not end in \".>\": the demo cannot name a reference subject", subjects[0])
	}
	subject := strings.TrimSuffix(subjects[0], ">") + id
	if _, err := d.js.PublishMsg(ctx, ex.message(subject, "")); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}

func withoutID(body []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	delete(m, "id")
	return json.Marshal(m)
}

// collect waits for the result or failure event of every pending id.
func (d demo) collect(ctx context.Context, got <-chan *nats.Msg, pending map[string]*summaryRow) {
	start := time.Now()
	timeout := time.After(time.Duration(d.cfg.Queue.Timeout) + 10*time.Second)
	for left := len(pending); left > 0; {
		select {
		case m := <-got:
			id := m.Subject[strings.LastIndex(m.Subject, ".")+1:]
			row, ok := pending[id]
			if !ok || row.ms != 0 {
				continue
			}
			left--
			row.ms = float64(time.Since(start).Microseconds()) / 1e3
			d.settle(row, id, m)
		case <-timeout:
			for _, row := range pending {
				if row.ms == 0 && row.code == 0 {
					row.code, row.desc = core.ErrDeadline.Code(), "no result event arrived"
				}
			}
			return
		case <-ctx.Done():
			return
		}
	}
}

func (d demo) settle(row *summaryRow, id string, m *nats.Msg) {
	var probe struct {
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &probe); err != nil {
		row.fail(err)
		return
	}
	if probe.Error != nil {
		row.code, row.desc = probe.Error.Code, probe.Error.Description
	}
	var reply Reply
	if err := json.Unmarshal(m.Data, &reply); err == nil && probe.Error == nil {
		reply.nameBlobs()
		row.fill(&reply)
		err := d.fetchBlobs(&reply)
		if err == nil {
			err = writeReplyFiles(filepath.Join(d.out, "events"), &reply)
		}
		if err != nil {
			row.fail(err)
		}
		return
	}
	_ = os.WriteFile(filepath.Join(d.out, "events", id+".json"), m.Data, 0o644)
}
