package plugin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"paliprompt/core"
	"paliprompt/layouts"
	"paliprompt/sdxl"
)

// Endpoint is an endpoint of the micro service (paliprompt.v1.<name>) and
// the "task" of a reply: generate, layout, or one per task of the task
// table that has Endpoint set.
type Endpoint string

// The endpoints that are not a single PaliGemma task.
const (
	// EndpointGenerate runs the whole pipeline: the generate tasks of the
	// task table, the layout and the SDXL plan.
	EndpointGenerate Endpoint = "generate"
	// EndpointLayout takes PaliGemma output text and an image size (no
	// image) and runs everything after the model.
	EndpointLayout Endpoint = "layout"
)

// Endpoints lists every endpoint in service order: generate, the task
// table's endpoints, layout, verify.
func Endpoints() []Endpoint {
	out := []Endpoint{EndpointGenerate}
	for _, name := range core.TaskNames(func(t core.Task) bool { return t.Endpoint }) {
		out = append(out, Endpoint(name))
	}
	return append(out, EndpointLayout, EndpointVerify)
}

// task is the task of a single-task endpoint.
func (e Endpoint) task() (core.Task, bool) {
	t, ok := core.LookupTask(core.TaskName(e))
	return t, ok && t.Endpoint
}

// tasks are the grounding tasks the endpoint runs.
func (e Endpoint) tasks() []core.TaskName {
	if t, ok := e.task(); ok {
		return []core.TaskName{t.Name}
	}
	return core.TaskNames(func(t core.Task) bool { return t.Generate })
}

// plans reports whether the endpoint runs the layout and SDXL stages.
func (e Endpoint) plans() bool { return e == EndpointGenerate || e == EndpointLayout }

// Request headers of the plugin's own fields; the task table's arguments
// have theirs in core.Args (Paliprompt-Objects, Paliprompt-Lang, ...).
const (
	HeaderID      = "Paliprompt-Id"
	HeaderTimeout = "Paliprompt-Timeout"
	// HeaderPlace moves objects on the target canvas:
	// "character=top-left; dog=on the right; mirror" (layouts.ParsePlacement).
	HeaderPlace = "Paliprompt-Place"
)

// Request is one decoded request: what to do, and on which image.
type Request struct {
	// ID names the request in replies and events; empty until the caller
	// assigns one.
	ID       string
	Endpoint Endpoint
	// Image is the encoded image sent in the message; ImageObject names
	// one in the images bucket instead. Exactly one is set, except for
	// layout requests, which may carry one (of their width and height)
	// for the preview and the conditioning images, or neither.
	Image       []byte
	ImageObject string
	// Width and Height are the image size of a layout request.
	Width, Height int
	// Args are the task prefixes' arguments: the language, the objects to
	// detect and segment (empty: the grounder takes them from the
	// caption), the question of an answer request.
	Args core.PrefixArgs
	// Outputs carries PaliGemma output text produced elsewhere, by task.
	Outputs core.Outputs
	// Place moves objects on the target canvas and may mirror the layout.
	Place layouts.Placement
	// SDXL holds the request's options for the SDXL stage.
	SDXL sdxl.Request
	// Include names the reply parts wanted (Parts); nil: all.
	Include Include
	// Plan (inline) or PlanID (a kept result's) is what a verify request
	// checks its image against.
	Plan   *PlanJSON
	PlanID string
	// Timeout is the deadline the request asks for; zero: the default.
	Timeout time.Duration

	// clock started when the message was taken up: decoding the request
	// is the first stage of its timings.
	clock *core.Stopwatch
	// planDir is the folder of a plan file (`paliprompt run -verify`),
	// where its mask files are.
	planDir string
	// Reference is the event-bus message the request came in (nil for
	// request/reply and files); its reply carries it.
	Reference *Reference
}

// requestLimits bound what decodeRequest accepts.
type requestLimits struct {
	MaxImageBytes   int64
	MaxObjects      int
	MaxTextBytes    int64
	MaxPlaceEntries int
	MaxJSONDepth    int
	MaxHeaderBytes  int64
	MaxTimeout      time.Duration
	MaxPixels       int
}

