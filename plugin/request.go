package plugin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"paliprompt/grounding"
	"paliprompt/layouts"
	"paliprompt/sdxl"
)

// Task is the work a request asks for; it is also the endpoint's name.
type Task string

// The tasks, one per endpoint of the micro service.
const (
	// TaskGenerate runs the whole pipeline: caption, detect, segment,
	// layout and SDXL plan.
	TaskGenerate Task = "generate"
	TaskCaption  Task = "caption"
	TaskDetect   Task = "detect"
	TaskSegment  Task = "segment"
	// TaskLayout takes PaliGemma output text and an image size (no image)
	// and runs everything after the model.
	TaskLayout Task = "layout"
)

// Tasks lists every task in endpoint order.
var Tasks = []Task{TaskGenerate, TaskCaption, TaskDetect, TaskSegment, TaskLayout}

// Request headers read with a raw image body (and as defaults for JSON).
const (
	HeaderID      = "Paliprompt-Id"
	HeaderObjects = "Paliprompt-Objects"
	HeaderLang    = "Paliprompt-Lang"
	HeaderTimeout = "Paliprompt-Timeout"
	// HeaderPlace moves objects on the target canvas:
	// "character=top-left; dog=on the right; mirror" (layouts.ParsePlacement).
	HeaderPlace = "Paliprompt-Place"
)

// Request is one decoded request: what to do, and on which image.
type Request struct {
	// ID names the request in replies and events; empty until the caller
	// assigns one.
	ID   string
	Task Task
	// Image is the encoded image sent in the message; ImageObject names
	// one in the images bucket instead. Exactly one is set, except for
	// layout requests, which carry neither.
	Image       []byte
	ImageObject string
	// Width and Height are the image size of a layout request.
	Width, Height int
	// Objects are the names to detect and segment; empty lets the
	// grounder take them from the caption.
	Objects []string
	Lang    string
	// Outputs carries PaliGemma output text produced elsewhere.
	Outputs grounding.Outputs
	// Place moves objects on the target canvas and may mirror the layout.
	Place layouts.Placement
	// SDXL holds the request's options for the SDXL stage.
	SDXL sdxl.Request
	// Timeout is the deadline the request asks for; zero: the default.
	Timeout time.Duration
}

// HasOutputs reports whether the request carries PaliGemma output text.
func (r Request) HasOutputs() bool {
	return r.Outputs != (grounding.Outputs{})
}

// requestLimits bound what decodeRequest accepts.
type requestLimits struct {
	MaxImageBytes int64
	MaxObjects    int
	MaxTextBytes  int64
	MaxTimeout    time.Duration
	MaxPixels     int
}

func limitsOf(cfg Config) requestLimits {
	return requestLimits{
		MaxImageBytes: int64(cfg.Limits.MaxImageBytes),
		MaxObjects:    cfg.Limits.MaxObjects,
		MaxTextBytes:  int64(cfg.Limits.MaxTextBytes),
		MaxTimeout:    time.Duration(cfg.Queue.MaxTimeout),
		MaxPixels:     cfg.MaxPixels(),
	}
}

// jsonRequest is the JSON form of a request.
type jsonRequest struct {
	ID          string          `json:"id"`
	ImageB64    *string         `json:"image_b64"`
	ImageObject *string         `json:"image_object"`
	Objects     objectList      `json:"objects"`
	Lang        string          `json:"lang"`
	SDXL        json.RawMessage `json:"sdxl"`
	Place       *layouts.Moves  `json:"place"`
	Mirror      *bool           `json:"mirror"`
	Caption     string          `json:"caption"`
	Detect      string          `json:"detect"`
	Segment     string          `json:"segment"`
	Width       *int            `json:"width"`
	Height      *int            `json:"height"`
	Timeout     json.RawMessage `json:"timeout"`
}

// objectList reads "objects" as a list of names or as one "a ; b" string.
type objectList []string

func (o *objectList) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*o = splitObjects(s)
		return nil
	}
	var list []string
	if err := json.Unmarshal(data, &list); err != nil {
		return errors.New(`"objects" must be a list of names or one string "cat ; dog"`)
	}
	*o = list
	return nil
}

