package plugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"maps"
	"math"
	"slices"
	"time"

	"paliprompt/core"
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
	Timings   []ReplyTiming  `json:"timings"`
	// Layout, SDXL, Masks and Preview are filled by the layouts and sdxl
	// stages (generate and layout requests only).
	Layout *layouts.Layout `json:"layout,omitempty"`
	// SDXL is the generation plan. Its mask PNGs are not inline in it
	// (sdxl.regions[].mask and regional_prompter.mask are null): they are
	// in Masks, under the file names the plan gives them (mask_file).
	SDXL  *sdxl.Plan       `json:"sdxl,omitempty"`
	Masks map[string]*Blob `json:"masks,omitempty"`
	// Preview is the layout preview PNG: the reference with its grid,
	// boxes and masks beside the SDXL canvas with its regions.
	Preview *Blob `json:"preview,omitempty"`
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
	Binary *Blob `json:"binary"`
	// Soft is the soft mask, clip(value*0.5+0.5, 0, 1) as 0..255 grey.
	Soft *Blob `json:"soft"`
}

// Blob is a PNG in a reply: inline as base64, or, when large, stored in
// the results bucket (Object names it), or written beside the result JSON
// by `paliprompt run` (File names it).
type Blob struct {
	PNG    []byte `json:"png,omitempty"`
	Bucket string `json:"bucket,omitempty"`
	Object string `json:"object,omitempty"`
	File   string `json:"file,omitempty"`
	Bytes  int    `json:"bytes"`
	// name is the blob's file name inside the reply ("preview.png"), used
	// for objects and files.
	name string
}

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

// ReplyTiming is the wall time of one stage in milliseconds.
type ReplyTiming struct {
	Stage string  `json:"stage"`
	MS    float64 `json:"ms"`
}

// ReplyError is the payload of a failure event.
type ReplyError struct {
	Schema    string     `json:"schema"`
	ID        string     `json:"id"`
	Reference *Reference `json:"reference,omitempty"`
	Error     struct {
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
func newReply(id string, ep Endpoint, format string, res core.Result) (*Reply, error) {
	r := &Reply{
		Schema:  Schema,
		ID:      id,
		Task:    ep,
		Image:   ImageInfo{Width: res.Width, Height: res.Height, Format: format},
		Caption: res.Caption,
		Objects: []ReplyObject{},
		Skipped: []ReplySkipped{},
		Outputs: core.Outputs{},
		Timings: []ReplyTiming{},
	}
	maps.Copy(r.Outputs, res.Outputs)
	for _, o := range res.Objects {
		obj := ReplyObject{Label: o.Label, Box: boxArray(o.Box), BoxNorm: boxArray(o.BoxNorm), Source: o.Source}
		if o.Mask != nil {
			m, err := replyMask(o.Mask)
			if err != nil {
				return nil, fmt.Errorf("encode mask of %q: %w", o.Label, err)
			}
			obj.Mask = m
		}
		r.Objects = append(r.Objects, obj)
	}
	for _, a := range res.Answers {
		r.Answers = append(r.Answers, ReplyAnswer{Prefix: a.Prefix, Text: a.Text})
	}
	for _, s := range res.Skipped {
		r.Skipped = append(r.Skipped, ReplySkipped{Task: s.Task, Fragment: s.Fragment, Reason: s.Reason})
	}
	for _, t := range res.Timings {
		r.addTiming(t.Stage, t.Duration)
	}
	r.nameBlobs()
	return r, nil
}

// boxArray keeps six decimals: far below a pixel, and stable JSON.
func boxArray(b core.Box) [4]float64 {
	return [4]float64{core.Round(b.X0, 6), core.Round(b.Y0, 6), core.Round(b.X1, 6), core.Round(b.Y1, 6)}
}

func replyMask(m *core.Mask) (*ReplyMask, error) {
	binary, err := pngBlob(m.Binary(), png.BestCompression)
	if err != nil {
		return nil, err
	}
	soft, err := pngBlob(m.Gray(), png.BestCompression)
	if err != nil {
		return nil, err
	}
	r := m.Rect
	return &ReplyMask{Rect: [4]int{r.Min.X, r.Min.Y, r.Max.X, r.Max.Y}, Area: m.Area(), Binary: binary, Soft: soft}, nil
}

// pngBlob encodes an image as a PNG blob.
func pngBlob(img image.Image, level png.CompressionLevel) (*Blob, error) {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: level}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, err
	}
	return &Blob{PNG: buf.Bytes(), Bytes: buf.Len()}, nil
}

func (r *Reply) addTiming(stage string, d time.Duration) {
	r.Timings = append(r.Timings, ReplyTiming{Stage: stage, MS: math.Round(float64(d)/1e3) / 1e3})
}

// blobs lists every PNG in the reply, for placing them inline, in the
// object store or in files.
func (r *Reply) blobs() []*Blob {
	var out []*Blob
	for _, o := range r.Objects {
		if o.Mask != nil {
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
	setName(r.Preview, "preview.png")
}

func setName(b *Blob, name string) {
	if b != nil {
		b.name = name
	}
}

// setPlan puts the SDXL plan in the reply, moving its mask PNGs into
// Masks (so that they are placed like every other PNG of the reply).
func (r *Reply) setPlan(plan sdxl.Plan) {
	r.Masks = map[string]*Blob{}
	for _, f := range plan.Files() {
		if *f.PNG != nil {
			r.Masks[f.Name] = &Blob{PNG: *f.PNG, Bytes: len(*f.PNG)}
			*f.PNG = nil
		}
	}
	r.SDXL = &plan
	r.nameBlobs()
}

// encode marshals the reply.
func (r *Reply) encode() ([]byte, error) {
	data, err := marshalJSON(r)
	if err != nil {
		return nil, fmt.Errorf("encode reply: %w", err)
	}
	return data, nil
}

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
