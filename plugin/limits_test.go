package plugin

import (
	"bytes"
	"context"
	stdjson "encoding/json"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// limitCase is one input limit, over the limit, through NATS: its key is
// the config key of the README's limits table ("fixed: ..." for limits
// that are not configurable).
type limitCase struct {
	key     string
	name    string
	subject string
	header  nats.Header
	body    []byte
	code    int    // the reply code; 0: a result (a limit that cuts, not refuses)
	says    string // in the description
}

// gifWithJunkFrames is a GIF whose first frame is fine and whose bytes
// after it are garbage: only the first frame is ever read.
func gifWithJunkFrames(t *testing.T) []byte {
	t.Helper()
	pal := color.Palette{color.Black, color.White}
	var buf bytes.Buffer
	err := gif.EncodeAll(&buf, &gif.GIF{Image: []*image.Paletted{image.NewPaletted(image.Rect(0, 0, 40, 30), pal)}, Delay: []int{0}})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.TrimSuffix(buf.Bytes(), []byte{0x3b}) // the trailer
	return append(data, bytes.Repeat([]byte{0x2c, 0xff, 0x00}, 1000)...)
}

// TestLimits sends each input limit of the README's table a request just
// over it, on a real server, and checks the code and that the description
// names the limit; the README lists exactly these limits.
func TestLimits(t *testing.T) {
	srv := startServer(t, 256<<10)
	cfg := testConfig(t, srv.ClientURL())
	fastStages(&cfg)
	cfg.Limits = LimitsConfig{MaxImageBytes: 64 << 10, MaxMegapixels: 0.01, MaxObjects: 3, MaxTextBytes: 256,
		MaxPlaceEntries: 2, MaxJSONDepth: 4, MaxHeaderBytes: 1 << 10}
	cfg.Queue.Timeout, cfg.Queue.MaxTimeout = Duration(30*time.Second), Duration(time.Minute)
	startPlugin(t, cfg, Deps{})
	nc := connectClient(t, srv.ClientURL())
	js := newJS(t, nc)
	images, err := js.ObjectStore(context.Background(), cfg.Objects.ImagesBucket)
	if err != nil {
		t.Fatal(err)
	}
	big := noisePNG(t, 160, 120) // about 58 KB: under max_image_bytes, over 0.01 Mpx
	if _, err := images.PutBytes(context.Background(), "huge.png", noisePNG(t, 200, 150)); err != nil {
		t.Fatal(err)
	}
	small := b64(scenePNG(t, 40, 30))
	json := func(fields map[string]any) []byte { return jsonBody(t, fields) }
	with := func(extra map[string]any) []byte {
		fields := map[string]any{"image_b64": small, "caption": "x"}
		for k, v := range extra {
			fields[k] = v
		}
		return json(fields)
	}
	generate := "paliprompt.v1.generate"
	cases := []limitCase{
		{"limits.max_image_bytes", "raw image", generate, nil, noisePNG(t, 200, 150), 413, "limits.max_image_bytes"},
		{"limits.max_image_bytes", "image_b64", generate, jsonHeader, json(map[string]any{"image_b64": b64(noisePNG(t, 200, 150))}), 413, "limits.max_image_bytes"},
		{"limits.max_image_bytes", "image_object", generate, jsonHeader, json(map[string]any{"image_object": "huge.png", "caption": "x"}), 413, "limits.max_image_bytes"},
		{"limits.max_megapixels", "image", generate, jsonHeader, json(map[string]any{"image_b64": b64(big), "caption": "x"}), 422, "limit is 10000 px"},
		{"limits.max_megapixels", "layout size", "paliprompt.v1.layout", nil, []byte(`{"width": 200, "height": 100}`), 422, "limits.max_megapixels"},
		{"fixed: the first frame", "GIF frames after the first are not read", generate, jsonHeader, json(map[string]any{"image_b64": b64(gifWithJunkFrames(t)), "caption": "x"}), 0, ""},
		{"limits.max_objects", "objects", generate, jsonHeader, with(map[string]any{"objects": []string{"a", "b", "c", "d"}}), 400, "limits.max_objects"},
		{"fixed: 64 bytes", "object name length", generate, jsonHeader, with(map[string]any{"objects": []string{strings.Repeat("n", 65)}}), 400, "is 65 bytes, limit is 64"},
		{"limits.max_text_bytes", "PaliGemma text", generate, jsonHeader, with(map[string]any{"caption": strings.Repeat("c", 257)}), 413, "limits.max_text_bytes"},
		{"limits.max_text_bytes", "question", "paliprompt.v1.answer", jsonHeader, with(map[string]any{"question": strings.Repeat("q", 257)}), 413, "limits.max_text_bytes"},
		{"limits.max_text_bytes", "sdxl.positive", generate, jsonHeader, with(map[string]any{"sdxl": map[string]any{"positive": strings.Repeat("p", 257)}}), 413, "limits.max_text_bytes"},
		{"limits.max_text_bytes", "sdxl.regions prompt", generate, jsonHeader, with(map[string]any{"sdxl": map[string]any{"regions": []any{map[string]any{"object": "0", "prompt": strings.Repeat("p", 257)}}}}), 413, "sdxl.regions[0].prompt is 257 bytes"},
		{"fixed: 64 region controls, 8 LoRAs each", "sdxl.regions", generate, jsonHeader, with(map[string]any{"sdxl": map[string]any{"regions": regionControls(65)}}), 400, "65 region controls, at most 64"},
		{"limits.max_place_entries", "place", generate, jsonHeader, with(map[string]any{"place": map[string]any{"a": "top-left", "b": "top-right", "c": "center"}}), 400, "limits.max_place_entries"},
		{"limits.max_place_entries", "Paliprompt-Place", generate, nats.Header{"Content-Type": {"application/json"}, HeaderPlace: {"a=top-left; b=top-right; c=center"}}, with(nil), 400, "limits.max_place_entries"},
		{"limits.max_json_depth", "nesting", generate, jsonHeader, []byte(`{"image_b64": "` + small + `", "sdxl": {"positive": [[[["deep"]]]]}}`), 400, "limits.max_json_depth"},
		{"(derived)", "JSON request size", generate, jsonHeader, json(map[string]any{"image_b64": small, "caption": strings.Repeat("c", 200<<10)}), 413, "JSON request is"},
		{"limits.max_header_bytes", "headers", generate, nats.Header{"X-Padding": {strings.Repeat("h", 1<<10)}}, big, 413, "limits.max_header_bytes"},
		{"fixed: 256..4096, multiples of 8", "sdxl width/height", generate, jsonHeader, with(map[string]any{"sdxl": map[string]any{"width": 1000, "height": 1001}}), 400, "not a multiple of 8"},
		{"fixed: steps 1..1000, cfg 0..100, seed >= 0", "sdxl steps", generate, jsonHeader, with(map[string]any{"sdxl": map[string]any{"steps": 5000}}), 400, "sdxl.steps: 5000 is out of range: use 1..1000"},
		{"fixed: 1-128 of A-Z a-z 0-9 - _", "id", generate, jsonHeader, with(map[string]any{"id": "has space"}), 400, "use 1 to 128 letters"},
		{"fixed: a language code", "lang", generate, jsonHeader, with(map[string]any{"lang": "english please"}), 400, "is not a language code"},
		{"queue.max_timeout", "timeout", generate, jsonHeader, with(map[string]any{"timeout": "2m"}), 400, "queue.max_timeout"},
	}
	tested := map[string]bool{"nats.embedded.max_payload": true, "queue.size": true} // below, and TestFloodRequests
	for _, tt := range cases {
		tested[tt.key] = true
		t.Run(tt.key+" "+tt.name, func(t *testing.T) {
			m := request(t, nc, tt.subject, tt.header, tt.body)
			code, desc := errorOf(m)
			if code != tt.code || !strings.Contains(desc, tt.says) {
				t.Errorf("reply %d %q, want %d naming %q", code, desc, tt.code, tt.says)
			}
		})
	}

	// The server's max_payload: the publish itself fails, at the client.
	t.Run("nats.embedded.max_payload", func(t *testing.T) {
		_, err := nc.Request(generate, make([]byte, 300<<10), 5*time.Second)
		if !errors.Is(err, nats.ErrMaxPayload) {
			t.Errorf("request over the max payload: %v, want %v", err, nats.ErrMaxPayload)
		}
	})
	// Nothing above left the service in a bad way.
	if reply := decodeReply(t, request(t, nc, "paliprompt.v1.layout", nil, []byte(`{"width": 40, "height": 30}`))); reply.Image.Width != 40 {
		t.Errorf("after the limits: %+v", reply)
	}

	// The README's table lists exactly these limits, once each.
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := readmeLimitKeys(t, string(data))
	for key := range tested {
		if !slices.Contains(listed, key) {
			t.Errorf("README's limits table lacks %q", key)
		}
	}
	for i, key := range listed {
		if !tested[key] {
			t.Errorf("README's limits table lists %q, which no test covers", key)
		}
		if slices.Contains(listed[:i], key) {
			t.Errorf("README's limits table lists %q twice", key)
		}
	}
}

// regionControls is n region controls, each naming the background.
func regionControls(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"object": "background", "prompt": "x"}
	}
	return out
}

