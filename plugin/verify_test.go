package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"paliprompt/core"
	"paliprompt/verify"
)

// locText is the detect text PaliGemma would give for label at the
// normalized box b: what the text grounder reads as the generated image.
func locText(label string, b core.Box) string {
	loc := func(v float64) int { return int(math.Round(v * 1023)) }
	return fmt.Sprintf("<loc%04d><loc%04d><loc%04d><loc%04d> %s", loc(b.Y0), loc(b.X0), loc(b.Y1), loc(b.X1), label)
}

func decodeVerify(t testing.TB, m *nats.Msg) VerifyReply {
	t.Helper()
	if code, desc := errorOf(m); code != 0 {
		t.Fatalf("error reply %d: %s", code, desc)
	}
	var r VerifyReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		t.Fatalf("decode verify reply: %v\n%s", err, m.Data)
	}
	return r
}

// planOfReply is the "plan" of a generate reply, as an app sends it back.
func planOfReply(t testing.TB, m *nats.Msg) json.RawMessage {
	t.Helper()
	var whole struct {
		Layout json.RawMessage `json:"layout"`
		SDXL   json.RawMessage `json:"sdxl"`
		Masks  json.RawMessage `json:"masks"`
	}
	if err := json.Unmarshal(m.Data, &whole); err != nil {
		t.Fatal(err)
	}
	return jsonBody(t, whole)
}

// TestVerifyOverNATS plans two objects, then checks generated images
// (the text grounder's detect text stands for what the model would find
// on them) against the plan, named by id and sent inline.
func TestVerifyOverNATS(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	fastStages(&cfg)
	startPlugin(t, cfg, Deps{})
	nc := connectClient(t, srv.ClientURL())

	planned := request(t, nc, "paliprompt.v1.generate", jsonHeader, jsonBody(t, map[string]any{
		"image_b64": b64(scenePNG(t, 320, 240)), "caption": "a cat and a dog",
		"detect": "<loc0100><loc0050><loc0500><loc0400> cat ; <loc0500><loc0600><loc0950><loc0980> dog",
	}))
	plan := decodeReply(t, planned)
	if len(plan.Layout.Objects) != 2 {
		t.Fatalf("layout %+v", plan.Layout)
	}
	cat, dog := plan.Layout.Objects[0].Placed, plan.Layout.Objects[1].Placed
	inPlace := locText("cat", cat) + " ; " + locText("dog", dog)
	swapped := locText("dog", cat) + " ; " + locText("cat", dog)
	byID := func(detect string, w, h int) []byte {
		return jsonBody(t, map[string]any{"image_b64": b64(scenePNG(t, w, h)), "plan_id": plan.ID, "detect": detect})
	}
	inline := func(detect string) []byte {
		return jsonBody(t, map[string]any{"image_b64": b64(scenePNG(t, 256, 256)), "plan": planOfReply(t, planned), "detect": detect})
	}

	tests := []struct {
		name    string
		body    []byte
		pass    bool
		actions []string
	}{
		{"in place", byID(inPlace, 256, 256), true, nil},
		{"in place, another aspect ratio", byID(inPlace, 512, 256), true, nil},
		{"in place, plan inline", inline(inPlace), true, nil},
		{"swapped", byID(swapped, 256, 256), false, []string{verify.ActionObjectMisplaced, verify.ActionRaiseWeight}},
		{"swapped, plan inline", inline(swapped), false, []string{verify.ActionObjectMisplaced}},
		{"dog missing", byID(locText("cat", cat), 256, 256), false, []string{verify.ActionObjectMissing}},
		{"a second cat", byID(inPlace+" ; "+locText("cat", core.Box{X0: 0.7, Y0: 0.05, X1: 0.95, Y1: 0.3}), 256, 256), false, []string{verify.ActionExtraObject}},
		{"nothing planned found", byID(locText("bird", cat), 256, 256), false, []string{verify.ActionObjectMissing, verify.ActionRetrySeed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := decodeVerify(t, request(t, nc, "paliprompt.v1.verify", jsonHeader, tt.body))
			if r.Pass != tt.pass || r.Task != EndpointVerify || len(r.Objects) != 2 || r.Summary == "" {
				t.Fatalf("pass %v, want %v: %+v", r.Pass, tt.pass, r.Report)
			}
			got := map[string]bool{}
			for _, a := range r.Advice {
				got[a.Action] = true
			}
			for _, a := range tt.actions {
				if !got[a] {
					t.Errorf("advice %+v lacks %s", r.Advice, a)
				}
			}
			for _, a := range r.Advice {
				if a.Action == verify.ActionRaiseWeight && a.Weight != cfg.SDXL.ObjectWeight*cfg.Verify.WeightFactor {
					t.Errorf("raise_weight advice %+v: want the plan's weight %v times %v", a, cfg.SDXL.ObjectWeight, cfg.Verify.WeightFactor)
				}
			}
			if tt.pass && (r.Score < cfg.Verify.PassScore || len(r.Advice) != 0) {
				t.Errorf("a pass scores %.2f with advice %+v", r.Score, r.Advice)
			}
			if !hasStage(Reply{timed: r.timed}, "ground") {
				t.Errorf("timings %+v", r.Timings)
			}
		})
	}

	// A raw image with the plan's id in a header; the detect text of the
	// generated image comes as the Paliprompt-Detect-style output header.
	t.Run("raw image, plan id header", func(t *testing.T) {
		body := jsonBody(t, map[string]any{"image_b64": b64(scenePNG(t, 256, 256)), "detect": inPlace})
		r := decodeVerify(t, request(t, nc, "paliprompt.v1.verify", nats.Header{"Content-Type": {"application/json"}, HeaderPlanID: {plan.ID}}, body))
		if !r.Pass || r.PlanID != plan.ID {
			t.Errorf("%+v", r.Report)
		}
	})
}

