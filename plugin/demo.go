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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// DemoOptions are the flags of `paliprompt demo`.
type DemoOptions struct {
	// Examples is the folder with requests/<task>-<name>.json.
	Examples string
	// Out receives the replies, their PNGs and the event bus results.
	Out string
}

// Demo runs the whole service end to end on this machine and stops: an
// embedded NATS server (any free port, a temporary store), the plugin,
// every example request sent to its endpoint (named by the file name's
// first word), and every generate example published on the event bus.
// Replies and events are written to opts.Out with their PNGs, and a
// summary table is printed to w.
func Demo(ctx context.Context, cfg Config, deps Deps, opts DemoOptions, w io.Writer) error {
	files, err := filepath.Glob(filepath.Join(opts.Examples, "requests", "*.json"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no example requests in %s/requests (run the demo from the repository root)", opts.Examples)
	}
	sort.Strings(files)
	store, err := os.MkdirTemp("", "paliprompt-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(store)
	cfg.NATS.URL, cfg.NATS.Embedded.Port, cfg.NATS.Embedded.StoreDir = "", -1, ""
	cfg.DataDir, cfg.Events.Enabled = store, true

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

	nc, err := nats.Connect(p.URL())
	if err != nil {
		return err
	}
	defer nc.Close()
	d := demo{cfg: cfg, nc: nc, out: opts.Out}
	if err := os.MkdirAll(filepath.Join(opts.Out, "events"), 0o755); err != nil {
		return err
	}
	uploaded, err := d.uploadImages(ctx, filepath.Join(opts.Examples, "images"))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "paliprompt demo: embedded NATS at %s, grounder %q, %d example requests, %d images in bucket %s\n\n",
		p.URL(), p.pipe.Stats().Grounder, len(files), uploaded, cfg.Objects.ImagesBucket)
	rows := d.requests(files)
	rows = append(rows, d.events(ctx, files)...)
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
	out string
}

// uploadImages puts the example images into the images bucket, named by
// their file names, for the requests that use image_object.
func (d demo) uploadImages(ctx context.Context, dir string) (int, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	js, err := jetstream.New(d.nc)
	if err != nil {
		return 0, err
	}
	store, err := js.ObjectStore(ctx, d.cfg.Objects.ImagesBucket)
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

// exampleTask is the task named by an example file: <task>-<name>.json.
func exampleTask(file string) (Task, error) {
	word, _, _ := strings.Cut(filepath.Base(file), "-")
	for _, t := range Tasks {
		if string(t) == word {
			return t, nil
		}
	}
	return "", fmt.Errorf("%s: the file name must start with a task (%v)", file, Tasks)
}

// requests sends each example to its endpoint.
func (d demo) requests(files []string) []summaryRow {
	var rows []summaryRow
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		row := summaryRow{name: name, via: "request"}
		start := time.Now()
		reply, err := d.request(file, &row)
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

func (d demo) request(file string, row *summaryRow) (*Reply, error) {
	task, err := exampleTask(file)
	if err != nil {
		return nil, err
	}
	row.task = task
	body, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: d.cfg.Service.SubjectPrefix + "." + string(task), Data: body, Header: nats.Header{"Content-Type": {"application/json"}}}
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
	return &reply, nil
}

// events publishes the generate examples on the event bus and collects
// their results (or failures) from the results subjects.
func (d demo) events(ctx context.Context, files []string) []summaryRow {
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
		return []summaryRow{{name: "event bus", via: "event", code: CodeInternal, desc: err.Error()}}
	}
	pending := map[string]*summaryRow{}
	var order []string
	for _, file := range files {
		if task, _ := exampleTask(file); task != TaskGenerate {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		id := "event-" + name
		row := &summaryRow{name: name, task: TaskGenerate, via: "event"}
		pending[id], order = row, append(order, id)
		body, err := os.ReadFile(file)
		if err == nil {
			// The reference's id comes from its subject: drop the JSON id.
			body, err = withoutID(body)
		}
		if err == nil {
			err = d.publish(ctx, ev.Subjects, id, body)
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
func (d demo) publish(ctx context.Context, subjects []string, id string, body []byte) error {
	if !strings.HasSuffix(subjects[0], ".>") {
		return fmt.Errorf("events.subjects[0] %q does not end in \".>\": the demo cannot name a reference subject", subjects[0])
	}
	subject := strings.TrimSuffix(subjects[0], ">") + id
	js, err := jetstream.New(d.nc)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{"Content-Type": {"application/json"}}}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
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
					row.code, row.desc = CodeDeadline, "no result event arrived"
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
		if err := writeReplyFiles(filepath.Join(d.out, "events"), &reply); err != nil {
			row.fail(err)
		}
		return
	}
	_ = os.WriteFile(filepath.Join(d.out, "events", id+".json"), m.Data, 0o644)
}