func limitsOf(cfg Config) requestLimits {
	l := cfg.Limits
	return requestLimits{
		MaxImageBytes:   int64(l.MaxImageBytes),
		MaxObjects:      l.MaxObjects,
		MaxTextBytes:    int64(l.MaxTextBytes),
		MaxPlaceEntries: l.MaxPlaceEntries,
		MaxJSONDepth:    l.MaxJSONDepth,
		MaxHeaderBytes:  int64(l.MaxHeaderBytes),
		MaxTimeout:      time.Duration(cfg.Queue.MaxTimeout),
		MaxPixels:       cfg.MaxPixels(),
	}
}

// jsonRequest holds the JSON request's own fields. The task table adds
// one field per prefix argument (core.Args: "objects", "lang",
// "question", ...) and one per task for its output text ("caption",
// "detect", ...); decodeJSON routes each field of the body to its place.
type jsonRequest struct {
	ID          string          `json:"id"`
	ImageB64    *string         `json:"image_b64"`
	ImageObject *string         `json:"image_object"`
	SDXL        json.RawMessage `json:"sdxl"`
	Place       *layouts.Moves  `json:"place"`
	Mirror      *bool           `json:"mirror"`
	Width       *int            `json:"width"`
	Height      *int            `json:"height"`
	Timeout     json.RawMessage `json:"timeout"`
	Include     json.RawMessage `json:"include"`
	Plan        json.RawMessage `json:"plan"`
	PlanID      *string         `json:"plan_id"`
}

// ownFields maps the JSON names of jsonRequest to their field indexes.
var ownFields = func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeFor[jsonRequest]()
	for i := range t.NumField() {
		m[t.Field(i).Tag.Get("json")] = i
	}
	return m
}()

// JSONFields lists every field of a JSON request: its own, the task
// table's arguments, the outputs of the tasks an endpoint serves.
func JSONFields() []string {
	t := reflect.TypeFor[jsonRequest]()
	var out []string
	for i := range t.NumField() {
		out = append(out, t.Field(i).Tag.Get("json"))
	}
	for _, a := range core.Args {
		out = append(out, a.Name)
	}
	for _, name := range core.TaskNames(core.Task.Served) {
		out = append(out, string(name))
	}
	return out
}

// decodeRequest decodes a request for an endpoint from a message's headers
// and body. The body is a JSON request when Content-Type says so or when
// it is a JSON object; otherwise it is the image itself. Layout requests
// are always JSON. Nothing is fetched or decoded here: the image stays
// bytes.
func decodeRequest(ep Endpoint, header nats.Header, body []byte, lim requestLimits) (Request, error) {
	req := Request{Endpoint: ep, Args: core.PrefixArgs{Lang: core.ArgLang.Default}, clock: core.NewStopwatch()}
	if n := headerBytes(header); n > lim.MaxHeaderBytes {
		return Request{}, core.Errorf(core.ErrTooLarge, "headers are %d bytes, limit is %d (limits.max_header_bytes)", n, lim.MaxHeaderBytes)
	}
	if err := applyHeaders(&req, header, lim); err != nil {
		return Request{}, err
	}
	if len(body) == 0 {
		if ep == EndpointLayout {
			return Request{}, core.Errorf(core.ErrBadRequest, `empty request: send JSON {"width", "height", "caption", "detect", "segment"}`)
		}
		return Request{}, core.Errorf(core.ErrBadRequest, "empty request: send image bytes, or JSON with image_b64 or image_object")
	}
	if ep == EndpointLayout || isJSON(header, body) {
		if err := decodeJSON(&req, body, lim); err != nil {
			return Request{}, err
		}
	} else {
		if int64(len(body)) > lim.MaxImageBytes {
			return Request{}, core.Errorf(core.ErrTooLarge, "image is %d bytes, limit is %d (limits.max_image_bytes)", len(body), lim.MaxImageBytes)
		}
		req.Image = body
	}
	if err := validateRequest(&req, lim); err != nil {
		return Request{}, err
	}
	req.clock.Lap("request decoding")
	return req, nil
}

// headerBytes is the size of a message's headers, names and values.
func headerBytes(h nats.Header) int64 {
	var n int64
	for k, vs := range h {
		for _, v := range vs {
			n += int64(len(k) + len(v))
		}
	}
	return n
}