// readmeLimitKeys reads the key column of the README's limits table (the
// first table after the "### Limits" heading): `key` or the text of a
// fixed limit.
func readmeLimitKeys(t *testing.T, readme string) []string {
	t.Helper()
	_, section, ok := strings.Cut(readme, "\n### Limits\n")
	if !ok {
		t.Fatal(`README has no "### Limits" section`)
	}
	var keys []string
	row := regexp.MustCompile("^\\| [^|]+ \\| `?([^`|]+?)`? \\|")
	started := false
	for _, line := range strings.Split(section, "\n") {
		switch {
		case strings.HasPrefix(line, "|---"):
			started = true
		case started && strings.HasPrefix(line, "|"):
			if m := row.FindStringSubmatch(line); m != nil {
				keys = append(keys, strings.TrimSpace(m[1]))
			}
		case started:
			return keys
		}
	}
	return keys
}

// referenceDepth is the nesting depth of valid JSON by encoding/json's own
// tokenizer.
func referenceDepth(data []byte) int {
	dec := stdjson.NewDecoder(bytes.NewReader(data))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case stdjson.Delim('{'), stdjson.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case stdjson.Delim('}'), stdjson.Delim(']'):
			depth--
		}
	}
}

// FuzzJSONDepth: on valid JSON, jsonDepth agrees with encoding/json's
// tokenizer (strings with brackets, escaped quotes and backslashes
// included), and it never reads past its limit's answer.
func FuzzJSONDepth(f *testing.F) {
	for _, s := range []string{`{}`, `[[[]]]`, `{"a": "[{\"", "b": [1, {"c": "\\"}]}`, `"[[["`, `{"x": "\\\\\"]"}`, `[{"a":[{"b":[]}]}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := jsonDepth(data, 1<<20)
		if !stdjson.Valid(data) {
			return
		}
		if want := referenceDepth(data); got != want {
			t.Fatalf("jsonDepth(%q) = %d, encoding/json says %d", data, got, want)
		}
		if limited := jsonDepth(data, 2); (got > 2) != (limited > 2) {
			t.Fatalf("jsonDepth(%q, 2) = %d, full depth %d", data, limited, got)
		}
	})
}
