package plugin

import (
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"paliprompt/grounding"
	"paliprompt/layouts"
	"paliprompt/sdxl"
)

var testLimits = requestLimits{
	MaxImageBytes: 1 << 10, MaxObjects: 3, MaxTextBytes: 256, MaxTimeout: time.Minute, MaxPixels: 1_000_000,
}

func TestDecodeRequest(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\nrest")
	tests := []struct {
		name   string
		task   Task
		header nats.Header
		body   string
		want   Request
	}{
		{"raw image with headers", TaskGenerate,
			nats.Header{HeaderID: {"r1"}, HeaderObjects: {"cat ; dog;  cat "}, HeaderLang: {"de"}, HeaderTimeout: {"1.5"}},
			string(png),
			Request{ID: "r1", Task: TaskGenerate, Image: png, Objects: []string{"cat", "dog"}, Lang: "de", Timeout: 1500 * time.Millisecond}},
		{"json image_b64", TaskDetect, jsonHeader,
			`{"id": "j1", "image_b64": "` + base64.StdEncoding.EncodeToString(png) + `", "objects": ["a  b", "c"], "timeout": "2s", "sdxl": {"steps": 30}}`,
			Request{ID: "j1", Task: TaskDetect, Image: png, Objects: []string{"a b", "c"}, Lang: "en", Timeout: 2 * time.Second, SDXL: sdxl.Request{Steps: 30}}},
		{"json without content type", TaskGenerate, nil,
			` {"image_object": "big.jpg", "objects": "x ; y", "timeout": 3}`,
			Request{Task: TaskGenerate, ImageObject: "big.jpg", Objects: []string{"x", "y"}, Lang: "en", Timeout: 3 * time.Second}},
		{"json id overrides header", TaskGenerate, nats.Header{HeaderID: {"h"}, "Content-Type": {"application/json; charset=utf-8"}},
			`{"id": "b", "image_b64": "iVBORw0KGgo"}`,
			Request{ID: "b", Task: TaskGenerate, Image: []byte("\x89PNG\r\n\x1a\n"), Lang: "en"}},
		{"placement header", TaskGenerate, nats.Header{HeaderPlace: {"dog=top-left; mirror"}}, string(png),
			Request{Task: TaskGenerate, Image: png, Lang: "en",
				Place: layouts.Placement{Mirror: true, Moves: layouts.Moves{{Key: "dog", Place: "top-left"}}}}},
		{"placement json", TaskLayout, nil, `{"width": 10, "height": 10, "place": {"0": [0.5, 0.5, 1, 1]}, "mirror": false, "sdxl": {"width": 1024, "height": 512, "negative": "fog"}}`,
			Request{Task: TaskLayout, Width: 10, Height: 10, Lang: "en",
				Place: layouts.Placement{Moves: layouts.Moves{{Key: "0", Box: &layouts.Box{X0: 0.5, Y0: 0.5, X1: 1, Y1: 1}}}},
				SDXL:  sdxl.Request{Width: 1024, Height: 512, Negative: "fog"}}},
		{"layout", TaskLayout, nil,
			`{"width": 640, "height": 480, "caption": "c", "detect": "<loc0001><loc0002><loc0003><loc0004> x", "segment": ""}`,
			Request{Task: TaskLayout, Width: 640, Height: 480, Lang: "en",
				Outputs: grounding.Outputs{Caption: "c", Detect: "<loc0001><loc0002><loc0003><loc0004> x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeRequest(tt.task, tt.header, []byte(tt.body), testLimits)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	tests := []struct {
		name     string
		task     Task
		header   nats.Header
		body     string
		sentinel error
		contains string
	}{
		{"empty", TaskGenerate, nil, "", ErrBadRequest, "empty request"},
		{"trailing data", TaskLayout, nil, `{"width": 1, "height": 1} {}`, ErrBadRequest, "data after the JSON object"},
		{"syntax", TaskLayout, nil, `{"width": 1,, }`, ErrBadRequest, "malformed JSON request at byte"},
		{"wrong type", TaskLayout, nil, `{"width": "wide", "height": 1}`, ErrBadRequest, `JSON field "width" is a string, want whole number`},
		{"unknown field", TaskGenerate, jsonHeader, `{"image": "x"}`, ErrBadRequest, `unknown field "image"`},
		{"both images", TaskGenerate, jsonHeader, `{"image_b64": "AAAA", "image_object": "x"}`, ErrBadRequest, "not both"},
		{"bad base64", TaskGenerate, jsonHeader, `{"image_b64": "!!!"}`, ErrBadRequest, "image_b64 is not base64"},
		{"large raw", TaskGenerate, nil, strings.Repeat("x", 2000), ErrTooLarge, "image is 2000 bytes, limit is 1024"},
		{"large b64", TaskGenerate, jsonHeader, `{"image_b64": "` + strings.Repeat("A", 1500) + `"}`, ErrTooLarge, "image_b64 is 1500 characters"},
		{"large text", TaskLayout, nil, `{"width": 1, "height": 1, "caption": "` + strings.Repeat("a", 300) + `"}`, ErrTooLarge, "caption text is 300 bytes, limit is 256"},
		{"too many objects", TaskGenerate, nats.Header{HeaderObjects: {"a;b;c;d"}}, "x", ErrBadRequest, "4 objects, limit is 3"},
		{"empty object", TaskGenerate, nats.Header{HeaderObjects: {"a ; ; b"}}, "x", ErrBadRequest, "empty object name"},
		{"token in object", TaskGenerate, jsonHeader, `{"image_b64": "AAAA", "objects": ["<loc0001>"]}`, ErrBadRequest, "may not contain"},
		{"objects type", TaskGenerate, jsonHeader, `{"image_b64": "AAAA", "objects": 3}`, ErrBadRequest, "objects"},
		{"bad lang", TaskGenerate, nats.Header{HeaderLang: {"english please"}}, "x", ErrBadRequest, `lang "english please"`},
		{"bad id", TaskGenerate, nats.Header{HeaderID: {"a b"}}, "x", ErrBadRequest, `id "a b" is not allowed`},
		{"timeout over limit", TaskGenerate, nats.Header{HeaderTimeout: {"2m"}}, "x", ErrBadRequest, "over the limit 1m0s (queue.max_timeout)"},
		{"negative timeout", TaskLayout, nil, `{"width": 1, "height": 1, "timeout": -1}`, ErrBadRequest, "must be positive"},
		{"unknown sdxl option", TaskLayout, nil, `{"width": 1, "height": 1, "sdxl": {"sampler": "euler"}}`, ErrBadRequest, `in "sdxl": unknown field "sampler"`},
		{"sdxl option type", TaskLayout, nil, `{"width": 1, "height": 1, "sdxl": {"steps": "many"}}`, ErrBadRequest, `in "sdxl": JSON field "steps" is a string`},
		{"bad placement header", TaskGenerate, nats.Header{HeaderPlace: {"dog"}}, "x", grounding.ErrBadRequest, "Paliprompt-Place header"},
		{"bad placement json", TaskLayout, nil, `{"width": 1, "height": 1, "place": ["dog"]}`, grounding.ErrBadRequest, "place must be an object"},
		{"sdxl not object", TaskGenerate, jsonHeader, `{"image_b64": "AAAA", "sdxl": [1]}`, ErrBadRequest, `"sdxl" must be a JSON object`},
		{"layout with image", TaskLayout, nil, `{"width": 1, "height": 1, "image_b64": "AAAA"}`, ErrBadRequest, "layout requests take no image"},
		{"layout without size", TaskLayout, nil, `{"caption": "x"}`, ErrBadRequest, "need width and height"},
		{"layout zero size", TaskLayout, nil, `{"width": 0, "height": 5}`, ErrBadRequest, "must be positive"},
		{"layout too large", TaskLayout, nil, `{"width": 2000, "height": 2000}`, grounding.ErrBadImage, "2000x2000 = 4 Mpx, limit is 1 Mpx"},
		{"size on generate", TaskGenerate, jsonHeader, `{"image_b64": "AAAA", "width": 3}`, ErrBadRequest, "only for layout requests"},
		{"missing image", TaskSegment, jsonHeader, `{"segment": "x"}`, ErrBadRequest, "missing image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeRequest(tt.task, tt.header, []byte(tt.body), testLimits)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, tt.sentinel) || !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q, want %v containing %q", err, tt.sentinel, tt.contains)
			}
		})
	}
}