func splitObjects(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return strings.Split(s, ";")
}

// decodeRequest decodes a request for task from a message's headers and
// body. The body is a JSON request when Content-Type says so or when it is
// a JSON object; otherwise it is the image itself. Layout requests are
// always JSON. Nothing is fetched or decoded here: the image stays bytes.
func decodeRequest(task Task, header nats.Header, body []byte, lim requestLimits) (Request, error) {
	req := Request{Task: task, Lang: "en"}
	if err := applyHeaders(&req, header, lim); err != nil {
		return Request{}, err
	}
	if len(body) == 0 {
		if task == TaskLayout {
			return Request{}, fmt.Errorf(`%w: empty request: send JSON {"width", "height", "caption", "detect", "segment"}`, ErrBadRequest)
		}
		return Request{}, fmt.Errorf("%w: empty request: send image bytes, or JSON with image_b64 or image_object", ErrBadRequest)
	}
	if task == TaskLayout || isJSON(header, body) {
		if err := decodeJSON(&req, body, lim); err != nil {
			return Request{}, err
		}
	} else {
		if int64(len(body)) > lim.MaxImageBytes {
			return Request{}, fmt.Errorf("%w: image is %d bytes, limit is %d (limits.max_image_bytes)", ErrTooLarge, len(body), lim.MaxImageBytes)
		}
		req.Image = body
	}
	if err := validateRequest(&req, lim); err != nil {
		return Request{}, err
	}
	return req, nil
}

// isJSON: Content-Type application/json, or a body that opens a JSON
// object (no image format starts with '{').
func isJSON(header nats.Header, body []byte) bool {
	if ct := header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/json" {
			return true
		}
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{'
}

func applyHeaders(req *Request, header nats.Header, lim requestLimits) error {
	req.ID = strings.TrimSpace(header.Get(HeaderID))
	if v := header.Get(HeaderObjects); v != "" {
		req.Objects = splitObjects(v)
	}
	if v := strings.TrimSpace(header.Get(HeaderLang)); v != "" {
		req.Lang = v
	}
	if v := header.Get(HeaderPlace); v != "" {
		place, err := layouts.ParsePlacement(v)
		if err != nil {
			return fmt.Errorf("%s header: %w", HeaderPlace, err)
		}
		req.Place = place
	}
	if v := header.Get(HeaderTimeout); v != "" {
		d, err := parseTimeout(v, HeaderTimeout+" header", lim)
		if err != nil {
			return err
		}
		req.Timeout = d
	}
	return nil
}

// jsonFields lists the JSON request's fields for error messages.
var jsonFields = "id, image_b64, image_object, objects, lang, place, mirror, sdxl, caption, detect, segment, width, height, timeout"

func decodeJSON(req *Request, body []byte, lim requestLimits) error {
	// base64 grows the image by 4/3; the texts and the rest are small.
	if max := lim.MaxImageBytes/3*4 + 4 + 3*lim.MaxTextBytes + 64<<10; int64(len(body)) > max {
		return fmt.Errorf("%w: JSON request is %d bytes, limit is %d (an image of limits.max_image_bytes in base64, plus text)", ErrTooLarge, len(body), max)
	}
	var j jsonRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return jsonProblem(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: malformed JSON request: data after the JSON object", ErrBadRequest)
	}
	if j.ID != "" {
		req.ID = strings.TrimSpace(j.ID)
	}
	if j.Objects != nil {
		req.Objects = j.Objects
	}
	if j.Lang != "" {
		req.Lang = strings.TrimSpace(j.Lang)
	}
	if len(j.Timeout) > 0 {
		d, err := parseJSONTimeout(j.Timeout, lim)
		if err != nil {
			return err
		}
		req.Timeout = d
	}
	if err := decodeSDXL(&req.SDXL, j.SDXL); err != nil {
		return err
	}
	if j.Place != nil {
		req.Place.Moves = *j.Place
	}
	if j.Mirror != nil {
		req.Place.Mirror = *j.Mirror
	}
	req.Outputs = grounding.Outputs{Caption: j.Caption, Detect: j.Detect, Segment: j.Segment}
	if err := setImage(req, j, lim); err != nil {
		return err
	}
	return setSize(req, j)
}

