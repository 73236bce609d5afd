package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go/jetstream"

	"paliprompt/core"
	"paliprompt/grounding"
	"paliprompt/layouts"
	"paliprompt/sdxl"
	"paliprompt/verify"
)

// EndpointVerify checks a generated image against the plan it was made
// from (package verify).
const EndpointVerify Endpoint = "verify"

// HeaderPlanID names the plan of a verify request with a raw image body:
// the id of an earlier generate or layout result.
const HeaderPlanID = "Paliprompt-Plan-Id"

// PlanJSON is a plan as a verify request carries it inline, and as
// paliprompt keeps it: the "layout" and "sdxl" parts of a generate or
// layout result, and its region masks ("masks": inline, or named in the
// results bucket, or files beside a result that `paliprompt run` wrote).
type PlanJSON struct {
	Layout *layouts.Layout `json:"layout"`
	SDXL   *struct {
		Regions []sdxl.Region `json:"regions"`
	} `json:"sdxl,omitempty"`
	Masks map[string]*Blob `json:"masks,omitempty"`
}

// VerifyReply is the answer to a verify request: the report of package
// verify, and what the grounder found on the generated image.
type VerifyReply struct {
	Schema string `json:"schema"`
	ID     string `json:"id"`
	// Reference identifies the event-bus message of a generated image
	// (absent in request/reply answers), as in Reply.
	Reference *Reference `json:"reference,omitempty"`
	Task      Endpoint   `json:"task"`
	Image     ImageInfo  `json:"image"`
	// PlanID is the plan's id when the request named one.
	PlanID string `json:"plan_id,omitempty"`
	verify.Report
	// Found are the objects the grounder found on the generated image.
	Found   []ReplyObject `json:"found"`
	Outputs core.Outputs  `json:"outputs"`
	// Notes say what the check could not use (a region mask it could not
	// read: the planned box stood in for it).
	Notes []string `json:"notes,omitempty"`
	timed
}

// planSource reads what a verify request names: images, kept plans and
// the masks of results.
type planSource interface {
	imageSource
	fetchPlan(ctx context.Context, id string) (PlanJSON, error)
	fetchResult(ctx context.Context, bucket, name string) ([]byte, error)
}

// verifyRequest checks the request's image against its plan: one vision
// pass and one batch (detect, and segment when the plan's regions came
// from segmentation) for the plan's labels.
func (p *Pipeline) verifyRequest(ctx context.Context, req Request, src planSource) (*VerifyReply, error) {
	clock := req.clock
	if clock == nil {
		clock = core.NewStopwatch()
	}
	img, info, err := p.loadImage(ctx, req, src)
	if err != nil {
		return nil, err
	}
	clock.Lap("image decoding")
	pj, err := p.requestPlan(ctx, req, src)
	if err != nil {
		return nil, err
	}
	plan, notes := p.planOf(ctx, pj, src, req.planDir)
	if len(plan.Objects) == 0 {
		return nil, core.Errorf(core.ErrBadRequest, "the plan has no objects to look for")
	}
	greq := grounding.Request{Image: img, Width: info.Width, Height: info.Height, Outputs: req.Outputs,
		Args: core.PrefixArgs{Lang: req.Args.Lang, Objects: plan.Labels()}, Tasks: []core.TaskName{core.TaskDetect}}
	if plan.Segmented() {
		greq.Tasks = append(greq.Tasks, core.TaskSegment)
	}
	clock.Lap("plan")
	res, err := p.ground(ctx, req, clock, greq)
	if err != nil {
		return nil, err
	}
	r := &VerifyReply{Schema: Schema, ID: req.ID, Reference: req.Reference, Task: EndpointVerify, Image: ImageInfo{Width: res.Width, Height: res.Height, Format: info.Format},
		PlanID: req.PlanID, Report: verify.Check(p.cfg.Verify, plan, res), Found: []ReplyObject{}, Outputs: core.Outputs{}, Notes: notes}
	for _, o := range res.Objects {
		r.Found = append(r.Found, ReplyObject{Label: o.Label, Box: boxArray(o.Box), BoxNorm: boxArray(o.BoxNorm), Source: o.Source})
	}
	for k, v := range res.Outputs {
		r.Outputs[k] = v
	}
	r.clock = clock
	clock.Lap("verify")
	return r, nil
}

// requestPlan is the plan inline in the request, or the kept plan it
// names (404 when there is none).
func (p *Pipeline) requestPlan(ctx context.Context, req Request, src planSource) (PlanJSON, error) {
	switch {
	case req.Plan != nil:
		if req.Plan.Layout == nil {
			return PlanJSON{}, core.Errorf(core.ErrBadRequest, `"plan" needs the "layout" of a generate or layout result`)
		}
		return *req.Plan, nil
	case req.PlanID == "":
		return PlanJSON{}, core.Errorf(core.ErrBadRequest, `verify requests need a plan: the "plan" of a result ({"layout", "sdxl", "masks"}), or "plan_id" (header %s) naming one`, HeaderPlanID)
	case src == nil:
		return PlanJSON{}, core.Errorf(core.ErrUnavailable, "plan_id needs the JetStream object store, which is not available here")
	}
	return src.fetchPlan(ctx, req.PlanID)
}