// TestVerifyErrors: a verify request without a usable plan gets a clear
// error, and the plan fields are refused elsewhere.
func TestVerifyErrors(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	fastStages(&cfg)
	startPlugin(t, cfg, Deps{})
	nc := connectClient(t, srv.ClientURL())
	img := b64(scenePNG(t, 64, 64))
	tests := []struct {
		name, subject string
		body          map[string]any
		header        nats.Header
		code          int
		contains      string
	}{
		{"no plan", "verify", map[string]any{"image_b64": img}, nil, 400, "verify requests need a plan"},
		{"unknown plan id", "verify", map[string]any{"image_b64": img, "plan_id": "never-made"}, nil, 404, `no plan "never-made"`},
		{"bad plan id", "verify", map[string]any{"image_b64": img, "plan_id": "a.b"}, nil, 400, `plan_id "a.b" is not a result id`},
		{"plan and plan id", "verify", map[string]any{"image_b64": img, "plan_id": "x", "plan": map[string]any{"layout": map[string]any{}}}, nil, 400, "not both"},
		{"plan without layout", "verify", map[string]any{"image_b64": img, "plan": map[string]any{"sdxl": nil}}, nil, 400, `"plan" needs the "layout"`},
		{"plan not an object", "verify", map[string]any{"image_b64": img, "plan": "yes"}, nil, 400, `"plan" is not the layout`},
		{"plan with no objects", "verify", map[string]any{"image_b64": img, "plan": map[string]any{"layout": map[string]any{"objects": []any{}}}}, nil, 400, "no objects to look for"},
		{"objects with verify", "verify", map[string]any{"image_b64": img, "plan_id": "x", "objects": []string{"cat"}}, nil, 400, "leave objects out"},
		{"no image", "verify", map[string]any{"plan_id": "x"}, nil, 400, "missing image"},
		{"plan on generate", "generate", map[string]any{"image_b64": img, "plan_id": "x"}, nil, 400, "plan and plan_id are for verify requests"},
		{"plan id header on detect", "detect", map[string]any{"image_b64": img, "objects": []string{"cat"}}, nats.Header{HeaderPlanID: {"x"}}, 400, "is for verify requests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := nats.Header{"Content-Type": {"application/json"}}
			for k, v := range tt.header {
				h[k] = v
			}
			code, desc := errorOf(request(t, nc, "paliprompt.v1."+tt.subject, h, jsonBody(t, tt.body)))
			if code != tt.code || !strings.Contains(desc, tt.contains) {
				t.Errorf("got %d %q, want %d containing %q", code, desc, tt.code, tt.contains)
			}
		})
	}
}

