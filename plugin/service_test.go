package plugin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"maps"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"paliprompt/core"
	"paliprompt/grounding/paligemma"
	"paliprompt/sdxl"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"paliprompt/grounding"
)

func seg16(start int) string {
	var b strings.Builder
	for i := range 16 {
		fmt.Fprintf(&b, "<seg%03d>", (start+i)%128)
	}
	return b.String()
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-5 }

func TestLayoutRequestReply(t *testing.T) {
	srv := startServer(t, 0)
	startPlugin(t, testConfig(t, srv.ClientURL()), Deps{})
	nc := connectClient(t, srv.ClientURL())

	body := jsonBody(t, map[string]any{
		"id": "layout-1", "width": 640, "height": 480,
		"caption": "a shoe and a ball",
		"detect":  "<loc0051><loc0309><loc0708><loc0646> shoe ; <loc0012> broken",
		"segment": "<loc0100><loc0200><loc0300><loc0400>" + seg16(5) + " ball",
	})
	r := decodeReply(t, request(t, nc, "paliprompt.v1.layout", nil, body))

	if r.Schema != Schema || r.ID != "layout-1" || r.Task != EndpointLayout {
		t.Errorf("schema/id/task = %q %q %q", r.Schema, r.ID, r.Task)
	}
	if r.Image.Width != 640 || r.Image.Height != 480 || r.Image.Format != "" {
		t.Errorf("image = %+v", r.Image)
	}
	if r.Caption != "a shoe and a ball" {
		t.Errorf("caption = %q", r.Caption)
	}
	if len(r.Objects) != 2 {
		t.Fatalf("objects = %+v", r.Objects)
	}
	shoe := r.Objects[0]
	// Tokens are y first; the JSON box is x first, bins decoded as v/1023.
	want := [4]float64{309.0 / 1023 * 640, 51.0 / 1023 * 480, 646.0 / 1023 * 640, 708.0 / 1023 * 480}
	for i := range want {
		if !near(shoe.Box[i], want[i]) {
			t.Errorf("shoe box = %v, want %v", shoe.Box, want)
			break
		}
	}
	if !near(shoe.BoxNorm[0], 309.0/1023) || !near(shoe.BoxNorm[1], 51.0/1023) || shoe.Source != "detect" || shoe.Mask != nil {
		t.Errorf("shoe = %+v", shoe)
	}
	ball := r.Objects[1]
	if ball.Label != "ball" || ball.Source != "segment" || ball.Mask == nil || ball.Mask.Area == 0 ||
		len(ball.Mask.Binary.PNG) == 0 || len(ball.Mask.Soft.PNG) == 0 {
		t.Errorf("ball = %+v", ball)
	}
	if len(r.Skipped) != 1 || r.Skipped[0].Reason != "found 1 of 4 location tokens" {
		t.Errorf("skipped = %+v", r.Skipped)
	}
}

func TestGenerateWithText(t *testing.T) {
	srv := startServer(t, 0)
	startPlugin(t, testConfig(t, srv.ClientURL()), Deps{})
	nc := connectClient(t, srv.ClientURL())

	body := jsonBody(t, map[string]any{
		"image_b64": b64(scenePNG(t, 320, 240)),
		"caption":   "a red square",
		"detect":    "<loc0256><loc0256><loc0511><loc0511> red square",
	})
	m := request(t, nc, "paliprompt.v1.generate", jsonHeader, body)
	r := decodeReply(t, m)
	if r.ID == "" || m.Header.Get(HeaderID) != r.ID {
		t.Errorf("id %q, header %q", r.ID, m.Header.Get(HeaderID))
	}
	if r.Image != (ImageInfo{Width: 320, Height: 240, Format: "png"}) || r.Caption != "a red square" || len(r.Objects) != 1 {
		t.Errorf("reply = %+v", r)
	}
	if got := r.Objects[0].Box; !near(got[0], 256.0/1023*320) || !near(got[3], 511.0/1023*240) {
		t.Errorf("box = %v", got)
	}
	stages := map[string]bool{}
	for _, tm := range r.Timings {
		stages[tm.Stage] = true
	}
	for _, s := range []string{"request decoding", "image decoding", "queue", "ground", "total"} {
		if !stages[s] {
			t.Errorf("timings %+v lack %s", r.Timings, s)
		}
	}

	// generate runs the later stages too: layout, SDXL plan with its masks
	// under their file names, preview.
	if r.Layout == nil || len(r.Layout.Objects) != 1 || r.SDXL == nil || r.SDXL.Width == 0 {
		t.Fatalf("no layout or plan: %+v", r)
	}
	if r.Preview == nil || !bytes.HasPrefix(r.Preview.PNG, []byte("\x89PNG")) {
		t.Errorf("preview %+v", r.Preview)
	}
	for _, reg := range r.SDXL.Regions {
		if b := r.Masks[reg.MaskFile]; reg.Mask != nil || b == nil || !bytes.HasPrefix(b.PNG, []byte("\x89PNG")) || b.Bytes != len(b.PNG) {
			t.Errorf("region %s: mask %v inline in the plan, %+v in masks", reg.MaskFile, reg.Mask != nil, b)
		}
	}
	if len(r.Masks) != len(r.SDXL.Regions)+1 { // + the Regional Prompter mask
		t.Errorf("%d masks for %d regions", len(r.Masks), len(r.SDXL.Regions))
	}
	// The graph as it arrives is one ComfyUI accepts, naming only files
	// that came with it; the A1111 bodies are there, images inline.
	var files []string
	for name := range r.Masks {
		files = append(files, name)
	}
	if err := r.SDXL.ComfyUI.Check(files); err != nil {
		t.Errorf("ComfyUI graph: %v", err)
	}
	if rp := r.SDXL.WebUI.RegionalPrompter; rp == nil || len(rp.AlwaysonScripts["Regional Prompter"].Args) != 20 || r.SDXL.WebUI.ForgeCouple == nil {
		t.Errorf("A1111 payloads %+v", r.SDXL.WebUI)
	}

	// A placement header mirrors the layout.
	r = decodeReply(t, request(t, nc, "paliprompt.v1.generate", nats.Header{"Content-Type": {"application/json"}, HeaderPlace: {"mirror"}}, body))
	if r.Layout == nil || !r.Layout.Mirrored {
		t.Errorf("layout not mirrored: %+v", r.Layout)
	}

	// The caption endpoint returns the caption only, whatever the JSON carried.
	r = decodeReply(t, request(t, nc, "paliprompt.v1.caption", jsonHeader, body))
	if r.Caption != "a red square" || len(r.Objects) != 0 || r.Outputs[core.TaskDetect] != "" || r.Layout != nil || r.SDXL != nil {
		t.Errorf("caption reply = %+v", r)
	}
}

