package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"paliprompt/core"
	"paliprompt/grounding"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// securedServer starts a real nats-server with JetStream and logins: admin
// (password admin, every permission: the operator and the test's client)
// and the given users (password = name).
func securedServer(t testing.TB, users map[string]*server.Permissions) *server.Server {
	t.Helper()
	return startServerWith(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "admin", Password: "admin"}}
		for name, perms := range users {
			o.Users = append(o.Users, &server.User{Username: name, Password: name, Permissions: perms})
		}
	})
}

// connectAs connects a test client with a user name and password.
func connectAs(t testing.TB, url, user string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserInfo(user, user))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// exercise runs everything paliprompt does on NATS through a plugin that
// serves as user, and returns the first thing that did not work:
// request/reply with masks too large to inline (results bucket, an object
// replaced), an image_object request (images bucket), micro discovery,
// and on the event bus a reference worked on longer than the ack wait (in
// progress, then ack), a layout reference, one that fails and a
// generated image to verify. admin is the app's side.
func exercise(t *testing.T, srv *server.Server, user string, precreate bool) (*running, error) {
	t.Helper()
	admin := connectAs(t, srv.ClientURL(), "admin")
	js := newJS(t, admin)
	cfg := testConfig(t, srv.ClientURL())
	fastStages(&cfg)
	cfg.NATS.User, cfg.NATS.Password = user, user
	cfg.Objects.InlineMaskBytes = 256 // the masks go to the results bucket
	cfg.Events.MaxDeliver = 1
	cfg.Queue.Timeout = Duration(8 * time.Second)
	deps := Deps{}
	withModel(&cfg, &deps, slowGrounder{time.Duration(cfg.Events.AckWait) / 2})
	if precreate {
		createAhead(t, js, cfg)
	}
	r, err := tryStartPlugin(t, cfg, deps)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	ask := func(subject string, header nats.Header, body map[string]any) (Reply, error) {
		m, err := admin.RequestMsg(&nats.Msg{Subject: subject, Header: header, Data: jsonBody(t, body)}, 15*time.Second)
		if err != nil {
			return Reply{}, fmt.Errorf("request %s: %w", subject, err)
		}
		if code, desc := errorOf(m); code != 0 {
			return Reply{}, fmt.Errorf("request %s: %d %s", subject, code, desc)
		}
		var reply Reply
		return reply, json.Unmarshal(m.Data, &reply)
	}

	if m, err := admin.Request("$SRV.INFO.paliprompt", nil, 5*time.Second); err != nil || !bytes.Contains(m.Data, []byte(`"paliprompt"`)) {
		return r, fmt.Errorf("$SRV.INFO: %v", err)
	}
	segment := "<loc0100><loc0100><loc0900><loc0900>" + seg16(1) + " blob"
	layout := map[string]any{"id": "perm-1", "width": 320, "height": 240, "segment": segment}
	reply, err := ask("paliprompt.v1.layout", nil, layout)
	if err != nil {
		return r, err
	}
	if reply.Preview == nil || reply.Preview.Object == "" {
		return r, fmt.Errorf("preview not in the results bucket: %+v", reply.Preview)
	}
	results, err := js.ObjectStore(ctx, cfg.Objects.ResultsBucket)
	if err != nil {
		return r, err
	}
	if data, err := results.GetBytes(ctx, reply.Preview.Object); err != nil || len(data) != reply.Preview.Bytes {
		return r, fmt.Errorf("preview object: %d bytes, %v", len(data), err)
	}
	if _, err := ask("paliprompt.v1.layout", nil, layout); err != nil { // replaces the objects
		return r, err
	}
	if err := exerciseVerify(t, admin, reply); err != nil {
		return r, err
	}
	images, err := js.ObjectStore(ctx, cfg.Objects.ImagesBucket)
	if err != nil {
		return r, err
	}
	if _, err := images.PutBytes(ctx, "perm.png", scenePNG(t, 300, 200)); err != nil {
		return r, err
	}
	if got, err := ask("paliprompt.v1.generate", jsonHeader, map[string]any{"image_object": "perm.png", "caption": "from the bucket"}); err != nil || got.Image.Width != 300 {
		return r, fmt.Errorf("image_object: %+v %v", got.Image, err)
	}

	publishReference(t, js, "aiviz.reference.perm-slow", nil, scenePNG(t, 16, 16))
	publishReference(t, js, "aiviz.reference.perm-2", jsonHeader, jsonBody(t, map[string]any{"width": 320, "height": 240, "segment": segment}))
	publishReference(t, js, "aiviz.reference.perm-bad", nil, []byte("not an image"))
	// A generated image checked against the plan of reference perm-2.
	publishReference(t, js, "aiviz.generated.perm-2", jsonHeader, jsonBody(t, map[string]any{
		"image_b64": b64(scenePNG(t, 64, 48)), "detect": "<loc0100><loc0100><loc0900><loc0900> blob"}))
	want := []string{"aiviz.prompt.ready.perm-slow", "aiviz.prompt.ready.perm-2", "aiviz.prompt.failed.perm-bad", "aiviz.prompt.verified.perm-2"}
	deadline := time.Now().Add(15 * time.Second)
	for streamMsgs(t, js, "AIVIZ_REFERENCES") > 0 || streamMsgs(t, js, "AIVIZ_PROMPTS") < uint64(len(want)) {
		if time.Now().After(deadline) {
			return r, fmt.Errorf("event bus: %d references left, %d events", streamMsgs(t, js, "AIVIZ_REFERENCES"), streamMsgs(t, js, "AIVIZ_PROMPTS"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, e := range resultEvents(t, js) {
		if i >= len(want) || e.subject != want[i] {
			return r, fmt.Errorf("event %d is %s, want %v", i, e.subject, want)
		}
	}
	if info, err := js.Consumer(ctx, "AIVIZ_REFERENCES", "paliprompt"); err != nil || info.CachedInfo().NumRedelivered > 0 {
		return r, fmt.Errorf("consumer: %v, redelivered: an ack was lost", err)
	}
	if refused := refusedSoFar(r); len(refused) > 0 {
		return r, fmt.Errorf("refused: %s", strings.Join(refused, "; "))
	}
	// `paliprompt check` as the same user: its probe and the instance's stats.
	var report strings.Builder
	_ = Check(ctx, cfg, Deps{LoadMasks: testConfigMasks}, &report)
	if !strings.Contains(report.String(), "info  permissions   none refused to this check") || !strings.Contains(report.String(), ": none refused so far") {
		return r, fmt.Errorf("paliprompt check:\n%s", report.String())
	}
	return r, nil
}

// exerciseVerify checks an image against the plan of a layout result,
// by its id (the plans bucket) and inline (its region masks read from
// the results bucket).
func exerciseVerify(t *testing.T, admin *nats.Conn, plan Reply) error {
	whole, err := json.Marshal(map[string]any{"layout": plan.Layout, "sdxl": plan.SDXL, "masks": plan.Masks})
	if err != nil {
		return err
	}
	img := b64(scenePNG(t, 64, 48))
	detect := "<loc0100><loc0100><loc0900><loc0900> blob"
	for _, body := range []map[string]any{
		{"image_b64": img, "detect": detect, "plan_id": plan.ID},
		{"image_b64": img, "detect": detect, "plan": json.RawMessage(whole)},
	} {
		m, err := admin.RequestMsg(&nats.Msg{Subject: "paliprompt.v1.verify", Header: jsonHeader, Data: jsonBody(t, body)}, 15*time.Second)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if code, desc := errorOf(m); code != 0 {
			return fmt.Errorf("verify: %d %s", code, desc)
		}
		var r VerifyReply
		if err := json.Unmarshal(m.Data, &r); err != nil || len(r.Notes) > 0 || len(r.Objects) != 1 {
			return fmt.Errorf("verify: %v, notes %v, %d objects", err, r.Notes, len(r.Objects))
		}
	}
	return nil
}

// slowGrounder takes d per image: long enough for "in progress" before
// the ack.
type slowGrounder struct{ d time.Duration }

func (s slowGrounder) Ground(ctx context.Context, req grounding.Request) (core.Result, error) {
	select {
	case <-time.After(s.d):
	case <-ctx.Done():
		return core.Result{}, ctx.Err()
	}
	b := req.Image.Bounds()
	return core.Result{Width: b.Dx(), Height: b.Dy(), Caption: "slow"}, nil
}

// createAhead creates the streams, the consumer and the buckets as an
// operator would (examples/nats/setup.sh does the same with the nats CLI).
func createAhead(t *testing.T, js jetstream.JetStream, cfg Config) {
	t.Helper()
	ctx := context.Background()
	ev := cfg.Events
	refs, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: ev.Stream, Subjects: append(slices.Clone(ev.Subjects), ev.GeneratedSubjects...),
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: ev.ResultsStream, Subjects: resultSubjects(ev),
		MaxAge: time.Duration(ev.ResultsMaxAge), Duplicates: time.Duration(ev.DuplicateWindow), Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := refs.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: ev.Consumer, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Duration(ev.AckWait), MaxDeliver: ev.MaxDeliver}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{cfg.Objects.ImagesBucket, cfg.Objects.ResultsBucket, cfg.Objects.PlansBucket} {
		if _, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: b, Storage: jetstream.FileStorage}); err != nil {
			t.Fatal(err)
		}
	}
}

// refusedSoFar are the refusals a running plugin has seen.
func refusedSoFar(r *running) []string {
	list, _ := r.p.refused.list()
	return list
}

// TestLeastPrivilege: a user holding exactly NeededPermissions runs
// request/reply, the Object Store and the event bus, with the streams,
// consumer and buckets made by an operator ahead of time, and with
// paliprompt creating them.
func TestLeastPrivilege(t *testing.T) {
	cfg := DefaultConfig()
	for _, tt := range []struct {
		name      string
		create    bool
		precreate bool
	}{{"created ahead", false, true}, {"self-creating", true, false}} {
		t.Run(tt.name, func(t *testing.T) {
			srv := securedServer(t, map[string]*server.Permissions{"paliprompt": NeededPermissions(cfg, tt.create).server()})
			if _, err := exercise(t, srv, "paliprompt", tt.precreate); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestEveryPermissionIsNeeded: without any one of the permissions (of
// the self-creating set, which holds the other), something fails, or the
// server refuses something and paliprompt says so: the list holds
// nothing paliprompt does not use.
func TestEveryPermissionIsNeeded(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: one server and plugin per permission")
	}
	full := NeededPermissions(DefaultConfig(), true)
	type without struct {
		name string
		p    Permissions
	}
	var cases []without
	for _, kind := range []struct {
		name string
		list func(*Permissions) *[]string
	}{{"publish", func(p *Permissions) *[]string { return &p.Publish }}, {"subscribe", func(p *Permissions) *[]string { return &p.Subscribe }}} {
		for i, entry := range *kind.list(&full) {
			p := full
			*kind.list(&p) = slices.Delete(slices.Clone(*kind.list(&full)), i, i+1)
			cases = append(cases, without{kind.name + " " + entry, p})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // most of the time is JetStream requests timing out
			srv := securedServer(t, map[string]*server.Permissions{"paliprompt": c.p.server()})
			_, err := exercise(t, srv, "paliprompt", false)
			if err == nil {
				t.Fatalf("everything worked without %s", c.name)
			}
			t.Log(err)
		})
	}
}

// logBuffer collects a plugin's log lines for a test to search.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// TestRefusedPermissionsAreNamed: a user without the permissions
// paliprompt needs is refused by the server, and paliprompt stops at once
// with the permission named (from the server's permission-violation
// error) in its error and its log, instead of waiting on JetStream or
// retrying; a permission refused while serving is logged, shown in the
// service stats, and a reference is retried only max_deliver times.
func TestRefusedPermissionsAreNamed(t *testing.T) {
	cfg := DefaultConfig()
	requestsOnly := NeededPermissions(cfg, false)
	requestsOnly.Publish = nil // no JetStream at all
	noResults := NeededPermissions(cfg, false)
	noResults.Publish = slices.DeleteFunc(slices.Clone(noResults.Publish), func(s string) bool { return s == "aiviz.prompt.ready.>" })
	srv := securedServer(t, map[string]*server.Permissions{
		"requests-only": requestsOnly.server(),
		"no-create":     NeededPermissions(cfg, false).server(),
		"no-results":    noResults.server(),
	})
	for _, tt := range []struct{ user, named string }{
		{"requests-only", `Permissions Violation for Publish to "$JS.API.STREAM.INFO.OBJ_paliprompt-images"`},
		{"no-create", `Permissions Violation for Publish to "$JS.API.STREAM.CREATE.OBJ_paliprompt-images"`},
	} {
		t.Run(tt.user, func(t *testing.T) {
			cfg := testConfig(t, srv.ClientURL())
			cfg.NATS.User, cfg.NATS.Password = tt.user, tt.user
			var log logBuffer
			_, err := tryStartPlugin(t, cfg, Deps{Log: log.logger()})
			if err == nil || !strings.Contains(err.Error(), tt.named) {
				t.Fatalf("start: %v, want an error naming %s", err, tt.named)
			}
			if !strings.Contains(log.String(), strings.ReplaceAll(tt.named, `"`, `\"`)) {
				t.Errorf("the log does not name %s:\n%s", tt.named, log.String())
			}
			t.Log(err)
		})
	}

	t.Run("no-results while serving", func(t *testing.T) {
		admin := connectAs(t, srv.ClientURL(), "admin")
		js := newJS(t, admin)
		cfg := testConfig(t, srv.ClientURL())
		cfg.NATS.User, cfg.NATS.Password = "no-results", "no-results"
		cfg.Events.MaxDeliver = 2
		createAhead(t, js, cfg)
		var log logBuffer
		startPlugin(t, cfg, Deps{Log: log.logger()})
		publishReference(t, js, "aiviz.reference.r1", nil, []byte(`{"width": 8, "height": 8, "caption": "x"}`))
		// Given up after max_deliver: a failure event (that subject is
		// allowed) saying why, and the reference leaves the queue.
		// (Each refused publish waits for JetStream's 5s timeout.)
		waitLong(t, 40*time.Second, "the failure event", func() bool { return streamMsgs(t, js, "AIVIZ_PROMPTS") == 1 })
		waitFor(t, "the work queue to empty", func() bool { return streamMsgs(t, js, "AIVIZ_REFERENCES") == 0 })
		ev := resultEvents(t, js)[0]
		if ev.subject != "aiviz.prompt.failed.r1" || !strings.Contains(string(ev.data), "gave up after 2 deliveries") {
			t.Errorf("event %s: %s", ev.subject, ev.data)
		}
		named := `Permissions Violation for Publish to \"aiviz.prompt.ready.r1\"`
		if !strings.Contains(log.String(), named) {
			t.Errorf("the log does not name the refused publish:\n%s", log.String())
		}
		st := serviceStats(t, admin)["generate"]
		if st.PermissionsRefusedCount != 2 || len(st.PermissionsRefused) != 1 || !strings.Contains(st.PermissionsRefused[0], `"aiviz.prompt.ready.r1"`) {
			t.Errorf("stats: %d refused, %q", st.PermissionsRefusedCount, st.PermissionsRefused)
		}
	})
}

// TestWritePermissions: what `paliprompt check -permissions` prints reads
// back through nats-server's own configuration parser as exactly
// NeededPermissions, for a configuration with other names too.
func TestWritePermissions(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Events.Stream, cfg.Service.SubjectPrefix, cfg.Objects.ImagesBucket = "REFS", "pp.v2", "imgs"
	var conf bytes.Buffer
	WritePermissions(&conf, cfg)
	conf.WriteString("authorization { users: [\n  {user: a, password: a, permissions: $PALIPROMPT_USES}\n  {user: b, password: b, permissions: $PALIPROMPT_CREATES}\n] }\n")
	path := filepath.Join(t.TempDir(), "server.conf")
	// The nsc lines are not server configuration: keep them out.
	text := conf.String()
	text = text[:strings.Index(text, "nsc add user")] + text[strings.Index(text, "authorization {"):]
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	for i, create := range []bool{false, true} {
		got, want := opts.Users[i].Permissions, NeededPermissions(cfg, create)
		sameSet(t, "publish", got.Publish.Allow, want.Publish)
		sameSet(t, "subscribe", got.Subscribe.Allow, want.Subscribe)
		if got.Response.Expires != want.ResponsesExpire || got.Response.MaxMsgs != 1 {
			t.Errorf("responses %+v", got.Response)
		}
	}
	if !strings.Contains(conf.String(), "--allow-sub 'pp.v2.* paliprompt'") || !strings.Contains(conf.String(), "$JS.API.STREAM.CREATE.REFS") {
		t.Errorf("nsc commands:\n%s", conf.String())
	}
}

// TestCheckReportsSecurity: `paliprompt check` against an external server
// reports where it is connected, whether the server authenticates, TLS,
// the permissions refused to its own probe, and those refused to the
// running instances so far.
func TestCheckReportsSecurity(t *testing.T) {
	cfg := DefaultConfig()
	noEndpoints := NeededPermissions(cfg, false)
	noEndpoints.Subscribe = noEndpoints.Subscribe[1:]
	noResults := NeededPermissions(cfg, false)
	noResults.Publish = slices.DeleteFunc(slices.Clone(noResults.Publish), func(s string) bool { return s == "aiviz.prompt.ready.>" })
	srv := securedServer(t, map[string]*server.Permissions{"no-endpoints": noEndpoints.server(), "no-results": noResults.server()})
	js := newJS(t, connectAs(t, srv.ClientURL(), "admin"))
	check := func(user string) string {
		c := testConfig(t, srv.ClientURL())
		c.NATS.User, c.NATS.Password = user, user
		var out strings.Builder
		_ = Check(context.Background(), c, Deps{LoadMasks: testConfigMasks}, &out)
		return out.String()
	}
	running := testConfig(t, srv.ClientURL())
	running.NATS.User, running.NATS.Password = "no-results", "no-results"
	createAhead(t, js, running)
	startPlugin(t, running, Deps{})
	publishReference(t, js, "aiviz.reference.c1", nil, []byte(`{"width": 8, "height": 8}`))
	waitFor(t, "the refused publish", func() bool {
		return strings.Contains(check("no-results"), `was refused 1 time(s) so far: nats: permissions violation: Permissions Violation for Publish to "aiviz.prompt.ready.c1"`)
	})
	report := check("no-results")
	for _, want := range []string{"info  listening     connected to nats://127.0.0.1:", "info  auth          on; paliprompt logs in with user no-results",
		"info  TLS           off (a loopback connection)", "info  permissions   none refused to this check"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	report = check("no-endpoints")
	if want := `FAIL  permissions   refused to this check: nats: permissions violation: Permissions Violation for Subscription to "paliprompt.v1.paliprompt-check-`; !strings.Contains(report, want) {
		t.Errorf("report lacks %q:\n%s", want, report)
	}

	open := startServer(t, 0)
	var out strings.Builder
	_ = Check(context.Background(), testConfig(t, open.ClientURL()), Deps{LoadMasks: testConfigMasks}, &out)
	if !strings.Contains(out.String(), "warn  auth          off: the server lets anyone in") {
		t.Errorf("open server report:\n%s", out.String())
	}
}