func TestErrorCodeAndDescribe(t *testing.T) {
	err := errors.Join(
		errorf(grounding.ErrBadImage, "image is 3x3"),
		errorf(grounding.ErrBadImage, "second\nline"),
	)
	if got := ErrorCode(err); got != CodeBadImage {
		t.Errorf("code %d", got)
	}
	if got := Describe(err); got != "image is 3x3; second; line" {
		t.Errorf("description %q", got)
	}
}

func errorf(sentinel error, msg string) error {
	return fmt.Errorf("%w: %s", sentinel, msg)
}

// FuzzDecodeRequest: whatever the headers and body, decodeRequest returns
// a request or an error wrapping one of the 4xx sentinels, never panics,
// and what it returns respects the limits.
func FuzzDecodeRequest(f *testing.F) {
	png := string(hugePNGHeader(30000, 30000))
	seeds := []struct {
		task              byte
		contentType, objs string
		id, timeout, body string
	}{
		{0, "application/json", "", "", "", `{"id": "a", "image_b64": "iVBORw0KGgo=", "objects": ["cat", "dog"], "caption": "x", "sdxl": {}}`},
		{4, "", "", "", "", `{"width": 640, "height": 480, "caption": "a cat", "detect": "<loc0051><loc0309><loc0708><loc0646> shoe", "segment": ""}`},
		{0, "", "cat ; dog", "id-1", "30s", png},
		{0, "", ";;;", "", "-1", "GIF89a"},
		{1, "application/json", "", "", "", `{"image_object": "x", "timeout": 1e99}`},
		{2, "text/plain", "a<b", "x.y", "NaN", "{"},
		{3, "application/json", "", "", "", `{"image_b64": "////", "objects": "a ; b ; c ; d ; e ; f ; g ; h ; i ; j ; k ; l ; m ; n ; o ; p ; q"}`},
		{4, "", "", "", "", `{"width": 99999999999, "height": -1}`},
		{4, "", "", "", "", `{"width": 1, "height": 1, "sdxl": "x"} trailing`},
		{4, "", "", "", "", `{"width": 9, "height": 9, "place": {"cat": "top-left", "1": [0, 0, 0.5, 0.5]}, "mirror": true, "sdxl": {"width": 1024, "height": 1024, "seed": 7}}`},
		{4, "", "", "", "", `{"width": 9, "height": 9, "place": {"cat": [2, 0, 0.5]}, "sdxl": {"steps": -1, "cfg": "x"}}`},
		{0, "application/json", "", "", "", `{"image_b64": "` + strings.Repeat("A", 100) + `\n` + strings.Repeat("B", 7) + `"}`},
	}
	for _, s := range seeds {
		f.Add(s.task, s.contentType, s.objs, s.id, s.timeout, []byte(s.body))
	}
	lim := requestLimits{MaxImageBytes: 4 << 10, MaxObjects: 16, MaxTextBytes: 1 << 10, MaxTimeout: time.Minute, MaxPixels: 50_000_000}
	f.Fuzz(func(t *testing.T, taskIndex byte, contentType, objects, id, timeout string, body []byte) {
		task := Tasks[int(taskIndex)%len(Tasks)]
		header := nats.Header{}
		for k, v := range map[string]string{"Content-Type": contentType, HeaderObjects: objects, HeaderID: id, HeaderTimeout: timeout} {
			if v != "" {
				header.Set(k, v)
			}
		}
		req, err := decodeRequest(task, header, body, lim)
		if err != nil {
			if code := ErrorCode(err); code != CodeBadRequest && code != CodeTooLarge && code != CodeBadImage {
				t.Fatalf("error %q has code %d", err, code)
			}
			if strings.ContainsAny(Describe(err), "\r\n") {
				t.Fatalf("description %q is not one line", Describe(err))
			}
			return
		}
		if req.Task != task || (req.ID != "" && !idRe.MatchString(req.ID)) || len(req.Objects) > lim.MaxObjects {
			t.Fatalf("request %+v breaks its contract", req)
		}
		if int64(len(req.Image)) > lim.MaxImageBytes || req.Timeout < 0 || req.Timeout > lim.MaxTimeout {
			t.Fatalf("request %+v is over its limits", req)
		}
		if task == TaskLayout && (req.Width <= 0 || req.Height <= 0 || req.Image != nil || req.ImageObject != "") {
			t.Fatalf("layout request %+v", req)
		}
		if task != TaskLayout && (req.Image == nil) == (req.ImageObject == "") {
			t.Fatalf("request %+v has not exactly one image", req)
		}
	})
}
