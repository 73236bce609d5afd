package plugin

import (
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"paliprompt/core"

	"github.com/nats-io/nats.go"

	"paliprompt/layouts"
	"paliprompt/sdxl"
)

var testLimits = requestLimits{
	MaxImageBytes: 1 << 10, MaxObjects: 3, MaxTextBytes: 256, MaxTimeout: time.Minute, MaxPixels: 1_000_000,
	MaxPlaceEntries: 4, MaxJSONDepth: 8, MaxHeaderBytes: 1 << 10,
}

func TestDecodeRequest(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\nrest")
	tests := []struct {
		name   string
		task   Endpoint
		header nats.Header
		body   string
		want   Request
	}{
		{"raw image with headers", EndpointGenerate,
			nats.Header{HeaderID: {"r1"}, core.ArgObjects.Header: {"cat ; dog;  cat "}, core.ArgLang.Header: {"de"}, HeaderTimeout: {"1.5"}},
			string(png),
			Request{ID: "r1", Endpoint: EndpointGenerate, Image: png, Args: core.PrefixArgs{Lang: "de", Objects: []string{"cat", "dog"}}, Timeout: 1500 * time.Millisecond}},
		{"json image_b64", Endpoint(core.TaskDetect), jsonHeader,
			`{"id": "j1", "image_b64": "` + base64.StdEncoding.EncodeToString(png) + `", "objects": ["a  b", "c"], "timeout": "2s", "sdxl": {"steps": 30}}`,
			Request{ID: "j1", Endpoint: Endpoint(core.TaskDetect), Image: png, Args: core.PrefixArgs{Lang: "en", Objects: []string{"a b", "c"}}, Timeout: 2 * time.Second, SDXL: sdxl.Request{Steps: 30}}},
		{"json without content type", EndpointGenerate, nil,
			` {"image_object": "big.jpg", "objects": "x ; y", "timeout": 3}`,
			Request{Endpoint: EndpointGenerate, ImageObject: "big.jpg", Args: core.PrefixArgs{Lang: "en", Objects: []string{"x", "y"}}, Timeout: 3 * time.Second}},
		{"json id overrides header", EndpointGenerate, nats.Header{HeaderID: {"h"}, "Content-Type": {"application/json; charset=utf-8"}},
			`{"id": "b", "image_b64": "iVBORw0KGgo"}`,
			Request{ID: "b", Endpoint: EndpointGenerate, Image: []byte("\x89PNG\r\n\x1a\n"), Args: core.PrefixArgs{Lang: "en"}}},
		{"placement header", EndpointGenerate, nats.Header{HeaderPlace: {"dog=top-left; mirror"}}, string(png),
			Request{Endpoint: EndpointGenerate, Image: png, Args: core.PrefixArgs{Lang: "en"},
				Place: layouts.Placement{Mirror: true, Moves: layouts.Moves{{Key: "dog", Place: "top-left"}}}}},
		{"placement json", EndpointLayout, nil, `{"width": 10, "height": 10, "place": {"0": [0.5, 0.5, 1, 1]}, "mirror": false, "sdxl": {"width": 1024, "height": 512, "negative": "fog"}}`,
			Request{Endpoint: EndpointLayout, Width: 10, Height: 10, Args: core.PrefixArgs{Lang: "en"},
				Place: layouts.Placement{Moves: layouts.Moves{{Key: "0", Box: &core.Box{X0: 0.5, Y0: 0.5, X1: 1, Y1: 1}}}},
				SDXL:  sdxl.Request{Width: 1024, Height: 512, Negative: "fog"}}},
		{"layout", EndpointLayout, nil,
			`{"width": 640, "height": 480, "caption": "c", "detect": "<loc0001><loc0002><loc0003><loc0004> x", "segment": ""}`,
			Request{Endpoint: EndpointLayout, Width: 640, Height: 480, Args: core.PrefixArgs{Lang: "en"},
				Outputs: core.Outputs{core.TaskCaption: "c", core.TaskDetect: "<loc0001><loc0002><loc0003><loc0004> x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeRequest(tt.task, tt.header, []byte(tt.body), testLimits)
			if err != nil {
				t.Fatal(err)
			}
			got.clock = nil // timings are not part of the request
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	tests := []struct {
		name     string
		task     Endpoint
		header   nats.Header
		body     string
		sentinel error
		contains string
	}{
		{"empty", EndpointGenerate, nil, "", core.ErrBadRequest, "empty request"},
		{"trailing data", EndpointLayout, nil, `{"width": 1, "height": 1} {}`, core.ErrBadRequest, "data after the JSON object"},
		{"syntax", EndpointLayout, nil, `{"width": 1,, }`, core.ErrBadRequest, "malformed JSON request at byte"},
		{"wrong type", EndpointLayout, nil, `{"width": "wide", "height": 1}`, core.ErrBadRequest, `JSON field "width" is a string, want whole number`},
		{"unknown field", EndpointGenerate, jsonHeader, `{"image": "x"}`, core.ErrBadRequest, `unknown field "image"`},
		{"both images", EndpointGenerate, jsonHeader, `{"image_b64": "AAAA", "image_object": "x"}`, core.ErrBadRequest, "not both"},
		{"bad base64", EndpointGenerate, jsonHeader, `{"image_b64": "!!!"}`, core.ErrBadRequest, "image_b64 is not base64"},
		{"large raw", EndpointGenerate, nil, strings.Repeat("x", 2000), core.ErrTooLarge, "image is 2000 bytes, limit is 1024"},
		{"large b64", EndpointGenerate, jsonHeader, `{"image_b64": "` + strings.Repeat("A", 1500) + `"}`, core.ErrTooLarge, "image_b64 is 1500 characters"},
		{"large text", EndpointLayout, nil, `{"width": 1, "height": 1, "caption": "` + strings.Repeat("a", 300) + `"}`, core.ErrTooLarge, "caption text is 300 bytes, limit is 256"},
		{"too many objects", EndpointGenerate, nats.Header{core.ArgObjects.Header: {"a;b;c;d"}}, "x", core.ErrBadRequest, "4 objects, limit is 3"},
		{"empty object", EndpointGenerate, nats.Header{core.ArgObjects.Header: {"a ; ; b"}}, "x", core.ErrBadRequest, "empty object name"},
		{"token in object", EndpointGenerate, jsonHeader, `{"image_b64": "AAAA", "objects": ["<loc0001>"]}`, core.ErrBadRequest, "may not contain"},
		{"objects type", EndpointGenerate, jsonHeader, `{"image_b64": "AAAA", "objects": 3}`, core.ErrBadRequest, "objects"},
		{"bad lang", EndpointGenerate, nats.Header{core.ArgLang.Header: {"english please"}}, "x", core.ErrBadRequest, `lang "english please"`},
		{"bad id", EndpointGenerate, nats.Header{HeaderID: {"a b"}}, "x", core.ErrBadRequest, `id "a b" is not allowed`},
		{"timeout over limit", EndpointGenerate, nats.Header{HeaderTimeout: {"2m"}}, "x", core.ErrBadRequest, "over the limit 1m0s (queue.max_timeout)"},
		{"negative timeout", EndpointLayout, nil, `{"width": 1, "height": 1, "timeout": -1}`, core.ErrBadRequest, "must be positive"},
		{"unknown sdxl option", EndpointLayout, nil, `{"width": 1, "height": 1, "sdxl": {"sampler_name": "euler"}}`, core.ErrBadRequest, `in "sdxl": unknown field "sampler_name"`},
		{"sdxl option type", EndpointLayout, nil, `{"width": 1, "height": 1, "sdxl": {"steps": "many"}}`, core.ErrBadRequest, `in "sdxl": JSON field "steps" is a string`},
		{"bad placement header", EndpointGenerate, nats.Header{HeaderPlace: {"dog"}}, "x", core.ErrBadRequest, "Paliprompt-Place header"},
		{"bad placement json", EndpointLayout, nil, `{"width": 1, "height": 1, "place": ["dog"]}`, core.ErrBadRequest, "place must be an object"},
		{"sdxl not object", EndpointGenerate, jsonHeader, `{"image_b64": "AAAA", "sdxl": [1]}`, core.ErrBadRequest, `"sdxl" must be a JSON object`},
		{"layout with two images", EndpointLayout, nil, `{"width": 1, "height": 1, "image_b64": "AAAA", "image_object": "x.png"}`, core.ErrBadRequest, "set image_b64 or image_object, not both"},
		{"layout without size", EndpointLayout, nil, `{"caption": "x"}`, core.ErrBadRequest, "need width and height"},
		{"layout zero size", EndpointLayout, nil, `{"width": 0, "height": 5}`, core.ErrBadRequest, "must be positive"},
		{"layout too large", EndpointLayout, nil, `{"width": 2000, "height": 2000}`, core.ErrBadImage, "2000x2000 = 4 Mpx, limit is 1 Mpx"},
		{"size on generate", EndpointGenerate, jsonHeader, `{"image_b64": "AAAA", "width": 3}`, core.ErrBadRequest, "only for layout requests"},
		{"missing image", Endpoint(core.TaskSegment), jsonHeader, `{"segment": "x"}`, core.ErrBadRequest, "missing image"},
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
		core.Errorf(core.ErrBadImage, "image is 3x3"),
		core.Errorf(core.ErrBadImage, "second\nline"),
	)
	if got := core.Code(err); got != core.ErrBadImage.Code() {
		t.Errorf("code %d", got)
	}
	if got := core.Describe(err); got != "image is 3x3; second; line" {
		t.Errorf("description %q", got)
	}
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
	lim := requestLimits{MaxImageBytes: 4 << 10, MaxObjects: 16, MaxTextBytes: 1 << 10, MaxTimeout: time.Minute, MaxPixels: 50_000_000,
		MaxPlaceEntries: 32, MaxJSONDepth: 16, MaxHeaderBytes: 16 << 10}
	f.Fuzz(func(t *testing.T, taskIndex byte, contentType, objects, id, timeout string, body []byte) {
		task := Endpoints()[int(taskIndex)%len(Endpoints())]
		header := nats.Header{}
		for k, v := range map[string]string{"Content-Type": contentType, core.ArgObjects.Header: objects, HeaderID: id, HeaderTimeout: timeout} {
			if v != "" {
				header.Set(k, v)
			}
		}
		req, err := decodeRequest(task, header, body, lim)
		if err != nil {
			if code := core.Code(err); code != core.ErrBadRequest.Code() && code != core.ErrTooLarge.Code() && code != core.ErrBadImage.Code() {
				t.Fatalf("error %q has code %d", err, code)
			}
			if strings.ContainsAny(core.Describe(err), "\r\n") {
				t.Fatalf("description %q is not one line", core.Describe(err))
			}
			return
		}
		if req.Endpoint != task || (req.ID != "" && !idRe.MatchString(req.ID)) || len(req.Args.Objects) > lim.MaxObjects {
			t.Fatalf("request %+v breaks its contract", req)
		}
		if int64(len(req.Image)) > lim.MaxImageBytes || req.Timeout < 0 || req.Timeout > lim.MaxTimeout {
			t.Fatalf("request %+v is over its limits", req)
		}
		if task == EndpointLayout && (req.Width <= 0 || req.Height <= 0 || req.Image != nil || req.ImageObject != "") {
			t.Fatalf("layout request %+v", req)
		}
		if task != EndpointLayout && (req.Image == nil) == (req.ImageObject == "") {
			t.Fatalf("request %+v has not exactly one image", req)
		}
	})
}