// jsonDepth is the deepest nesting of objects and arrays in a JSON text,
// counted up to limit+1 (it stops there): checked before decoding, so
// that a deep document costs no more than reading it once.
func jsonDepth(data []byte, limit int) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inString:
			// Skip to the next quote or backslash in one call: base64
			// images are most of a large request.
			j := bytes.IndexAny(data[i:], `"\`)
			if j < 0 {
				return deepest
			}
			i += j
			if data[i] == '\\' {
				i++
			} else {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > deepest {
				if deepest = depth; deepest > limit {
					return deepest
				}
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
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
	for _, a := range core.Args {
		if v := header.Get(a.Header); strings.TrimSpace(v) != "" {
			setArg(&req.Args, a, v, nil)
		}
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
	if v := strings.TrimSpace(header.Get(HeaderPlanID)); v != "" {
		req.PlanID = v
	}
	if v := header.Get(HeaderInclude); v != "" {
		in, err := parseInclude(v)
		if err != nil {
			return fmt.Errorf("%s header: %w", HeaderInclude, err)
		}
		req.Include = in
	}
	return nil
}

// setArg stores an argument's value: a "cat ; dog" string, or for names
// also a list (list is non-nil).
func setArg(args *core.PrefixArgs, a core.Arg, s string, list []string) {
	switch a.Kind {
	case core.ArgNames:
		if list == nil {
			list = splitObjects(s)
		}
		args.Objects = list
	case core.ArgLanguage:
		args.Lang = strings.TrimSpace(s)
	default:
		if args.Text == nil {
			args.Text = map[string]string{}
		}
		args.Text[a.Name] = s
	}
}

func splitObjects(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return strings.Split(s, ";")
}

func decodeJSON(req *Request, body []byte, lim requestLimits) error {
	// base64 grows the image by 4/3; the texts and the rest are small.
	if max := lim.MaxImageBytes/3*4 + 4 + 3*lim.MaxTextBytes + 64<<10; int64(len(body)) > max {
		return core.Errorf(core.ErrTooLarge, "JSON request is %d bytes, limit is %d (an image of limits.max_image_bytes in base64, plus text)", len(body), max)
	}
	if d := jsonDepth(body, lim.MaxJSONDepth); d > lim.MaxJSONDepth {
		return core.Errorf(core.ErrBadRequest, "JSON request nests more than %d objects or arrays deep (limits.max_json_depth)", lim.MaxJSONDepth)
	}
	fields, err := splitJSON(body)
	if err != nil {
		return err
	}
	var j jsonRequest
	own := reflect.ValueOf(&j).Elem()
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		raw := fields[name]
		if i, ok := ownFields[name]; ok {
			if err := json.Unmarshal(raw, own.Field(i).Addr().Interface()); err != nil {
				return fieldProblem(name, err)
			}
			continue
		}
		if err := decodeTableField(req, name, raw); err != nil {
			return err
		}
	}
	if j.ID != "" {
		req.ID = strings.TrimSpace(j.ID)
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
	if len(j.Include) > 0 {
		in, err := decodeInclude(j.Include)
		if err != nil {
			return err
		}
		req.Include = in
	}
	if err := setPlan(req, j); err != nil {
		return err
	}
	if j.Place != nil {
		req.Place.Moves = *j.Place
	}
	if j.Mirror != nil {
		req.Place.Mirror = *j.Mirror
	}
	if err := setImage(req, j, lim); err != nil {
		return err
	}
	return setSize(req, j)
}

// splitJSON reads one JSON object into its top-level fields.
func splitJSON(body []byte) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil {
		return nil, jsonProblem(err)
	}
	if fields == nil {
		return nil, core.Errorf(core.ErrBadRequest, "malformed JSON request: want an object, got null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, core.Errorf(core.ErrBadRequest, "malformed JSON request: data after the JSON object")
	}
	return fields, nil
}

// decodeTableField reads a field the task table declares: a prefix
// argument or a task's output text.
func decodeTableField(req *Request, name string, raw json.RawMessage) error {
	for _, a := range core.Args {
		if a.Name != name {
			continue
		}
		if a.Kind == core.ArgNames {
			var list objectList
			if err := json.Unmarshal(raw, &list); err != nil {
				return core.Errorf(core.ErrBadRequest, "%v", err)
			}
			setArg(&req.Args, a, "", append([]string{}, list...))
			return nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fieldProblem(name, err)
		}
		if strings.TrimSpace(s) != "" {
			setArg(&req.Args, a, s, nil)
		}
		return nil
	}
	if t, ok := core.LookupTask(core.TaskName(name)); ok && t.Served() {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fieldProblem(name, err)
		}
		if s != "" {
			if req.Outputs == nil {
				req.Outputs = core.Outputs{}
			}
			req.Outputs[core.TaskName(name)] = s
		}
		return nil
	}
	return core.Errorf(core.ErrBadRequest, "unknown field %q in JSON request (fields: %s)", name, strings.Join(JSONFields(), ", "))
}

// setPlan reads a verify request's plan: inline, or by id.
func setPlan(req *Request, j jsonRequest) error {
	hasPlan := len(j.Plan) > 0 && !bytes.Equal(j.Plan, []byte("null"))
	if (hasPlan || j.PlanID != nil) && req.Endpoint != EndpointVerify {
		return core.Errorf(core.ErrBadRequest, "plan and plan_id are for verify requests")
	}
	if hasPlan && j.PlanID != nil {
		return core.Errorf(core.ErrBadRequest, "set plan or plan_id, not both")
	}
	if j.PlanID != nil {
		req.PlanID = strings.TrimSpace(*j.PlanID)
	}
	if hasPlan {
		pj, err := decodePlan(j.Plan)
		if err != nil {
			return err
		}
		req.Plan = pj
	}
	return nil
}

// decodeInclude reads "include": a list of part names or one string
// "preview, comfyui".
func decodeInclude(raw json.RawMessage) (Include, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return parseInclude(s)
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, core.Errorf(core.ErrBadRequest, `"include" must be a list of part names or one string "preview, comfyui" (parts: %s)`, strings.Join(Parts(), ", "))
	}
	return checkInclude(list)
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

// decodeSDXL reads the "sdxl" object strictly: an unknown option is a 400
// naming it.
func decodeSDXL(out *sdxl.Request, raw json.RawMessage) error {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	fields, err := splitJSON(raw)
	if err != nil {
		return core.Errorf(core.ErrBadRequest, `"sdxl" must be a JSON object of SDXL options`)
	}
	options := reflect.ValueOf(out).Elem()
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		i, ok := sdxlOptions[name]
		if !ok {
			return core.Errorf(core.ErrBadRequest, `in "sdxl": unknown field %q (options: %s)`, name, strings.Join(slices.Sorted(maps.Keys(sdxlOptions)), ", "))
		}
		if err := json.Unmarshal(fields[name], options.Field(i).Addr().Interface()); err != nil {
			return core.Errorf(core.ErrBadRequest, `in "sdxl": %s`, core.Describe(fieldProblem(name, err)))
		}
	}
	return nil
}

// sdxlOptions maps the JSON names of sdxl.Request's options to their
// field indexes.
var sdxlOptions = func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeFor[sdxl.Request]()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}()

// jsonProblem turns a json decoding error of the whole body into a 400
// naming the problem.
func jsonProblem(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return core.Errorf(core.ErrBadRequest, "malformed JSON request at byte %d: %v", syntax.Offset, err)
	case errors.As(err, &typ):
		return core.Errorf(core.ErrBadRequest, "malformed JSON request: want an object, got %s", typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return core.Errorf(core.ErrBadRequest, "malformed JSON request: it ends early")
	}
	return core.Errorf(core.ErrBadRequest, "malformed JSON request: %v", err)
}

// fieldProblem turns the decoding error of one field into a 400 naming
// the field; a field's own decoder (place) that already says what is
// wrong is kept.
func fieldProblem(name string, err error) error {
	if core.KindOf(err) == core.ErrBadRequest {
		return err
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return core.Errorf(core.ErrBadRequest, "JSON field %q is a %s, want %s", name, typ.Value, jsonType(typ.Type))
	}
	return core.Errorf(core.ErrBadRequest, "JSON field %q: %v", name, err)
}

func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "whole number"
	case reflect.Float64, reflect.Float32:
		return "number"
	case reflect.Bool:
		return "true or false"
	}
	return t.String()
}

func setImage(req *Request, j jsonRequest, lim requestLimits) error {
	hasB64, hasObject := j.ImageB64 != nil, j.ImageObject != nil
	switch {
	case req.Endpoint == EndpointLayout && !hasB64 && !hasObject:
		return nil // the usual layout request: no image, only its size
	case hasB64 && hasObject:
		return core.Errorf(core.ErrBadRequest, "set image_b64 or image_object, not both")
	case hasObject:
		name := strings.TrimSpace(*j.ImageObject)
		if name == "" {
			return core.Errorf(core.ErrBadRequest, "image_object is empty")
		}
		req.ImageObject = name
	case hasB64:
		if max := lim.MaxImageBytes/3*4 + 4; int64(len(*j.ImageB64)) > max {
			return core.Errorf(core.ErrTooLarge, "image_b64 is %d characters, limit is %d (limits.max_image_bytes = %d bytes)",
				len(*j.ImageB64), max, lim.MaxImageBytes)
		}
		data, err := decodeBase64(*j.ImageB64)
		if err != nil {
			return core.Errorf(core.ErrBadRequest, "image_b64 is not base64: %v", err)
		}
		if int64(len(data)) > lim.MaxImageBytes {
			return core.Errorf(core.ErrTooLarge, "image is %d bytes, limit is %d (limits.max_image_bytes)", len(data), lim.MaxImageBytes)
		}
		req.Image = data
	default:
		return core.Errorf(core.ErrBadRequest, "missing image: set image_b64 (base64 image bytes) or image_object (a name in the images bucket)")
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
	if req.Endpoint != EndpointLayout {
		if j.Width != nil || j.Height != nil {
			return core.Errorf(core.ErrBadRequest, "width and height are only for layout requests: here the image gives the size")
		}
		return nil
	}
	if j.Width == nil || j.Height == nil {
		return core.Errorf(core.ErrBadRequest, "layout requests need width and height (the original image size in pixels)")
	}
	req.Width, req.Height = *j.Width, *j.Height
	return nil
}

var (
	idRe   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	langRe = regexp.MustCompile(`^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})?$`)
)

// validateRequest checks the fields that do not depend on the body form.
func validateRequest(req *Request, lim requestLimits) error {
	if req.ID != "" && !idRe.MatchString(req.ID) {
		return core.Errorf(core.ErrBadRequest, "id %q is not allowed: use 1 to 128 letters, digits, '-' and '_' (it becomes a subject token)", req.ID)
	}
	if !langRe.MatchString(req.Args.Lang) {
		return core.Errorf(core.ErrBadRequest, "lang %q is not a language code like \"en\" or \"pt-BR\"", req.Args.Lang)
	}
	objects, err := cleanObjects(req.Args.Objects, lim.MaxObjects)
	if err != nil {
		return err
	}
	req.Args.Objects = objects
	if n := len(req.Place.Moves); n > lim.MaxPlaceEntries {
		return core.Errorf(core.ErrBadRequest, "%d placement moves, limit is %d (limits.max_place_entries)", n, lim.MaxPlaceEntries)
	}
	if err := checkTexts(req, lim); err != nil {
		return err
	}
	if t, ok := req.Endpoint.task(); ok && req.Outputs[t.Name] == "" {
		if a, missing := t.MissingArg(req.Args); missing {
			return core.Errorf(core.ErrBadRequest, "%s requests need %s (%s): set the JSON field %q or the header %s",
				t.Name, a.Name, a.Doc, a.Name, a.Header)
		}
	}
	if req.PlanID != "" && req.Endpoint != EndpointVerify {
		return core.Errorf(core.ErrBadRequest, "plan_id (header %s) is for verify requests", HeaderPlanID)
	}
	if req.Endpoint == EndpointVerify && len(req.Args.Objects) > 0 {
		return core.Errorf(core.ErrBadRequest, "verify looks for the plan's objects: leave objects out")
	}
	if req.PlanID != "" && !idRe.MatchString(req.PlanID) {
		return core.Errorf(core.ErrBadRequest, "plan_id %q is not a result id: 1 to 128 letters, digits, '-' and '_'", req.PlanID)
	}
	if req.Endpoint == EndpointLayout {
		return checkLayoutSize(req.Width, req.Height, lim.MaxPixels)
	}
	return nil
}

// checkTexts bounds the output texts and the free-text arguments, and
// makes the arguments one clean line.
func checkTexts(req *Request, lim requestLimits) error {
	for _, name := range core.TaskNames(nil) {
		if n := int64(len(req.Outputs[name])); n > lim.MaxTextBytes {
			return core.Errorf(core.ErrTooLarge, "%s text is %d bytes, limit is %d (limits.max_text_bytes)", name, n, lim.MaxTextBytes)
		}
	}
	texts := map[string]string{"sdxl.positive": req.SDXL.Positive, "sdxl.negative": req.SDXL.Negative}
	for i, rc := range req.SDXL.Regions {
		key := fmt.Sprintf("sdxl.regions[%d]", i)
		texts[key+".object"], texts[key+".prompt"], texts[key+".negative"] = rc.Object, rc.Prompt, rc.Negative
		for j, l := range rc.LoRAs {
			texts[fmt.Sprintf("%s.loras[%d].name", key, j)] = l.Name
		}
	}
	for _, name := range slices.Sorted(maps.Keys(texts)) {
		if n := int64(len(texts[name])); n > lim.MaxTextBytes {
			return core.Errorf(core.ErrTooLarge, "%s is %d bytes, limit is %d (limits.max_text_bytes)", name, n, lim.MaxTextBytes)
		}
	}
	for name, v := range req.Args.Text {
		if n := int64(len(v)); n > lim.MaxTextBytes {
			return core.Errorf(core.ErrTooLarge, "%s is %d bytes, limit is %d (limits.max_text_bytes)", name, n, lim.MaxTextBytes)
		}
		if req.Args.Text[name] = core.CleanText(v); req.Args.Text[name] == "" {
			delete(req.Args.Text, name)
		}
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
		if n == "" {
			return nil, core.Errorf(core.ErrBadRequest, "empty object name in %.80q", strings.Join(names, " ; "))
		}
		if problem := core.NameProblem(n); problem != "" {
			return nil, core.Errorf(core.ErrBadRequest, "object name %.40q in %.80q %s", n, strings.Join(names, " ; "), problem)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if len(out) > max {
		return nil, core.Errorf(core.ErrBadRequest, "%d objects, limit is %d (limits.max_objects)", len(out), max)
	}
	return out, nil
}

// checkLayoutSize validates the image size given in a layout request.
func checkLayoutSize(w, h, maxPixels int) error {
	if w <= 0 || h <= 0 {
		return core.Errorf(core.ErrBadRequest, "layout size %dx%d: width and height must be positive", w, h)
	}
	if int64(w)*int64(h) > int64(maxPixels) {
		return core.Errorf(core.ErrBadImage, "layout size %dx%d = %.0f Mpx, limit is %.0f Mpx (limits.max_megapixels)",
			w, h, float64(w)*float64(h)/1e6, float64(maxPixels)/1e6)
	}
	return nil
}

func parseTimeout(s, where string, lim requestLimits) (time.Duration, error) {
	s = strings.TrimSpace(s)
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || secs != secs {
			return 0, core.Errorf(core.ErrBadRequest, "%s %q is not a duration like \"30s\" or a number of seconds", where, s)
		}
		d = time.Duration(min(secs, 1e9) * float64(time.Second))
	}
	if d <= 0 {
		return 0, core.Errorf(core.ErrBadRequest, "%s %q must be positive", where, s)
	}
	if d > lim.MaxTimeout {
		return 0, core.Errorf(core.ErrBadRequest, "%s %s is over the limit %s (queue.max_timeout)", where, d, lim.MaxTimeout)
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
	return 0, core.Errorf(core.ErrBadRequest, `"timeout" must be a duration string like "30s" or a number of seconds`)
}
