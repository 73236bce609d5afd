package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"maps"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"paliprompt/core"
	"paliprompt/internal/pngenc"
	"paliprompt/layouts"
	"paliprompt/sdxl"
)

// Schema names the reply format; it changes when a field changes meaning.
const Schema = "paliprompt.v1"

// Reply is the JSON answer to a request and the payload of a result event.
// Field order is the order in the JSON: what the grounder found first, then
// what the later stages made of it.
type Reply struct {
	Schema string `json:"schema"`
	ID     string `json:"id"`
	// Reference identifies the event-bus reference a result answers: two
	// results for one id tell apart by it (the higher sequence is the
	// newer reference). Absent in request/reply answers.
	Reference *Reference     `json:"reference,omitempty"`
	Task      Endpoint       `json:"task"`
	Image     ImageInfo      `json:"image"`
	Caption   string         `json:"caption"`
	Objects   []ReplyObject  `json:"objects"`
	Answers   []ReplyAnswer  `json:"answers,omitempty"`
	Skipped   []ReplySkipped `json:"skipped"`
	Outputs   core.Outputs   `json:"outputs"`
	// Layout, SDXL, Masks and Preview are filled by the layouts and sdxl
	// stages (generate and layout requests only).
	Layout *layouts.Layout `json:"layout,omitempty"`
	// SDXL is the generation plan. Its mask PNGs are not inline in it
	// (sdxl.regions[].mask and regional_prompter.mask are null): they are
	// in Masks, under the file names the plan gives them (mask_file).
	SDXL  *sdxl.Plan       `json:"sdxl,omitempty"`
	Masks map[string]*Blob `json:"masks,omitempty"`
	// inlineOnly are the plan's images that only its A1111 bodies carry
	// (not asked for on their own): encoded with the others, never placed.
	inlineOnly map[string]*Blob
	// Preview is the layout preview PNG: the reference with its grid,
	// boxes and masks beside the SDXL canvas with its regions.
	Preview *Blob `json:"preview,omitempty"`
	// Payloads names the A1111 request bodies (sdxl.a1111) that left the
	// reply as JSON documents: to the results bucket when the reply would
	// not fit the max payload with them inline, or to files beside the
	// result JSON (`paliprompt run`).
	Payloads map[string]*Blob `json:"payloads,omitempty"`
	timed
}

// timed is the timings of a reply, embedded last so that they are the
// JSON's last field: the reply's own encoding is one of its stages.
type timed struct {
	// Timings are the stages of the request, one after another, adding up
	// to the last entry, "total" (from the request's decoding to the
	// encoded reply).
	Timings []ReplyTiming `json:"timings,omitempty"`

	// clock times the stages while the reply is built; nil in a reply
	// decoded from JSON.
	clock *core.Stopwatch
}

// encodeTimed marshals outer (the reply that embeds t) without its
// timings, adds the time that took to them, and appends them with the
// total as the JSON's last field.
func (t *timed) encodeTimed(outer any) ([]byte, error) {
	if t.clock == nil {
		return marshalReply(outer)
	}
	timings := t.Timings
	t.Timings = nil
	body, err := marshalReply(outer)
	t.Timings = timings
	if err != nil {
		return nil, err
	}
	t.clock.Lap("reply encoding")
	t.Timings = append(replyTimings(t.clock.Laps()), ReplyTiming{Stage: "total", MS: ms(t.clock.Elapsed())})
	tail, err := marshalJSON(t.Timings)
	if err != nil {
		return nil, fmt.Errorf("encode reply: %w", err)
	}
	out := append(bytes.TrimSuffix(body, []byte("}")), []byte(`,"timings":`)...)
	return append(append(out, tail...), '}'), nil
}

func marshalReply(v any) ([]byte, error) {
	data, err := marshalJSON(v)
	if err != nil {
		return nil, fmt.Errorf("encode reply: %w", err)
	}
	return data, nil
}