// planOf reads a plan's objects and their regions (by object index): a
// mask it cannot read leaves the planned box as the region, with a note.
func (p *Pipeline) planOf(ctx context.Context, pj PlanJSON, src planSource, dir string) (verify.Plan, []string) {
	regions := map[int]verify.PlannedRegion{}
	var notes []string
	if pj.SDXL != nil {
		for _, reg := range pj.SDXL.Regions {
			if reg.Object < 0 {
				continue
			}
			m, err := p.regionMask(ctx, pj.Masks[reg.MaskFile], src, dir)
			if err != nil {
				notes = append(notes, fmt.Sprintf("region %d (%s): %v; its planned box stands in for it", reg.Index, reg.Label, err))
			}
			regions[reg.Object] = verify.PlannedRegion{Mask: m, Weight: reg.Weight}
		}
	}
	return verify.PlanOf(*pj.Layout, regions), notes
}

// regionMask decodes a region mask PNG: inline, in the results bucket, or
// in a file beside the plan.
func (p *Pipeline) regionMask(ctx context.Context, b *Blob, src planSource, dir string) (*image.Gray, error) {
	var data []byte
	var err error
	switch {
	case b == nil:
		return nil, errors.New("no mask in the plan")
	case len(b.PNG) > 0:
		data = b.PNG
	case b.Object != "" && src != nil:
		data, err = src.fetchResult(ctx, b.Bucket, b.Object)
	case b.File != "" && dir != "":
		data, err = os.ReadFile(filepath.Join(dir, filepath.FromSlash(b.File)))
	default:
		return nil, errors.New("its mask is not inline and cannot be fetched here")
	}
	if err != nil {
		return nil, err
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("mask PNG: %w", err)
	}
	g, ok := img.(*image.Gray)
	if !ok {
		return nil, fmt.Errorf("mask PNG is %T, want 8-bit grey", img)
	}
	return g, nil
}

// decodePlan reads a request's "plan" strictly enough to name what is
// wrong: it must be a result's layout (and may carry its sdxl regions and
// masks).
func decodePlan(raw json.RawMessage) (*PlanJSON, error) {
	var pj PlanJSON
	if err := json.Unmarshal(raw, &pj); err != nil {
		return nil, core.Errorf(core.ErrBadRequest, `"plan" is not the layout, sdxl and masks of a result: %v`, err)
	}
	if pj.Layout == nil {
		return nil, core.Errorf(core.ErrBadRequest, `"plan" needs the "layout" of a generate or layout result`)
	}
	return &pj, nil
}

// keptPlan is what paliprompt keeps of a generate or layout result for
// later verify requests: its layout, regions and region masks.
func keptPlan(r *Reply) ([]byte, bool) {
	if r.Layout == nil || r.SDXL == nil {
		return nil, false
	}
	pj := PlanJSON{Layout: r.Layout, SDXL: &struct {
		Regions []sdxl.Region `json:"regions"`
	}{r.SDXL.Regions}, Masks: map[string]*Blob{}}
	for _, reg := range r.SDXL.Regions {
		if b := r.Masks[reg.MaskFile]; b != nil && len(b.PNG) > 0 {
			pj.Masks[reg.MaskFile] = &Blob{PNG: b.PNG, Bytes: len(b.PNG)}
		}
	}
	data, err := marshalJSON(pj)
	return data, err == nil
}

// storePlan keeps a result's plan in the plans bucket, named by its id.
func (o *objectStores) storePlan(ctx context.Context, r *Reply) error {
	if o == nil || o.plans == nil {
		return nil
	}
	data, ok := keptPlan(r)
	if !ok {
		return nil
	}
	meta := jetstream.ObjectMeta{Name: r.ID, Opts: &jetstream.ObjectMetaOptions{ChunkSize: o.chunkSize}}
	if _, err := o.plans.Put(ctx, meta, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("keep the plan of %s in bucket %s: %w", r.ID, o.cfg.PlansBucket, err)
	}
	if r.clock != nil {
		r.clock.Lap("plan store")
	}
	return nil
}

// fetchPlan reads a kept plan; an unknown id is a 404.
func (o *objectStores) fetchPlan(ctx context.Context, id string) (PlanJSON, error) {
	if o.plans == nil {
		return PlanJSON{}, core.Errorf(core.ErrUnavailable, "no plans are kept here (objects.keep_plans is false)")
	}
	data, err := o.plans.GetBytes(ctx, id)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return PlanJSON{}, core.Errorf(core.ErrNotFound, "no plan %q: it was never made here, or is older than objects.plans_ttl", id)
	}
	if err != nil {
		return PlanJSON{}, core.Errorf(core.ErrUnavailable, "read plan %q from bucket %s: %v", id, o.cfg.PlansBucket, err)
	}
	pj, err := decodePlan(data)
	if err != nil {
		return PlanJSON{}, core.Errorf(core.ErrInternal, "kept plan %q: %v", id, err)
	}
	return *pj, nil
}

// fetchResult reads a PNG a result stored in the results bucket.
func (o *objectStores) fetchResult(ctx context.Context, bucket, name string) ([]byte, error) {
	if bucket != "" && bucket != o.cfg.ResultsBucket {
		return nil, fmt.Errorf("bucket %s is not this service's results bucket %s", bucket, o.cfg.ResultsBucket)
	}
	data, err := o.results.GetBytes(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read %s from bucket %s: %w", name, o.cfg.ResultsBucket, err)
	}
	return data, nil
}
