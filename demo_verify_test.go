package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"strings"
	"testing"

	"github.com/fogleman/gg"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"paliprompt/internal/heldout"
	"paliprompt/plugin"
)

// The demo world's colours (tools/demo_scenes.py COLOURS): a "generated"
// image drawn from a plan uses them, as SDXL would draw what the prompt
// names.
var demoColours = map[string]color.RGBA{
	"red": {220, 40, 40, 255}, "green": {40, 170, 60, 255}, "blue": {40, 80, 220, 255},
	"yellow": {240, 210, 40, 255}, "orange": {245, 140, 30, 255}, "purple": {140, 60, 190, 255},
}

const (
	verifyImages = 20 // plans; each is drawn right once and wrong once
	// floorVerifyAccuracy is the share of the 40 drawn images the demo
	// model judges right (pass for a right one, fail for a wrong one),
	// less a margin: a pipeline change that makes verify worse fails.
	floorVerifyAccuracy = 0.50
)

// drawnObject is one shape to draw: its demo-world name and its box,
// normalized.
type drawnObject struct {
	label string
	box   [4]float64
}

// drawPlan draws shapes as a generator following the plan would: each
// the largest square inside its box, on a grey canvas w x h, as PNG.
func drawPlan(t testing.TB, w, h int, objects []drawnObject) []byte {
	t.Helper()
	dc := gg.NewContext(w, h)
	dc.SetRGB255(128, 128, 128)
	dc.Clear()
	for _, o := range objects {
		colour, shape, ok := strings.Cut(o.label, " ")
		c, known := demoColours[colour]
		if !ok || !known {
			t.Fatalf("%q is not a demo-world shape", o.label)
		}
		x0, y0, x1, y1 := o.box[0]*float64(w), o.box[1]*float64(h), o.box[2]*float64(w), o.box[3]*float64(h)
		side := math.Min(x1-x0, y1-y0)
		drawShape(dc, shape, (x0+x1-side)/2, (y0+y1-side)/2, side)
		dc.SetColor(c)
		dc.Fill()
	}
	var buf bytes.Buffer
	if err := dc.EncodePNG(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// drawShape traces an upright shape in the side x side square at (x0, y0),
// as tools/demo_scenes.py shape_polygon does.
func drawShape(dc *gg.Context, shape string, x0, y0, side float64) {
	cx, cy, r := x0+side/2, y0+side/2, side/2
	var pts [][2]float64
	switch shape {
	case "circle":
		dc.DrawCircle(cx, cy, r)
		return
	case "square":
		pts = [][2]float64{{x0, y0}, {x0 + side, y0}, {x0 + side, y0 + side}, {x0, y0 + side}}
	case "triangle":
		pts = [][2]float64{{cx, y0}, {x0 + side, y0 + side}, {x0, y0 + side}}
	case "diamond":
		pts = [][2]float64{{cx, y0}, {x0 + side, cy}, {cx, y0 + side}, {x0, cy}}
	case "star":
		for i := range 10 {
			rad := r
			if i%2 == 1 {
				rad = r * 0.45
			}
			a := -math.Pi/2 + float64(i)*math.Pi/5
			pts = append(pts, [2]float64{cx + rad*math.Cos(a), cy + rad*math.Sin(a)})
		}
	}
	for _, p := range pts {
		dc.LineTo(p[0], p[1])
	}
	dc.ClosePath()
}

// detectText is the ground-truth PaliGemma detect text of a held-out
// scene (bins round(coord/size*1023), y before x).
func detectText(sc heldout.Scene) string {
	var parts []string
	for _, o := range sc.Objects {
		b := o.Box
		bin := func(v float64, size int) int { return int(math.Round(v / float64(size) * 1023)) }
		parts = append(parts, fmt.Sprintf("<loc%04d><loc%04d><loc%04d><loc%04d> %s",
			bin(b[1], sc.Height), bin(b[0], sc.Width), bin(b[3], sc.Height), bin(b[2], sc.Width), o.Name))
	}
	return strings.Join(parts, " ; ")
}

// planned is a plan made by the layout endpoint: its id, canvas and objects.
type planned struct {
	id      string
	w, h    int
	objects []drawnObject
}

// planScene asks the layout endpoint for the plan of a held-out scene
// from its true detect text (the plan is not what is under test here).
func planScene(t testing.TB, nc *nats.Conn, cfg plugin.Config, id string, sc heldout.Scene) planned {
	t.Helper()
	body := fmt.Sprintf(`{"id": %q, "width": %d, "height": %d, "detect": %q}`, id, sc.Width, sc.Height, detectText(sc))
	m, err := nc.Request(cfg.Service.SubjectPrefix+".layout", []byte(body), demoSceneDeadline)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeReply(m)
	if err != nil {
		t.Fatal(err)
	}
	p := planned{id: r.ID, w: r.SDXL.Width, h: r.SDXL.Height}
	for _, o := range r.Layout.Objects {
		p.objects = append(p.objects, drawnObject{o.Label, [4]float64{o.Placed.X0, o.Placed.Y0, o.Placed.X1, o.Placed.Y1}})
	}
	return p
}

// wrongly breaks a plan the way SDXL does: the first two objects of
// different labels swap places (even i), or the first object is left out.
func wrongly(objects []drawnObject, i int) ([]drawnObject, string) {
	out := append([]drawnObject(nil), objects...)
	if i%2 == 0 {
		for k := 1; k < len(out); k++ {
			if out[k].label != out[0].label {
				out[0].box, out[k].box = out[k].box, out[0].box
				return out, "swapped " + out[0].label + " and " + out[k].label
			}
		}
	}
	return out[1:], "left out " + out[0].label
}

// verifyDrawn sends a drawn image to the verify endpoint with the plan's
// id (request/reply).
func verifyDrawn(nc *nats.Conn, cfg plugin.Config, planID string, png []byte) (*plugin.VerifyReply, error) {
	msg := nats.NewMsg(cfg.Service.SubjectPrefix + ".verify")
	msg.Data = png
	msg.Header.Set(plugin.HeaderPlanID, planID)
	m, err := nc.RequestMsg(msg, demoSceneDeadline)
	if err != nil {
		return nil, err
	}
	return decodeVerify(m)
}

// publishGenerated puts a drawn image on the event bus and waits for its
// verify result: the right one as aiviz.generated.<plan id> (checked
// against that plan by default), the wrong one under another id naming
// the plan in a header.
func publishGenerated(nc *nats.Conn, cfg plugin.Config, planID string, right bool, png []byte) (*plugin.VerifyReply, error) {
	id := planID
	msg := nats.NewMsg("")
	msg.Data = png
	if !right {
		id = planID + "-wrong"
		msg.Header.Set(plugin.HeaderPlanID, planID)
	}
	msg.Subject = strings.TrimSuffix(cfg.Events.GeneratedSubjects[0], ">") + id
	m, err := awaitEvent(nc, msg, id, cfg.Events.VerifiedSubject, cfg.Events.FailedSubject)
	if err != nil {
		return nil, err
	}
	return decodeVerify(m)
}

// TestDemoModelVerify draws 20 plans right and 20 wrong (two objects
// swapped, or one left out) and checks what the demo model's verify says
// of them, half by request/reply and half on the event bus: the accuracy
// asked for in the verify issue.
func TestDemoModelVerify(t *testing.T) {
	if testing.Short() {
		t.Skip("40 images through the demo model take a minute: make test and make quality run it")
	}
	nc, cfg := startDemoService(t)
	var right, wrong, rightOK, wrongOK int
	var lines []string
	for i, sc := range loadHeldout(t) {
		if right == verifyImages {
			break
		}
		if len(sc.Objects) < 2 {
			continue
		}
		p := planScene(t, nc, cfg, fmt.Sprintf("plan-%03d", i), sc)
		w, h := 512, 512*p.h/p.w
		broken, how := wrongly(p.objects, right)
		for _, c := range []struct {
			objects []drawnObject
			want    bool
			what    string
		}{{p.objects, true, "right"}, {broken, false, how}} {
			img := drawPlan(t, w, h, c.objects)
			var r *plugin.VerifyReply
			var err error
			if right%2 == 0 {
				r, err = verifyDrawn(nc, cfg, p.id, img)
			} else {
				r, err = publishGenerated(nc, cfg, p.id, c.want, img)
			}
			if err != nil {
				t.Fatalf("%s %s: %v", p.id, c.what, err)
			}
			ok := r.Pass == c.want
			if c.want {
				right++
				rightOK += b2i(ok)
			} else {
				wrong++
				wrongOK += b2i(ok)
			}
			lines = append(lines, fmt.Sprintf("  %s %-6v %-40s %s", p.id, ok, c.what, r.Summary))
		}
	}
	acc := float64(rightOK+wrongOK) / float64(right+wrong)
	t.Logf("demo model verify: %d/%d right images pass, %d/%d wrong images fail, accuracy %.3f (floor %.2f)\n%s",
		rightOK, right, wrongOK, wrong, acc, floorVerifyAccuracy, strings.Join(lines, "\n"))
	if right != verifyImages {
		t.Fatalf("only %d held-out scenes with two objects or more", right)
	}
	if acc < floorVerifyAccuracy {
		t.Errorf("verify accuracy %.3f is below the floor %.2f", acc, floorVerifyAccuracy)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func decodeVerify(msg *nats.Msg) (*plugin.VerifyReply, error) {
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		return nil, fmt.Errorf("error %s: %s", code, msg.Header.Get(micro.ErrorHeader))
	}
	var r plugin.VerifyReply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return nil, fmt.Errorf("decode verify reply: %w", err)
	}
	return &r, nil
}

// BenchmarkDemoModelVerify measures one verify request with the demo
// model over NATS (one vision pass, one batched detect decode), and the
// share of it that is the model.
//
//	go test -run '^$' -bench DemoModelVerify -benchtime 20x .
func BenchmarkDemoModelVerify(b *testing.B) {
	nc, cfg := startDemoService(b)
	var sc heldout.Scene
	for _, s := range loadHeldout(b) {
		if len(s.Objects) == 3 {
			sc = s
			break
		}
	}
	p := planScene(b, nc, cfg, "bench-plan", sc)
	img := drawPlan(b, 1024, 1024*p.h/p.w, p.objects)
	var ground float64
	b.ResetTimer()
	for range b.N {
		r, err := verifyDrawn(nc, cfg, p.id, img)
		if err != nil {
			b.Fatal(err)
		}
		for _, tm := range r.Timings {
			if tm.Stage == "ground" {
				ground += tm.MS
			}
		}
	}
	b.ReportMetric(ground/float64(b.N), "ground-ms/op")
}