// decodeSDXL reads the "sdxl" object strictly: an unknown option is a 400
// naming it.
func decodeSDXL(out *sdxl.Request, raw json.RawMessage) error {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return fmt.Errorf(`%w: "sdxl" must be a JSON object of SDXL options`, ErrBadRequest)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf(`%w: in "sdxl": %s`, ErrBadRequest, Describe(jsonProblem(err)))
	}
	return nil
}

// jsonProblem turns a json decoding error into a 400 naming the problem.
func jsonProblem(err error) error {
	if errors.Is(err, grounding.ErrBadRequest) {
		return err // a field's own decoder (place) said what is wrong
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("%w: malformed JSON request at byte %d: %v", ErrBadRequest, syntax.Offset, err)
	case errors.As(err, &typ):
		return fmt.Errorf("%w: JSON field %q is a %s, want %s", ErrBadRequest, typ.Field, typ.Value, jsonType(typ.Type.String()))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%w: malformed JSON request: it ends early", ErrBadRequest)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("%w: unknown field %s in JSON request (fields: %s)", ErrBadRequest,
			strings.TrimPrefix(err.Error(), "json: unknown field "), jsonFields)
	}
	return fmt.Errorf("%w: malformed JSON request: %s", ErrBadRequest, strings.TrimPrefix(err.Error(), "json: "))
}

func jsonType(goType string) string {
	switch goType {
	case "string", "*string":
		return "string"
	case "int", "*int":
		return "whole number"
	}
	return goType
}

func setImage(req *Request, j jsonRequest, lim requestLimits) error {
	hasB64, hasObject := j.ImageB64 != nil, j.ImageObject != nil
	if req.Task == TaskLayout {
		if hasB64 || hasObject {
			return fmt.Errorf("%w: layout requests take no image (width and height instead); send images to generate", ErrBadRequest)
		}
		return nil
	}
	switch {
	case hasB64 && hasObject:
		return fmt.Errorf("%w: set image_b64 or image_object, not both", ErrBadRequest)
	case hasObject:
		name := strings.TrimSpace(*j.ImageObject)
		if name == "" {
			return fmt.Errorf("%w: image_object is empty", ErrBadRequest)
		}
		req.ImageObject = name
	case hasB64:
		if max := lim.MaxImageBytes/3*4 + 4; int64(len(*j.ImageB64)) > max {
			return fmt.Errorf("%w: image_b64 is %d characters, limit is %d (limits.max_image_bytes = %d bytes)",
				ErrTooLarge, len(*j.ImageB64), max, lim.MaxImageBytes)
		}
		data, err := decodeBase64(*j.ImageB64)
		if err != nil {
			return fmt.Errorf("%w: image_b64 is not base64: %v", ErrBadRequest, err)
		}
		if int64(len(data)) > lim.MaxImageBytes {
			return fmt.Errorf("%w: image is %d bytes, limit is %d (limits.max_image_bytes)", ErrTooLarge, len(data), lim.MaxImageBytes)
		}
		req.Image = data
	default:
		return fmt.Errorf("%w: missing image: set image_b64 (base64 image bytes) or image_object (a name in the images bucket)", ErrBadRequest)
	}
	return nil
}

// decodeBase64 accepts standard base64 with or without padding, and
// line breaks (what `base64` writes).
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	if data, err := base64.StdEncoding.DecodeString(s); err == nil {
		return data, nil
	}
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

func setSize(req *Request, j jsonRequest) error {
	if req.Task != TaskLayout {
		if j.Width != nil || j.Height != nil {
			return fmt.Errorf("%w: width and height are only for layout requests: here the image gives the size", ErrBadRequest)
		}
		return nil
	}
	if j.Width == nil || j.Height == nil {
		return fmt.Errorf("%w: layout requests need width and height (the original image size in pixels)", ErrBadRequest)
	}
	req.Width, req.Height = *j.Width, *j.Height
	return nil
}