// ImageInfo describes the original image. Format is empty for layout
// requests, which carry no image.
type ImageInfo struct {
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Format string `json:"format,omitempty"`
}

// ReplyObject is one grounded object. Boxes are [x0, y0, x1, y1]: x first,
// in pixels of the original image (Box) and as fractions of its size
// (BoxNorm), decoded from PaliGemma's location bins as v/1023.
type ReplyObject struct {
	Label   string     `json:"label"`
	Box     [4]float64 `json:"box"`
	BoxNorm [4]float64 `json:"box_norm"`
	// Source is the task that found the object: "detect" or "segment".
	Source core.TaskName `json:"source"`
	Mask   *ReplyMask    `json:"mask,omitempty"`
}

// ReplyMask is a segmentation mask. Its PNGs cover Rect only (pixels of the
// original image, [x0, y0, x1, y1), x1 and y1 exclusive); outside Rect the
// mask is empty.
type ReplyMask struct {
	Rect [4]int `json:"rect"`
	// Area is the number of pixels in the binary mask.
	Area int `json:"area"`
	// Binary is 255 inside the mask and 0 outside (decoder value > 0).
	Binary *Blob `json:"binary,omitempty"`
	// Soft is the soft mask, clip(value*0.5+0.5, 0, 1) as 0..255 grey.
	Soft *Blob `json:"soft,omitempty"`
}

// Blob is a PNG in a reply: inline as base64, or, when large, stored in
// the results bucket (Object names it), or written beside the result JSON
// by `paliprompt run` (File names it). (Payloads names JSON documents
// the same way, never inline.)
type Blob struct {
	PNG    []byte `json:"png,omitempty"`
	Bucket string `json:"bucket,omitempty"`
	Object string `json:"object,omitempty"`
	File   string `json:"file,omitempty"`
	Bytes  int    `json:"bytes"`
	// name is the blob's file name inside the reply ("preview.png"), used
	// for objects and files.
	name string
	// encoded is the PNG as encoded, kept when PNG moves to the bucket or
	// a file: the plan's A1111 bodies embed it (sdxl.InlinePNG).
	encoded []byte
	// render makes the image until encodePNGs turns it into PNG (in one of
	// its workers: rendering a mask at the reference's size costs too).
	render func() image.Image
}

// imageBlob is a blob of an image made already.
func imageBlob(img image.Image) *Blob { return &Blob{render: func() image.Image { return img }} }

// ReplyAnswer is the output of a free-form prefix.
type ReplyAnswer struct {
	Prefix string `json:"prefix"`
	Text   string `json:"text"`
}

// ReplySkipped is an output fragment that could not be parsed.
type ReplySkipped struct {
	Task     core.TaskName `json:"task"`
	Fragment string        `json:"fragment"`
	Reason   string        `json:"reason"`
}

// ReplyTiming is the wall time of one stage in milliseconds (core.Timing):
// Parts break it down, one after another unless Concurrent says how many
// ran side by side.
type ReplyTiming struct {
	Stage      string        `json:"stage"`
	MS         float64       `json:"ms"`
	Parts      []ReplyTiming `json:"parts,omitempty"`
	Concurrent int           `json:"concurrent,omitempty"`
}