// TestRunVerify: `paliprompt run -verify RESULT.json IMAGE...` checks
// generated images against a result run wrote, its region masks read
// from the files beside it.
func TestRunVerify(t *testing.T) {
	p, err := New(testConfig(t, ""), Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var summary bytes.Buffer
	if err := p.RunFiles(context.Background(), []string{"../examples/requests/generate-house.json"}, RunOptions{Out: out}, &summary); err != nil {
		t.Fatal(err)
	}
	planFile := filepath.Join(out, "house.json")
	data, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	var plan Reply
	if err := json.Unmarshal(data, &plan); err != nil {
		t.Fatal(err)
	}
	var inPlace, swapped []string
	objs := plan.Layout.Objects
	for i, o := range objs {
		inPlace = append(inPlace, locText(o.Label, o.Placed))
		swapped = append(swapped, locText(o.Label, objs[(i+1)%len(objs)].Placed))
	}
	files := map[string]string{"good.json": strings.Join(inPlace, " ; "), "bad.json": strings.Join(swapped, " ; ")}
	var names []string
	for name, detect := range files {
		f := filepath.Join(out, name)
		if err := os.WriteFile(f, jsonBody(t, map[string]any{"image_b64": b64(scenePNG(t, 128, 96)), "detect": detect}), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, f)
	}
	summary.Reset()
	if err := p.RunFiles(context.Background(), names, RunOptions{Out: out, Plan: planFile}, &summary); err != nil {
		t.Fatalf("a failed check is a verdict, not a failed file: %v\n%s", err, summary.String())
	}
	for name, pass := range map[string]bool{"good": true, "bad": false} {
		data, err := os.ReadFile(filepath.Join(out, name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var r VerifyReply
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		if r.Pass != pass || len(r.Notes) != 0 || len(r.Objects) != len(objs) {
			t.Errorf("%s: pass %v, want %v; notes %v; %s", name, r.Pass, pass, r.Notes, r.Summary)
		}
	}
	if !strings.Contains(summary.String(), "verify") || !strings.Contains(summary.String(), "pass (score") {
		t.Errorf("summary:\n%s", summary.String())
	}
}

// TestVerifyOnTheEventBus: a generated image published on
// aiviz.generated.<id> is checked against the plan of reference <id> and
// its result stored on aiviz.prompt.verified.<id>; one that names another
// plan, an unknown plan and a bad image get their result or a failure
// event, and the work queue empties.
func TestVerifyOnTheEventBus(t *testing.T) {
	srv := startServer(t, 0)
	cfg := testConfig(t, srv.ClientURL())
	fastStages(&cfg)
	startPlugin(t, cfg, Deps{})
	nc := connectClient(t, srv.ClientURL())
	js := newJS(t, nc)

	detect := "<loc0100><loc0050><loc0500><loc0400> cat ; <loc0500><loc0600><loc0950><loc0980> dog"
	publishReference(t, js, "aiviz.reference.scene-1", jsonHeader, jsonBody(t, map[string]any{
		"image_b64": b64(scenePNG(t, 320, 240)), "caption": "a cat and a dog", "detect": detect,
	}))
	waitFor(t, "the reference's result", func() bool { return streamMsgs(t, js, "AIVIZ_PROMPTS") == 1 })
	var plan Reply
	if err := json.Unmarshal(resultEvents(t, js)[0].data, &plan); err != nil {
		t.Fatal(err)
	}
	cat, dog := plan.Layout.Objects[0].Placed, plan.Layout.Objects[1].Placed
	generated := func(detect string, extra map[string]any) []byte {
		body := map[string]any{"image_b64": b64(scenePNG(t, 256, 256)), "detect": detect}
		maps.Copy(body, extra)
		return jsonBody(t, body)
	}
	publishReference(t, js, "aiviz.generated.scene-1", jsonHeader, generated(locText("cat", cat)+" ; "+locText("dog", dog), nil))
	publishReference(t, js, "aiviz.generated.render-7", jsonHeader, generated(locText("dog", cat)+" ; "+locText("cat", dog), map[string]any{"plan_id": "scene-1"}))
	publishReference(t, js, "aiviz.generated.never-planned", jsonHeader, generated(locText("cat", cat), nil))
	publishReference(t, js, "aiviz.generated.bad-1", nil, []byte("not an image"))

	waitFor(t, "5 events", func() bool { return streamMsgs(t, js, "AIVIZ_PROMPTS") == 5 })
	waitFor(t, "the work queue to empty", func() bool { return streamMsgs(t, js, "AIVIZ_REFERENCES") == 0 })
	got := map[string]event{}
	for _, e := range resultEvents(t, js) {
		got[e.subject] = e
	}
	for subject, want := range map[string]bool{"aiviz.prompt.verified.scene-1": true, "aiviz.prompt.verified.render-7": false} {
		var r VerifyReply
		if err := json.Unmarshal(got[subject].data, &r); err != nil || r.Task != EndpointVerify || r.PlanID != "scene-1" || r.Pass != want || r.Reference == nil {
			t.Errorf("%s: pass %v, want %v: %s (%v)", subject, r.Pass, want, got[subject].data, err)
		}
	}
	for subject, code := range map[string]int{"aiviz.prompt.failed.never-planned": 404, "aiviz.prompt.failed.bad-1": 415} {
		var f ReplyError
		if err := json.Unmarshal(got[subject].data, &f); err != nil || f.Error.Code != code || f.Task != EndpointVerify {
			t.Errorf("%s: %s (%v), want code %d", subject, got[subject].data, err, code)
		}
	}
}