var (
	idRe   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	langRe = regexp.MustCompile(`^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})?$`)
)

// maxObjectName bounds one object name (PaliGemma's prompt is short).
const maxObjectName = 100

// validateRequest checks the fields that do not depend on the body form.
func validateRequest(req *Request, lim requestLimits) error {
	if req.ID != "" && !idRe.MatchString(req.ID) {
		return fmt.Errorf("%w: id %q is not allowed: use 1 to 128 letters, digits, '-' and '_' (it becomes a subject token)", ErrBadRequest, req.ID)
	}
	if !langRe.MatchString(req.Lang) {
		return fmt.Errorf("%w: lang %q is not a language code like \"en\" or \"pt-BR\"", ErrBadRequest, req.Lang)
	}
	objects, err := cleanObjects(req.Objects, lim.MaxObjects)
	if err != nil {
		return err
	}
	req.Objects = objects
	for _, t := range []struct{ name, text string }{
		{"caption", req.Outputs.Caption}, {"detect", req.Outputs.Detect}, {"segment", req.Outputs.Segment},
	} {
		if int64(len(t.text)) > lim.MaxTextBytes {
			return fmt.Errorf("%w: %s text is %d bytes, limit is %d (limits.max_text_bytes)", ErrTooLarge, t.name, len(t.text), lim.MaxTextBytes)
		}
	}
	if req.Task == TaskLayout {
		return checkLayoutSize(req.Width, req.Height, lim.MaxPixels)
	}
	return nil
}

// cleanObjects trims names, drops duplicates and rejects names PaliGemma's
// prompt cannot carry.
func cleanObjects(names []string, max int) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.Join(strings.Fields(n), " ")
		switch {
		case n == "":
			return nil, fmt.Errorf("%w: empty object name in %q", ErrBadRequest, strings.Join(names, " ; "))
		case len(n) > maxObjectName:
			return nil, fmt.Errorf("%w: object name %.20q... is %d bytes, limit is %d", ErrBadRequest, n, len(n), maxObjectName)
		case strings.ContainsAny(n, ";<>"):
			return nil, fmt.Errorf("%w: object name %q may not contain ';', '<' or '>'", ErrBadRequest, n)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if len(out) > max {
		return nil, fmt.Errorf("%w: %d objects, limit is %d (limits.max_objects)", ErrBadRequest, len(out), max)
	}
	return out, nil
}

// checkLayoutSize validates the image size given in a layout request.
func checkLayoutSize(w, h, maxPixels int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%w: layout size %dx%d: width and height must be positive", ErrBadRequest, w, h)
	}
	if int64(w)*int64(h) > int64(maxPixels) {
		return fmt.Errorf("%w: layout size %dx%d = %.0f Mpx, limit is %.0f Mpx (limits.max_megapixels)",
			grounding.ErrBadImage, w, h, float64(w)*float64(h)/1e6, float64(maxPixels)/1e6)
	}
	return nil
}

func parseTimeout(s, where string, lim requestLimits) (time.Duration, error) {
	s = strings.TrimSpace(s)
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || secs != secs {
			return 0, fmt.Errorf("%w: %s %q is not a duration like \"30s\" or a number of seconds", ErrBadRequest, where, s)
		}
		d = time.Duration(min(secs, 1e9) * float64(time.Second))
	}
	if d <= 0 {
		return 0, fmt.Errorf("%w: %s %q must be positive", ErrBadRequest, where, s)
	}
	if d > lim.MaxTimeout {
		return 0, fmt.Errorf("%w: %s %s is over the limit %s (queue.max_timeout)", ErrBadRequest, where, d, lim.MaxTimeout)
	}
	return d, nil
}

func parseJSONTimeout(raw json.RawMessage, lim requestLimits) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return parseTimeout(s, "timeout", lim)
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err == nil {
		return parseTimeout(strconv.FormatFloat(secs, 'f', -1, 64), "timeout", lim)
	}
	return 0, fmt.Errorf(`%w: "timeout" must be a duration string like "30s" or a number of seconds`, ErrBadRequest)
}