func replyTimings(ts []core.Timing) []ReplyTiming {
	out := []ReplyTiming{}
	for _, t := range ts {
		rt := ReplyTiming{Stage: t.Stage, MS: ms(t.Duration), Concurrent: t.Concurrent}
		if len(t.Parts) > 0 {
			rt.Parts = replyTimings(t.Parts)
		}
		out = append(out, rt)
	}
	return out
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// ReplyError is the payload of a failure event.
type ReplyError struct {
	Schema    string     `json:"schema"`
	ID        string     `json:"id"`
	Reference *Reference `json:"reference,omitempty"`
	// Task is what the event was for: "generate" or "layout" (a
	// reference), "verify" (a generated image). Absent in replies.
	Task  Endpoint `json:"task,omitempty"`
	Error struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
	// Deliveries is how often the reference was tried.
	Deliveries uint64 `json:"deliveries,omitempty"`
}

func newReplyError(id string, ref *Reference, code int, desc string, deliveries uint64) ReplyError {
	r := ReplyError{Schema: Schema, ID: id, Reference: ref, Deliveries: deliveries}
	r.Error.Code, r.Error.Description = code, desc
	return r
}

// newReply turns a grounding result into the reply's grounding fields.
// Mask PNGs are encoded later, with the reply's other PNGs (encodePNGs).
func newReply(id string, ep Endpoint, format string, res core.Result, masks bool) *Reply {
	r := &Reply{
		Schema:  Schema,
		ID:      id,
		Task:    ep,
		Image:   ImageInfo{Width: res.Width, Height: res.Height, Format: format},
		Caption: res.Caption,
		Objects: []ReplyObject{},
		Skipped: []ReplySkipped{},
		Outputs: core.Outputs{},
	}
	maps.Copy(r.Outputs, res.Outputs)
	for _, o := range res.Objects {
		obj := ReplyObject{Label: o.Label, Box: boxArray(o.Box), BoxNorm: boxArray(o.BoxNorm), Source: o.Source}
		if m := o.Mask; m != nil {
			r := m.Rect
			obj.Mask = &ReplyMask{Rect: [4]int{r.Min.X, r.Min.Y, r.Max.X, r.Max.Y}, Area: m.Area()}
			if masks {
				obj.Mask.Binary = &Blob{render: func() image.Image { return m.Binary() }}
				obj.Mask.Soft = &Blob{render: func() image.Image { return m.Gray() }}
			}
		}
		r.Objects = append(r.Objects, obj)
	}
	for _, a := range res.Answers {
		r.Answers = append(r.Answers, ReplyAnswer{Prefix: a.Prefix, Text: a.Text})
	}
	for _, s := range res.Skipped {
		r.Skipped = append(r.Skipped, ReplySkipped{Task: s.Task, Fragment: s.Fragment, Reason: s.Reason})
	}
	r.nameBlobs()
	return r
}

// boxArray keeps six decimals: far below a pixel, and stable JSON.
func boxArray(b core.Box) [4]float64 {
	return [4]float64{core.Round(b.X0, 6), core.Round(b.Y0, 6), core.Round(b.X1, 6), core.Round(b.Y1, 6)}
}

// encodePNGs encodes every image of the reply to PNG, as many at a time
// as there are cores (PNGs are most of a large image's work after the
// model), and times it as one stage whose parts are the images.
func (r *Reply) encodePNGs() error {
	var todo []*Blob
	for _, b := range r.blobs() {
		if b.render != nil {
			todo = append(todo, b)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.inlineOnly)) {
		if b := r.inlineOnly[name]; b.render != nil {
			todo = append(todo, b)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	workers := min(runtime.GOMAXPROCS(0), len(todo))
	parts := make([]core.Timing, len(todo))
	errs := make([]error, len(todo))
	next := make(chan int, len(todo))
	for i := range todo {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				start := time.Now()
				b := todo[i]
				if b.PNG, errs[i] = pngenc.Bytes(b.render()); errs[i] == nil {
					b.Bytes, b.render, b.encoded = len(b.PNG), nil, b.PNG
				}
				parts[i] = core.Timing{Stage: "png " + b.name, Duration: time.Since(start)}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("encode reply PNGs: %w", err)
	}
	if r.clock != nil {
		r.clock.LapConcurrent(fmt.Sprintf("png (%d images)", len(todo)), parts, workers)
	}
	return nil
}

// blobs lists every PNG in the reply, for placing them inline, in the
// object store or in files.
func (r *Reply) blobs() []*Blob {
	var out []*Blob
	for _, o := range r.Objects {
		if o.Mask != nil && o.Mask.Binary != nil {
			out = append(out, o.Mask.Binary, o.Mask.Soft)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.Masks)) {
		out = append(out, r.Masks[name])
	}
	if r.Preview != nil {
		out = append(out, r.Preview)
	}
	return out
}

// objectPrefix is where the reply's PNGs go in the results bucket:
// <id>/, or <id>/<sequence>/ for an event-bus result, so that a second
// reference with the same id does not overwrite the first one's PNGs.
func (r *Reply) objectPrefix() string {
	if r.Reference != nil {
		return fmt.Sprintf("%s/%d/", r.ID, r.Reference.Sequence)
	}
	return r.ID + "/"
}

// nameBlobs gives every PNG of the reply its file name: object-<i>-binary.png
// and object-<i>-soft.png for object masks, the plan's mask_file names,
// preview.png. Names are not in the JSON; a reply decoded from JSON gets
// them back here.
func (r *Reply) nameBlobs() {
	for i, o := range r.Objects {
		if o.Mask != nil {
			setName(o.Mask.Binary, fmt.Sprintf("object-%d-binary.png", i))
			setName(o.Mask.Soft, fmt.Sprintf("object-%d-soft.png", i))
		}
	}
	for name, b := range r.Masks {
		setName(b, name)
	}
	for name, b := range r.inlineOnly {
		setName(b, name)
	}
	setName(r.Preview, "preview.png")
}

func setName(b *Blob, name string) {
	if b != nil {
		b.name = name
	}
}

// setPlan puts the SDXL plan in the reply, moving the images the request
// wants into Masks (so that they are placed like every other PNG of the
// reply), and those only its A1111 bodies carry into inlineOnly; the
// bodies read the PNGs from those blobs when the reply is encoded.
func (r *Reply) setPlan(plan sdxl.Plan, in Include) {
	r.Masks, r.inlineOnly = map[string]*Blob{}, map[string]*Blob{}
	for _, f := range plan.Files() {
		switch part := fileParts[f.Kind]; {
		case part == "" || in.has(part):
			r.Masks[f.Name] = imageBlob(f.Image)
		case f.Inline:
			r.inlineOnly[f.Name] = imageBlob(f.Image)
		}
		*f.PNG = nil
	}
	plan.ReadPNGsFrom(r.encodedPNG)
	r.SDXL = &plan
	r.nameBlobs()
}

// fileParts is the reply part that lists each kind of plan image; ""
// for the hints, which are made only when a request or the config asks
// for them, and then always listed.
var fileParts = map[sdxl.FileKind]string{
	sdxl.KindRegionMask: PartRegionMasks,
	sdxl.KindColorMask:  sdxl.FormatRegionalPrompter,
	sdxl.KindHint:       "",
}

// encodedPNG is the PNG of a plan image the reply encoded, nil if none.
func (r *Reply) encodedPNG(name string) []byte {
	if b := r.Masks[name]; b != nil {
		return b.encoded
	}
	if b := r.inlineOnly[name]; b != nil {
		return b.encoded
	}
	return nil
}

// movePayloads takes the plan's A1111 bodies out of the reply: put keeps
// each body's JSON (named a1111-<...>.json) elsewhere and returns the
// blob that names it in Payloads.
func (r *Reply) movePayloads(put func(name string, body []byte) (*Blob, error)) error {
	if r.SDXL == nil {
		return nil
	}
	for _, b := range r.SDXL.WebUI.Bodies() {
		data, err := marshalJSON(b.Body)
		if err != nil {
			return fmt.Errorf("encode %s: %w", b.File, err)
		}
		blob, err := put(b.File, data)
		if err != nil {
			return err
		}
		if r.Payloads == nil {
			r.Payloads = map[string]*Blob{}
		}
		r.Payloads[b.File] = blob
	}
	r.SDXL.WebUI.DropBodies()
	return nil
}

// encode marshals the reply, its encoding timed (timed.encodeTimed).
func (r *Reply) encode() ([]byte, error) { return r.encodeTimed(r) }

// marshalJSON is json.Marshal without HTML escaping: PaliGemma's
// <loc0123> tokens stay readable (and a third shorter).
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
