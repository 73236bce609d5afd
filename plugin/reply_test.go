package plugin

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"paliprompt/grounding"

	"github.com/nats-io/nats.go"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestReplyGolden runs requests through the pipeline and compares the
// replies (without timings) and their mask PNGs with testdata/golden.
// Regenerate with: go test ./plugin -run TestReplyGolden -update
func TestReplyGolden(t *testing.T) {
	cfg := testConfig(t, "")
	p, err := New(cfg, Deps{Log: testLogger(t), LoadMasks: func(string) (grounding.MaskDecoder, error) { return boxMasks{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		task Endpoint
		body []byte
	}{
		{"layout", EndpointLayout, jsonBody(t, map[string]any{
			"id": "golden-layout", "width": 640, "height": 480,
			"caption": "a shoe and a ball on a floor",
			"detect":  "<loc0051><loc0309><loc0708><loc0646> shoe ; <loc0012><loc0013> cut off",
			"segment": "<loc0512><loc0100><loc0900><loc0400>" + seg16(3) + " ball ; <loc0600><loc0500><loc0500><loc0600>" + seg16(0) + " inverted",
		})},
		{"generate", EndpointGenerate, jsonBody(t, map[string]any{
			"id": "golden-generate", "image_b64": b64(scenePNG(t, 96, 64)),
			"caption": "a red square", "detect": "<loc0256><loc0256><loc0511><loc0511> red square",
			"segment": "<loc0256><loc0256><loc0511><loc0511>" + seg16(9) + " red square",
		})},
	}
	dir := filepath.Join("testdata", "golden")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := decodeRequest(tt.task, nats.Header{}, tt.body, limitsOf(cfg))
			if err != nil {
				t.Fatal(err)
			}
			reply, err := p.pipe.Process(context.Background(), req, nil)
			if err != nil {
				t.Fatal(err)
			}
			reply.clock = nil // timings vary: TestTimingsAddUp checks them
			got := t.TempDir()
			if err := writeReplyFiles(got, reply); err != nil {
				t.Fatal(err)
			}
			if *update {
				copyReplyFiles(t, got, dir, reply.ID)
			}
			compareTrees(t, got, dir, reply.ID)
		})
	}
}

// compareTrees compares <id>.json and <id>/* in got with want: the JSON
// byte for byte, the PNGs by their pixels (the encoder may change bytes).
func compareTrees(t *testing.T, got, want, id string) {
	t.Helper()
	files := []string{id + ".json"}
	pngs, _ := filepath.Glob(filepath.Join(got, id, "*.png"))
	for _, p := range pngs {
		files = append(files, filepath.Join(id, filepath.Base(p)))
	}
	wantPNGs, _ := filepath.Glob(filepath.Join(want, id, "*.png"))
	if len(wantPNGs) != len(pngs) {
		t.Errorf("%d PNGs, golden has %d (run with -update after checking)", len(pngs), len(wantPNGs))
	}
	for _, f := range files {
		g, err := os.ReadFile(filepath.Join(got, f))
		if err != nil {
			t.Fatal(err)
		}
		w, err := os.ReadFile(filepath.Join(want, f))
		if err != nil {
			t.Fatalf("golden %s: %v (run with -update)", f, err)
		}
		if strings.HasSuffix(f, ".png") {
			if problem := pixelProblem(g, w); problem != "" {
				t.Errorf("%s differs from testdata/golden/%s: %s", f, f, problem)
			}
			continue
		}
		if g = withoutInlinePNGs(g); !bytes.Equal(g, w) {
			t.Errorf("%s differs from testdata/golden/%s:\n%s", f, f, g)
		}
	}
}

// pixelProblem says how two PNGs' pixels differ, or "".
func pixelProblem(got, want []byte) string {
	g, _, err := image.Decode(bytes.NewReader(got))
	if err != nil {
		return err.Error()
	}
	w, _, err := image.Decode(bytes.NewReader(want))
	if err != nil {
		return err.Error()
	}
	if g.Bounds() != w.Bounds() {
		return fmt.Sprintf("bounds %v, golden %v", g.Bounds(), w.Bounds())
	}
	for y := w.Bounds().Min.Y; y < w.Bounds().Max.Y; y++ {
		for x := w.Bounds().Min.X; x < w.Bounds().Max.X; x++ {
			if a, b := color.NRGBA64Model.Convert(g.At(x, y)), color.NRGBA64Model.Convert(w.At(x, y)); a != b {
				return fmt.Sprintf("pixel (%d, %d) is %v, golden %v", x, y, a, b)
			}
		}
	}
	return ""
}

// inlinePNG is a base64 PNG in JSON: the A1111 bodies carry the plan's
// images so, which the golden files compare by their pixels instead.
var inlinePNG = regexp.MustCompile(`"iVBORw0KGgo[A-Za-z0-9+/=]*"`)

func withoutInlinePNGs(data []byte) []byte { return inlinePNG.ReplaceAll(data, []byte(`"<png>"`)) }

// copyReplyFiles replaces <to>/<id>.json and <to>/<id>/ with from's.
func copyReplyFiles(t *testing.T, from, to, id string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(to, id)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(to, id), 0o755); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(from, id, "*"))
	for _, f := range append(files, filepath.Join(from, id+".json")) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".json") {
			data = withoutInlinePNGs(data)
		}
		rel, _ := filepath.Rel(from, f)
		if err := os.WriteFile(filepath.Join(to, rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