func TestErrorCodes(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	cfg.Limits.MaxImageBytes = 16 << 10
	startPlugin(t, cfg, Deps{})
	nc := connectClient(t, srv.ClientURL())
	big := make([]byte, 20<<10)
	for i := range big {
		big[i] = byte(i)
	}
	tests := []struct {
		name     string
		subject  string
		header   nats.Header
		body     []byte
		code     int
		contains string
	}{
		{"malformed JSON", "generate", jsonHeader, []byte(`{"id": "x", "image_b64": `), 400, "malformed JSON request"},
		{"unknown JSON field", "layout", nil, []byte(`{"width": 10, "height": 10, "captoin": "x"}`), 400, `unknown field "captoin"`},
		{"oversize body", "generate", nil, big, 413, "image is 20480 bytes, limit is 16384"},
		{"text file", "generate", nil, []byte("just some notes, not an image\n"), 415, "text"},
		{"truncated JPEG", "generate", nil, truncatedJPEG(t), 422, "jpeg"},
		{"PNG header claiming 30000x30000", "generate", nil, hugePNGHeader(30000, 30000), 422, "image is 30000x30000 = 900 Mpx, limit is 50 Mpx"},
		{"unknown object name", "generate", jsonHeader, []byte(`{"image_object": "no-such-image.png"}`), 400, `image_object "no-such-image.png" not found in bucket paliprompt-images`},
		{"missing image", "generate", jsonHeader, []byte(`{"objects": ["cat"], "detect": "<loc0001><loc0002><loc0003><loc0004> cat"}`), 400, "missing image"},
		{"empty body", "detect", nil, nil, 400, "empty request"},
		{"bad id", "layout", nil, []byte(`{"id": "a.b", "width": 10, "height": 10}`), 400, `id "a.b" is not allowed`},
		{"layout too large", "layout", nil, []byte(`{"width": 30000, "height": 30000}`), 422, "30000x30000 = 900 Mpx, limit is 50 Mpx"},
		{"no model", "generate", nil, scenePNG(t, 32, 32), 503, "no model is loaded"},
		{"bad timeout", "generate", nats.Header{HeaderTimeout: {"soon"}}, scenePNG(t, 32, 32), 400, `Paliprompt-Timeout header "soon"`},
		{"sampler not ComfyUI's", "layout", nil, []byte(`{"width": 10, "height": 10, "sdxl": {"sampler": "dpmpp_2m_karras"}}`), 400,
			`sdxl.sampler: sampler "dpmpp_2m_karras" is not one of ComfyUI 0.3.64's samplers: euler, `},
		{"region control typo", "layout", nil, []byte(`{"width": 10, "height": 10, "sdxl": {"regions": [{"object": "0", "lora": []}]}}`), 400,
			`unknown field "lora"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := request(t, nc, "paliprompt.v1."+tt.subject, tt.header, tt.body)
			code, desc := errorOf(m)
			if code != tt.code || !strings.Contains(desc, tt.contains) {
				t.Errorf("got %d %q, want %d containing %q", code, desc, tt.code, tt.contains)
			}
			var body ReplyError
			if err := json.Unmarshal(m.Data, &body); err != nil || body.Error.Code != code || body.Error.Description != desc {
				t.Errorf("error body %s (%v)", m.Data, err)
			}
		})
	}
}

// TestReplyOverMaxPayload: a reply that cannot fit the server's max
// payload is a 500 that says so, not a silent drop.
func TestReplyOverMaxPayload(t *testing.T) {
	srv := startServer(t, 8<<10)
	startPlugin(t, testConfig(t, srv.ClientURL()), Deps{})
	nc := connectClient(t, srv.ClientURL())
	var detect strings.Builder
	for i := range 150 {
		fmt.Fprintf(&detect, "<loc%04d><loc%04d><loc%04d><loc%04d> o%d ", i, i, i+10, i+10, i)
	}
	body := jsonBody(t, map[string]any{"width": 100, "height": 100, "detect": detect.String()})
	code, desc := errorOf(request(t, nc, "paliprompt.v1.layout", nil, body))
	if code != 500 || !strings.Contains(desc, "over the max payload of 8192 bytes") {
		t.Errorf("got %d %q", code, desc)
	}
}

func TestQueueFullAndDeadline(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	cfg.Queue.Size = 2
	cfg.Events.Enabled = false
	g := newGate()
	deps := Deps{}
	withModel(&cfg, &deps, g)
	startPlugin(t, cfg, deps)
	nc := connectClient(t, srv.ClientURL())
	img := scenePNG(t, 32, 32)

	// Two requests fill the queue: one grounding, one waiting.
	var wg sync.WaitGroup
	replies := make([]*nats.Msg, 2)
	for i := range 2 {
		wg.Go(func() { replies[i] = request(t, nc, "paliprompt.v1.generate", nil, img) })
	}
	<-g.started
	waitFor(t, "a request waiting for the grounder", func() bool { return queueDepth(t, nc) == 1 })

	start := time.Now()
	code, desc := errorOf(request(t, nc, "paliprompt.v1.generate", nil, img))
	if code != 503 || !strings.Contains(desc, "queue full") {
		t.Errorf("third request: %d %q, want 503 queue full", code, desc)
	}
	t.Logf("503 came after %s", time.Since(start))

	close(g.release)
	wg.Wait()
	for _, m := range replies {
		if r := decodeReply(t, m); r.Caption != "a gated caption" {
			t.Errorf("reply %+v", r)
		}
	}

	// A deadline that runs out while grounding: 504.
	g2 := newGate()
	cfg2 := testConfig(t, srv.ClientURL())
	cfg2.Events.Enabled = false
	cfg2.Service.SubjectPrefix = "slow.v1"
	deps2 := Deps{}
	withModel(&cfg2, &deps2, g2)
	cfg2.Service.Name = "slow"
	startPlugin(t, cfg2, deps2)
	code, desc = errorOf(request(t, nc, "slow.v1.generate", nats.Header{HeaderTimeout: {"300ms"}}, img))
	if code != 504 || !strings.Contains(desc, "deadline of 300ms exceeded while grounding") {
		t.Errorf("slow request: %d %q, want 504", code, desc)
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	g := newGate()
	deps := Deps{}
	withModel(&cfg, &deps, g)
	r := startPlugin(t, cfg, deps)
	nc := connectClient(t, srv.ClientURL())

	reply := make(chan *nats.Msg, 1)
	go func() { reply <- request(t, nc, "paliprompt.v1.generate", nil, scenePNG(t, 32, 32)) }()
	<-g.started

	stopped := make(chan struct{})
	go func() { r.stop(t); close(stopped) }()
	// Once shutdown began, the endpoints take no new requests.
	waitFor(t, "endpoints to unsubscribe", func() bool {
		_, err := nc.Request("paliprompt.v1.layout", []byte(`{"width":1,"height":1}`), 200*time.Millisecond)
		return err != nil
	})
	select {
	case <-stopped:
		t.Fatal("plugin stopped before its in-flight request finished")
	default:
	}
	close(g.release)
	if m := <-reply; decodeReply(t, m).Caption != "a gated caption" {
		t.Errorf("in-flight reply %s", m.Data)
	}
	<-stopped
}

func TestMicroInfoAndStats(t *testing.T) {
	srv := startServer(t, 0)
	startPlugin(t, testConfig(t, srv.ClientURL()), Deps{Version: "1.2.3"})
	nc := connectClient(t, srv.ClientURL())

	var info micro.Info
	m, err := nc.Request("$SRV.INFO.paliprompt", nil, 5*time.Second)
	if err != nil || json.Unmarshal(m.Data, &info) != nil {
		t.Fatalf("info: %v %s", err, m.Data)
	}
	if info.Name != "paliprompt" || info.Version != "1.2.3" {
		t.Errorf("info = %+v", info)
	}
	var subjects []string
	for _, e := range info.Endpoints {
		subjects = append(subjects, e.Subject)
	}
	want := "paliprompt.v1.generate paliprompt.v1.caption paliprompt.v1.ocr paliprompt.v1.answer paliprompt.v1.detect paliprompt.v1.segment paliprompt.v1.layout paliprompt.v1.verify"
	if strings.Join(subjects, " ") != want {
		t.Errorf("endpoints %v, want %s", subjects, want)
	}

	request(t, nc, "paliprompt.v1.layout", nil, []byte(`{"width": 0, "height": 1}`))
	st := serviceStats(t, nc)
	layout := st["layout"]
	if layout.Requests != 1 || layout.Errors != 1 || !strings.Contains(layout.LastError, "width and height must be positive") {
		t.Errorf("layout stats = %+v", layout)
	}
	if layout.Grounder != "text" || layout.Provider != "none" || layout.Size != 8 || layout.ModelStatus == "" {
		t.Errorf("pipeline stats = %+v", layout.PipelineStats)
	}
}

// serviceStats returns the custom stats data of each endpoint.
func serviceStats(t testing.TB, nc *nats.Conn) map[string]EndpointStats {
	t.Helper()
	m, err := nc.Request("$SRV.STATS.paliprompt", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var stats micro.Stats
	if err := json.Unmarshal(m.Data, &stats); err != nil {
		t.Fatal(err)
	}
	out := map[string]EndpointStats{}
	for _, e := range stats.Endpoints {
		var s EndpointStats
		if err := json.Unmarshal(e.Data, &s); err != nil {
			t.Fatalf("stats data of %s: %v", e.Name, err)
		}
		out[e.Name] = s
	}
	return out
}

func queueDepth(t testing.TB, nc *nats.Conn) int {
	return serviceStats(t, nc)["generate"].Depth
}

// waitFor polls cond every 10ms for up to 10s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitLong(t, 10*time.Second, what, cond)
}

// waitLong is waitFor for up to limit.
func waitLong(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLargePNGsGoToTheObjectStore: PNGs over objects.inline_mask_bytes are
// stored in the results bucket and the reply names them.
func TestLargePNGsGoToTheObjectStore(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	cfg.Objects.InlineMaskBytes = 1 << 10
	startPlugin(t, cfg, Deps{})
	nc := connectClient(t, srv.ClientURL())
	body := jsonBody(t, map[string]any{"id": "big", "width": 640, "height": 480,
		"segment": "<loc0100><loc0100><loc0900><loc0900>" + seg16(1) + " blob"})
	r := decodeReply(t, request(t, nc, "paliprompt.v1.layout", nil, body))
	store, err := newJS(t, nc).ObjectStore(context.Background(), "paliprompt-results")
	if err != nil {
		t.Fatal(err)
	}
	r.nameBlobs()
	stored := 0
	for _, b := range r.blobs() {
		switch {
		case b.Bytes > 1<<10 && (b.PNG != nil || b.Bucket != "paliprompt-results" || b.Object != "big/"+b.name):
			t.Errorf("%s (%d bytes) not in the results bucket: %+v", b.name, b.Bytes, b)
		case b.Object != "":
			data, err := store.GetBytes(context.Background(), b.Object)
			if err != nil || len(data) != b.Bytes || !bytes.HasPrefix(data, []byte("\x89PNG")) {
				t.Errorf("object %s: %d bytes, %v", b.Object, len(data), err)
			}
			stored++
		case len(b.PNG) != b.Bytes:
			t.Errorf("inline %s: %d bytes, says %d", b.name, len(b.PNG), b.Bytes)
		}
	}
	if stored == 0 {
		t.Error("nothing was stored")
	}
}

// TestTaskEndpoints runs every single-task endpoint over NATS, with text
// from a PaliGemma run elsewhere (text grounder) and with the tiny model:
// the reply carries that task's output, and the model ran that task.
func TestTaskEndpoints(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	fastStages(&cfg)
	cfg.Model.Dir = "../testdata/models/tiny-paligemma2"
	cfg.Model.MaskDecoder = ""
	cfg.Model.MaxNewTokens = map[string]int{"other": 4}
	deps := Deps{NewModel: func(m grounding.ModelConfig) (grounding.Grounder, error) { return paligemma.New(m, nil) }}
	startPlugin(t, cfg, deps)
	nc := connectClient(t, srv.ClientURL())
	img := scenePNG(t, 64, 48)
	tests := []struct {
		task core.TaskName
		args map[string]string // JSON field -> value; sent as headers too
	}{
		{core.TaskOCR, nil},
		{core.TaskAnswer, map[string]string{"question": "what colour is the square?"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.task), func(t *testing.T) {
			subject := "paliprompt.v1." + string(tt.task)
			fields := map[string]any{"image_b64": b64(img), string(tt.task): "ready text"}
			header := nats.Header{}
			for k, v := range tt.args {
				fields[k] = v
				a, _ := lookupArg(k)
				header.Set(a.Header, v)
			}
			r := decodeReply(t, request(t, nc, subject, jsonHeader, jsonBody(t, fields)))
			if r.Task != Endpoint(tt.task) || r.Outputs[tt.task] != "ready text" || len(r.Outputs) != 1 || r.SDXL != nil {
				t.Errorf("text reply %+v", r)
			}
			r = decodeReply(t, request(t, nc, subject, header, img))
			_, ran := r.Outputs[tt.task]
			if !ran || !hasStage(r, "generate "+string(tt.task)) || len(r.Objects) != 0 {
				t.Errorf("model reply: outputs %q, timings %+v", r.Outputs, r.Timings)
			}
		})
	}
}

func lookupArg(name string) (core.Arg, bool) {
	for _, a := range core.Args {
		if a.Name == name {
			return a, true
		}
	}
	return core.Arg{}, false
}

// hasStage reports whether a stage (or a part of one) of the reply's
// timings has this name.
func hasStage(r Reply, stage string) bool {
	var find func(ts []ReplyTiming) bool
	find = func(ts []ReplyTiming) bool {
		for _, tm := range ts {
			if tm.Stage == stage || find(tm.Parts) {
				return true
			}
		}
		return false
	}
	return find(r.Timings)
}

// TestAnswerNeedsAQuestion: an answer request without a question is a
// 400 that says where to put one; the question reaches the grounder.
func TestAnswerNeedsAQuestion(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	rec := &requestRecorder{}
	deps := Deps{}
	withModel(&cfg, &deps, rec)
	startPlugin(t, cfg, deps)
	nc := connectClient(t, srv.ClientURL())
	img := scenePNG(t, 32, 32)
	code, desc := errorOf(request(t, nc, "paliprompt.v1.answer", nil, img))
	if code != 400 || !strings.Contains(desc, "Paliprompt-Question") || !strings.Contains(desc, `"question"`) {
		t.Errorf("no question: %d %q", code, desc)
	}
	for _, m := range []struct {
		header nats.Header
		body   []byte
	}{
		{nats.Header{core.ArgQuestion.Header: {"what is <eos> this?\nnothing"}}, img},
		{jsonHeader, jsonBody(t, map[string]any{"image_b64": b64(img), "question": "what is <eos> this?\nnothing"})},
	} {
		decodeReply(t, request(t, nc, "paliprompt.v1.answer", m.header, m.body))
		got := rec.last()
		if !reflect.DeepEqual(got.Tasks, []core.TaskName{core.TaskAnswer}) || got.Args.Text["question"] != "what is eos this? nothing" {
			t.Errorf("grounding request %+v", got)
		}
	}
}

// requestRecorder is a model grounder that keeps the requests it gets.
type requestRecorder struct {
	mu   sync.Mutex
	reqs []grounding.Request
}

func (r *requestRecorder) Ground(_ context.Context, req grounding.Request) (core.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	b := req.Image.Bounds()
	return core.Result{Width: b.Dx(), Height: b.Dy()}, nil
}

func (r *requestRecorder) last() grounding.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reqs[len(r.reqs)-1]
}

// TestModelGrounderOverNATS serves a raw image with the real model
// grounder (PaliGemma on ONNX Runtime) on the tiny random-weight test
// model: the wiring from request to model and back, not the model's
// answers (random weights say nothing sensible).
func TestModelGrounderOverNATS(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	fastStages(&cfg)
	cfg.Model.Dir = "../testdata/models/tiny-paligemma2"
	cfg.Model.MaskDecoder = ""
	deps := Deps{NewModel: func(m grounding.ModelConfig) (grounding.Grounder, error) {
		return paligemma.New(m, nil)
	}}
	startPlugin(t, cfg, deps)
	nc := connectClient(t, srv.ClientURL())
	m := request(t, nc, "paliprompt.v1.generate", nats.Header{core.ArgObjects.Header: {"circle ; square"}}, scenePNG(t, 64, 48))
	reply := decodeReply(t, m)
	if reply.Image != (ImageInfo{Width: 64, Height: 48, Format: "png"}) || reply.Outputs[core.TaskCaption] == "" || reply.SDXL == nil {
		t.Errorf("reply %+v", reply)
	}
	st := serviceStats(t, nc)["generate"]
	if st.Grounder != "model" || st.Provider != "cpu" || st.ModelStatus != "ready" {
		t.Errorf("stats %+v", st.PipelineStats)
	}
}

// TestFastDecodeKeepsFullSize: with model.fast_decode_min_side a large
// JPEG is decoded smaller, but the reply, its boxes and masks stay in the
// full image's pixels.
func TestFastDecodeKeepsFullSize(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	cfg.Model.FastDecodeMinSide = 200
	startPlugin(t, cfg, Deps{LoadMasks: testConfigMasks})
	nc := connectClient(t, srv.ClientURL())
	img := image.NewRGBA(image.Rect(0, 0, 1600, 1200))
	for i := range img.Pix {
		img.Pix[i] = uint8(i / 5)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	body := jsonBody(t, map[string]any{"image_b64": b64(buf.Bytes()), "detect": "<loc0000><loc0000><loc1023><loc1023> wall"})
	r := decodeReply(t, request(t, nc, "paliprompt.v1.generate", jsonHeader, body))
	if r.Image.Width != 1600 || r.Image.Height != 1200 || len(r.Objects) != 1 || r.Objects[0].Box != [4]float64{0, 0, 1600, 1200} {
		t.Errorf("reply image %+v, objects %+v", r.Image, r.Objects)
	}
}

// TestIncludeRendersOnlyWhatIsAsked: a request naming parts gets those,
// and nothing else is rendered (no preview, no masks of other parts).
func TestIncludeRendersOnlyWhatIsAsked(t *testing.T) {
	srv := startServer(t, 0)
	startPlugin(t, testConfig(t, srv.ClientURL()), Deps{LoadMasks: testConfigMasks})
	nc := connectClient(t, srv.ClientURL())
	fields := map[string]any{"width": 640, "height": 480, "caption": "a red square",
		"segment": "<loc0256><loc0256><loc0511><loc0511>" + seg16(9) + " red square"}
	full := decodeReply(t, request(t, nc, "paliprompt.v1.layout", nil, jsonBody(t, fields)))
	if full.Preview == nil || len(full.Masks) != 3 || full.Objects[0].Mask.Binary == nil || full.SDXL.Omost.Code == "" {
		t.Fatalf("default reply lacks parts: %+v", full)
	}
	for _, tt := range []struct {
		name    string
		header  nats.Header
		include any
	}{
		{"json list", nil, []string{"comfyui", "region_masks"}},
		{"json string", nil, "comfyui, region_masks"},
		{"header", nats.Header{HeaderInclude: {"comfyui,region_masks"}}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := maps.Clone(fields)
			if tt.include != nil {
				f["include"] = tt.include
			}
			r := decodeReply(t, request(t, nc, "paliprompt.v1.layout", tt.header, jsonBody(t, f)))
			if r.Preview != nil || r.Objects[0].Mask.Binary != nil || len(r.SDXL.ComfyUI) == 0 ||
				r.SDXL.RegionalPrompter.Prompt != "" || r.SDXL.Omost.Code != "" || r.SDXL.WebUI.Endpoint != "" || len(r.Masks) != 2 {
				t.Errorf("reply %+v", r)
			}
			if hasStage(r, "preview") {
				t.Error("the preview was rendered")
			}
		})
	}
	code, desc := errorOf(request(t, nc, "paliprompt.v1.layout", nil, jsonBody(t, map[string]any{"width": 9, "height": 9, "include": []string{"thumbnail"}})))
	if code != 400 || !strings.Contains(desc, `unknown part "thumbnail"`) || !strings.Contains(desc, "object_masks") {
		t.Errorf("unknown part: %d %q", code, desc)
	}
}

// TestTimingsAddUp: a reply's timings name every stage of the request,
// one after another, adding up to its total (within 2%, rounding of the
// milliseconds aside); a stage's sequential parts add up to the stage.
// With the tiny model (ground's parts: the ONNX Runtime runs), large
// masks (object store uploads) and the event bus.
func TestTimingsAddUp(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	fastStages(&cfg)
	cfg.Model.Dir = "../testdata/models/tiny-paligemma2"
	cfg.Model.MaskDecoder = ""
	cfg.Objects.InlineMaskBytes = 1 << 10
	deps := Deps{NewModel: func(m grounding.ModelConfig) (grounding.Grounder, error) { return paligemma.New(m, nil) },
		LoadMasks: testConfigMasks}
	startPlugin(t, cfg, deps)
	nc := connectClient(t, srv.ClientURL())
	replies := map[string]Reply{
		"model": decodeReply(t, request(t, nc, "paliprompt.v1.generate", nats.Header{core.ArgObjects.Header: {"circle"}}, scenePNG(t, 200, 150))),
		"text": decodeReply(t, request(t, nc, "paliprompt.v1.generate", jsonHeader, jsonBody(t, map[string]any{
			"image_b64": b64(scenePNG(t, 320, 240)), "caption": "a red square",
			"segment": "<loc0256><loc0256><loc0511><loc0511>" + seg16(9) + " red square"}))),
	}
	for name, r := range replies {
		t.Run(name, func(t *testing.T) {
			n := len(r.Timings)
			if n < 2 || r.Timings[n-1].Stage != "total" {
				t.Fatalf("timings %+v do not end with the total", r.Timings)
			}
			checkParts(t, "request", r.Timings[:n-1], r.Timings[n-1].MS)
			for _, stage := range []string{"request decoding", "image decoding", "queue", "ground", "layout", "sdxl", "preview", "reply encoding"} {
				if !hasStage(r, stage) {
					t.Errorf("no stage %q in %+v", stage, r.Timings)
				}
			}
		})
	}
	if m := replies["model"]; !hasStage(m, "onnx vision_encoder") || !hasStagePrefix(m, "object store (") || !hasStagePrefix(m, "png (") {
		t.Errorf("model reply timings %+v", m.Timings)
	}
}

// checkParts checks that sequential stages add up to their whole.
func checkParts(t *testing.T, what string, parts []ReplyTiming, whole float64) {
	t.Helper()
	sum := 0.0
	for _, p := range parts {
		if p.Stage == "" || p.MS < 0 {
			t.Errorf("%s: stage %+v", what, p)
		}
		sum += p.MS
		if len(p.Parts) > 0 && p.Concurrent == 0 {
			checkParts(t, p.Stage, p.Parts, p.MS)
		}
	}
	if diff := math.Abs(sum - whole); diff > 0.02*whole+0.01*float64(len(parts)) {
		t.Errorf("%s: stages add up to %.3f ms, the whole is %.3f ms: %+v", what, sum, whole, parts)
	}
}

func hasStagePrefix(r Reply, prefix string) bool {
	for _, tm := range r.Timings {
		if strings.HasPrefix(tm.Stage, prefix) {
			return true
		}
	}
	return false
}

// TestA1111BodiesCarryTheReplysPNGs: the A1111 bodies embed the very PNGs
// the reply encoded (once, in its PNG workers), also those that went to
// the results bucket; asked for alone, they come without the other parts,
// their images encoded for them only and not listed among the masks.
func TestA1111BodiesCarryTheReplysPNGs(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	cfg.Objects.InlineMaskBytes = 1 << 10
	startPlugin(t, cfg, Deps{})
	nc := connectClient(t, srv.ClientURL())
	store, err := newJS(t, nc).ObjectStore(context.Background(), "paliprompt-results")
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]any{"width": 640, "height": 480, "caption": "a red square", "detect": "<loc0256><loc0256><loc0511><loc0511> red square"}
	full := decodeReply(t, request(t, nc, "paliprompt.v1.layout", nil, jsonBody(t, fields)))
	pngOf := func(name string) []byte {
		b := full.Masks[name]
		if b == nil {
			t.Fatalf("no mask %s", name)
		}
		if b.Object == "" {
			return b.PNG
		}
		data, err := store.GetBytes(context.Background(), b.Object)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	inBucket := 0
	for _, b := range full.Masks {
		if b.Object != "" {
			inBucket++
		}
	}
	if inBucket == 0 {
		t.Fatal("no mask went to the bucket: the test needs one that did")
	}
	bodyPNGs := func(r Reply) map[string][]byte {
		out := map[string][]byte{}
		rp := r.SDXL.WebUI.RegionalPrompter
		fc := r.SDXL.WebUI.ForgeCouple
		if rp == nil || fc == nil {
			t.Fatalf("A1111 bodies %+v", r.SDXL.WebUI)
		}
		mask, _ := rp.AlwaysonScripts["Regional Prompter"].Args[16].(string)
		out["rp"], _ = base64.StdEncoding.DecodeString(mask)
		for i, m := range fc.AlwaysonScripts["Forge Couple"].Args[7].([]any) {
			s, _ := m.(map[string]any)["mask"].(string)
			out[fmt.Sprint(i)], _ = base64.StdEncoding.DecodeString(s)
		}
		return out
	}
	want := map[string][]byte{"rp": pngOf(full.SDXL.RegionalPrompter.MaskFile)}
	for i, m := range full.SDXL.ForgeCouple.Masks {
		want[fmt.Sprint(i)] = pngOf(m.MaskFile)
	}
	for k, data := range bodyPNGs(full) {
		if !bytes.HasPrefix(data, []byte("\x89PNG")) || !bytes.Equal(data, want[k]) {
			t.Errorf("body image %s: %d bytes, the reply's PNG %d", k, len(data), len(want[k]))
		}
	}

	fields["include"] = "a1111"
	r := decodeReply(t, request(t, nc, "paliprompt.v1.layout", nil, jsonBody(t, fields)))
	if len(r.Masks) != 0 || r.Preview != nil || len(r.SDXL.ComfyUI) != 0 || r.SDXL.RegionalPrompter.Prompt != "" || r.SDXL.ForgeCouple.Mode != "" {
		t.Errorf("a1111 alone: %+v", r)
	}
	for k, data := range bodyPNGs(r) {
		if !bytes.Equal(data, want[k]) {
			t.Errorf("a1111 alone: body image %s differs from the full reply's", k)
		}
	}
	if !hasStage(r, fmt.Sprintf("png (%d images)", len(want))) {
		t.Errorf("timings %+v: want the %d images the bodies carry encoded", r.Timings, len(want))
	}
}

// TestHintsOverNATS: generate and layout requests turn on every
// conditioning image with the "sdxl" option; each comes back among the
// reply's PNGs under the name the plan gives it, the graph uses them and
// validates, and a layout request without an image may not ask for the
// ones that need it.
func TestHintsOverNATS(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	cfg.SDXL.ControlNet.Edges.Model = "diffusers_xl_canny_mid.safetensors"
	cfg.SDXL.IPAdapter.Model, cfg.SDXL.IPAdapter.ClipVision = "ip-adapter-plus_sdxl_vit-h.safetensors", "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
	startPlugin(t, cfg, Deps{})
	nc := connectClient(t, srv.ClientURL())
	hints := map[string]any{"edges": true, "segmentation": true, "start_canvas": true, "crops": true, "denoise": 0.75}
	text := map[string]any{"caption": "a red square", "detect": "<loc0256><loc0256><loc0511><loc0511> red square"}
	requests := map[string]map[string]any{
		"generate": {"image_b64": b64(scenePNG(t, 320, 240)), "sdxl": map[string]any{"hints": hints}},
		"layout":   {"width": 320, "height": 240, "image_b64": b64(scenePNG(t, 320, 240)), "sdxl": map[string]any{"hints": hints}},
	}
	for ep, body := range requests {
		t.Run(ep, func(t *testing.T) {
			for k, v := range text {
				body[k] = v
			}
			m := request(t, nc, "paliprompt.v1."+ep, jsonHeader, jsonBody(t, body))
			r := decodeReply(t, m)
			if r.SDXL == nil {
				t.Fatalf("no plan: %s", m.Data[:min(len(m.Data), 300)])
			}
			h := r.SDXL.Hints
			if h.Edges == nil || h.Segmentation == nil || h.StartCanvas == nil || len(h.Crops) != 1 || h.Denoise != 0.75 {
				t.Fatalf("hints %+v", h)
			}
			for _, name := range []string{h.Edges.File, h.Segmentation.File, h.StartCanvas.File, h.Crops[0].File} {
				if b := r.Masks[name]; b == nil || !bytes.HasPrefix(b.PNG, []byte("\x89PNG")) {
					t.Errorf("hint %s not among the reply's PNGs", name)
				}
			}
			var files []string
			for name := range r.Masks {
				files = append(files, name)
			}
			if err := r.SDXL.ComfyUI.Check(files); err != nil {
				t.Errorf("graph: %v", err)
			}
			if r.SDXL.WebUI.Endpoint != "/sdapi/v1/img2img" || r.SDXL.WebUI.RegionalPrompter.DenoisingStrength != 0.75 {
				t.Errorf("A1111 payloads %s, denoise %v", r.SDXL.WebUI.Endpoint, r.SDXL.WebUI.RegionalPrompter.DenoisingStrength)
			}
			for _, stage := range []string{"edges", "segmentation", "start canvas", "crops"} {
				if !hasStage(r, stage) {
					t.Errorf("timings %+v lack the sdxl part %q", r.Timings, stage)
				}
			}
			t.Logf("%s reply with every hint: %d bytes", ep, len(m.Data))
		})
	}
	body := jsonBody(t, map[string]any{"width": 320, "height": 240, "caption": "a red square", "sdxl": map[string]any{"hints": map[string]any{"edges": true}}})
	if code, desc := errorOf(request(t, nc, "paliprompt.v1.layout", nil, body)); code != 400 || !strings.Contains(desc, "hint edges needs the reference image") {
		t.Errorf("edges without an image: %d %q", code, desc)
	}
	body = jsonBody(t, map[string]any{"width": 100, "height": 240, "image_b64": b64(scenePNG(t, 320, 240))})
	if code, desc := errorOf(request(t, nc, "paliprompt.v1.layout", nil, body)); code != 400 || !strings.Contains(desc, "the image is 320x240, but the layout request says 100x240") {
		t.Errorf("image of another size: %d %q", code, desc)
	}
}

// TestPayloadsGoToTheObjectStore: when even with every PNG in the results
// bucket a reply would be over the max payload, the A1111 bodies (which
// carry their images inline) go there too, as JSON, and the reply names
// them; nothing is lost.
func TestPayloadsGoToTheObjectStore(t *testing.T) {
	srv := startServer(t, 96<<10)
	startPlugin(t, testConfig(t, srv.ClientURL()), Deps{})
	nc := connectClient(t, srv.ClientURL())
	body := jsonBody(t, map[string]any{"id": "heavy", "width": 320, "height": 240, "image_b64": b64(scenePNG(t, 320, 240)),
		"caption": "a red square", "detect": "<loc0256><loc0256><loc0511><loc0511> red square",
		"sdxl": map[string]any{"hints": map[string]any{"edges": true, "start_canvas": true, "crops": true}}})
	m := request(t, nc, "paliprompt.v1.layout", nil, body)
	r := decodeReply(t, m)
	if r.SDXL == nil || r.SDXL.WebUI.RegionalPrompter != nil || len(r.Payloads) != 4 || r.SDXL.WebUI.Endpoint != "/sdapi/v1/img2img" {
		t.Fatalf("payloads %v, a1111 %+v", r.Payloads, r.SDXL.WebUI)
	}
	store, err := newJS(t, nc).ObjectStore(context.Background(), "paliprompt-results")
	if err != nil {
		t.Fatal(err)
	}
	stored := r.Payloads["a1111-regional-prompter.json"]
	if stored.Bucket != "paliprompt-results" || stored.Object != "heavy/a1111-regional-prompter.json" {
		t.Errorf("the Regional Prompter body is named %+v", stored)
	}
	data, err := store.GetBytes(context.Background(), stored.Object)
	if err != nil {
		t.Fatal(err)
	}
	var rp sdxl.WebUIRequest
	if err := json.Unmarshal(data, &rp); err != nil || len(rp.InitImages) != 1 || rp.AlwaysonScripts["Regional Prompter"].Args == nil {
		t.Errorf("stored body: %v, %d init images", err, len(rp.InitImages))
	}
	t.Logf("reply %d bytes, the Regional Prompter body %d bytes in the bucket", len(m.Data), len(data))
}

// TestLayoutImageInFastMode: a layout request's image is checked against
// its width and height at the image's full size, though fast mode decodes
// the JPEG smaller; the hints are made from the smaller image, at the
// canvas size.
func TestLayoutImageInFastMode(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	cfg.Model.FastDecodeMinSide = 200
	startPlugin(t, cfg, Deps{})
	nc := connectClient(t, srv.ClientURL())
	img := image.NewRGBA(image.Rect(0, 0, 1600, 1200))
	for y := range 1200 {
		for x := range 1600 {
			if x > 400 && x < 800 && y > 300 && y < 600 {
				img.Set(x, y, color.RGBA{220, 30, 30, 255})
			} else {
				img.Set(x, y, color.RGBA{240, 240, 240, 255})
			}
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	fields := map[string]any{"width": 1600, "height": 1200, "image_b64": b64(buf.Bytes()), "caption": "a red square",
		"detect": "<loc0256><loc0256><loc0511><loc0511> red square", "sdxl": map[string]any{"hints": map[string]any{"edges": true, "crops": true}}}
	r := decodeReply(t, request(t, nc, "paliprompt.v1.layout", nil, jsonBody(t, fields)))
	h := r.SDXL.Hints
	if h.Edges == nil || len(h.Crops) != 1 || r.Masks[h.Edges.File] == nil {
		t.Fatalf("hints %+v", h)
	}
	edges, err := png.Decode(bytes.NewReader(r.Masks[h.Edges.File].PNG))
	if err != nil || edges.Bounds() != image.Rect(0, 0, r.SDXL.Width, r.SDXL.Height) {
		t.Errorf("edge hint %v, %v; canvas %dx%d", err, edges.Bounds(), r.SDXL.Width, r.SDXL.Height)
	}
	fields["width"] = 400 // the decoded size, not the image's
	fields["height"] = 300
	if code, desc := errorOf(request(t, nc, "paliprompt.v1.layout", nil, jsonBody(t, fields))); code != 400 || !strings.Contains(desc, "the image is 1600x1200") {
		t.Errorf("a size other than the image's: %d %q", code, desc)
	}
}
