package paligemma

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"paliprompt/core"

	"paliprompt/grounding/internal/native"
)

// maskedOut is the additive mask value for "may not attend": float32's
// lowest, finite so that a fully masked padding row gives no NaN.
const maskedOut = -math.MaxFloat32

// genTask is one prompt to decode: the token ids after <bos> (prefix and
// "\n") and its budget of new tokens.
type genTask struct {
	prompt []int
	maxNew int
}

// runTimes adds up the ONNX Runtime runs of a generation, by session.
type runTimes struct {
	embed, prefill, steps            time.Duration
	embedRuns, prefillRuns, stepRuns int
}

// total is the time of every run.
func (r runTimes) total() time.Duration { return r.embed + r.prefill + r.steps }

// parts are the runs as timing parts of the generation's stage.
func (r runTimes) parts() []core.Timing {
	return []core.Timing{
		{Stage: fmt.Sprintf("onnx embed_tokens (%d runs)", r.embedRuns), Duration: r.embed},
		{Stage: fmt.Sprintf("onnx decoder prefill (%d runs)", r.prefillRuns), Duration: r.prefill},
		{Stage: fmt.Sprintf("onnx decoder steps (%d runs)", r.stepRuns), Duration: r.steps},
	}
}

// generate decodes tasks greedily on one image's features: as one padded
// batch with the prefix-LM mask on the own export, one by one at batch 1
// on the onnx-community export (which has no mask input). times, when not
// nil, adds up the ONNX Runtime runs.
func (e *engine) generate(ctx context.Context, features []float32, tasks []genTask, times *runTimes) ([][]int, error) {
	if times == nil {
		times = &runTimes{}
	}
	if e.spec.layout == layoutOwn {
		return e.decode(ctx, features, tasks, times)
	}
	out := make([][]int, len(tasks))
	for i, t := range tasks {
		ids, err := e.decode(ctx, features, []genTask{t}, times)
		if err != nil {
			return nil, err
		}
		out[i] = ids[0]
	}
	return out, nil
}

// batch is the state of one decoding run.
type batch struct {
	b, length int   // rows, longest prompt (image + bos + text)
	maxNew    int   // the largest budget of new tokens
	pad       []int // left padding per row
	ids       []int64
	out       [][]int
	done      []bool
}

// newBatch lays the prompts out as rows of length ids, left-padded:
// pads, the image tokens, <bos>, the prompt.
func (e *engine) newBatch(tasks []genTask) *batch {
	s := e.spec
	bt := &batch{b: len(tasks), pad: make([]int, len(tasks)), out: make([][]int, len(tasks)), done: make([]bool, len(tasks))}
	for _, t := range tasks {
		bt.length = max(bt.length, s.imageTokens+1+len(t.prompt))
		bt.maxNew = max(bt.maxNew, t.maxNew)
	}
	bt.ids = make([]int64, bt.b*bt.length)
	for r, t := range tasks {
		bt.pad[r] = bt.length - (s.imageTokens + 1 + len(t.prompt))
		row := bt.ids[r*bt.length : (r+1)*bt.length]
		for i := range row {
			row[i] = int64(s.pad)
		}
		p := bt.pad[r]
		for i := range s.imageTokens {
			row[p+i] = int64(s.image)
		}
		row[p+s.imageTokens] = int64(s.bos)
		for i, id := range t.prompt {
			row[p+s.imageTokens+1+i] = int64(id)
		}
	}
	return bt
}

// prefillEmbeds is the decoder's prefill input: embed_tokens of the
// batch's ids with each row's image-token rows replaced by the image
// features as they are. With the own export's convention (image features
// unscaled, embeddings scaled by sqrt(hidden)) this concatenation is
// transformers' merged inputs_embeds bit for bit; older exports and the
// community layout scale inside their graphs, so the same code serves all.
func (e *engine) prefillEmbeds(features []float32, bt *batch, times *runTimes) ([]float32, error) {
	s := e.spec
	embeds := make([]float32, bt.b*bt.length*s.hidden)
	if err := e.embed(bt.ids, bt.b, bt.length, embeds, times); err != nil {
		return nil, err
	}
	for r := range bt.b {
		at := (r*bt.length + bt.pad[r]) * s.hidden
		copy(embeds[at:at+s.imageTokens*s.hidden], features)
	}
	return embeds, nil
}

// decode runs prefill and greedy decoding steps with the KV cache until
// every row has emitted an eos id or its max_new_tokens.
func (e *engine) decode(ctx context.Context, features []float32, tasks []genTask, times *runTimes) ([][]int, error) {
	bt := e.newBatch(tasks)
	embeds, err := e.prefillEmbeds(features, bt, times)
	if err != nil {
		return nil, err
	}
	run, err := e.newDecodeRun(bt)
	if err != nil {
		return nil, err
	}
	defer run.Close()
	logits, err := run.prefill(embeds, times)
	for step := 0; ; step++ {
		if err != nil {
			return nil, fmt.Errorf("decode step %d: %w", step, err)
		}
		if e.onStep != nil {
			e.onStep(step, logits)
		}
		for r, t := range tasks {
			run.next[r] = int64(e.spec.pad)
			if bt.done[r] {
				continue
			}
			tok := argmax(logits[r])
			bt.out[r] = append(bt.out[r], tok)
			run.next[r] = int64(tok)
			bt.done[r] = slices.Contains(e.spec.eos, tok) || len(bt.out[r]) >= t.maxNew
		}
		if !slices.Contains(bt.done, false) {
			return bt.out, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("generation stopped after %d steps: %w", step+1, err)
		}
		logits, err = run.step(times)
	}
}

// embed runs embed_tokens on ids [b, s] into out [b, s, hidden].
func (e *engine) embed(ids []int64, b, s int, out []float32, times *runTimes) error {
	in, err := native.NewInt64([]int64{int64(b), int64(s)}, ids)
	if err != nil {
		return err
	}
	defer in.Close()
	ot, err := native.NewFloat32([]int64{int64(b), int64(s), int64(e.spec.hidden)}, out)
	if err != nil {
		return err
	}
	defer ot.Close()
	return e.runEmbed(in, ot, times)
}

func (e *engine) runEmbed(in, out *native.Tensor, times *runTimes) error {
	start := time.Now()
	err := e.embeds.Run([]*native.Tensor{in}, []*native.Tensor{out})
	times.embed += time.Since(start)
	times.embedRuns++
	return err
}

// decodeRun is one generation's decoder state: the IoBinding, the KV
// cache and what every decode step reuses. A step's tensors of fixed shape
// (the new tokens, their embeddings and positions, the logits) are made
// once over Go memory, the embeddings written by embed_tokens straight
// into the decoder's input; a step rewrites their data, binds them and the
// masks and the cache (whose length grows) and runs. Inputs are bound
// again every step because binding is when ONNX Runtime copies an input
// to the device (CUDA); the logits output stays bound (it is written at
// the end of each run).
type decodeRun struct {
	e       *engine
	bt      *batch
	binding *native.Binding
	kv      kvCache
	past    int // cache length

	next       []int64 // [b]: the tokens the next step feeds
	nextT      *native.Tensor
	embeds     []float32 // [b,1,hidden]: embed_tokens' output, the decoder's input
	embedsT    *native.Tensor
	positions  []int64 // [b,1]
	positionsT *native.Tensor
	logits     []float32 // [b,1,vocab]
	logitsT    *native.Tensor
	// mask and sliding hold a decode step's masks (capacity for the last
	// step); masks are this call's mask tensors, closed at the next.
	mask, sliding []float32
	masks         []*native.Tensor
	tensors       []*native.Tensor // closed with the run
}

func (e *engine) newDecodeRun(bt *batch) (*decodeRun, error) {
	s := e.spec
	r := &decodeRun{e: e, bt: bt,
		next: make([]int64, bt.b), embeds: make([]float32, bt.b*s.hidden),
		positions: make([]int64, bt.b), logits: make([]float32, bt.b*s.vocab)}
	var err error
	if r.kv, err = e.newKV(bt.b, bt.length+bt.maxNew); err != nil {
		return nil, err
	}
	if r.binding, err = e.decoder.NewBinding(); err != nil {
		r.Close()
		return nil, err
	}
	var tensorErr error
	keep := func(t *native.Tensor, err error) *native.Tensor {
		if err != nil {
			tensorErr = cmp.Or(tensorErr, err)
			return nil
		}
		r.tensors = append(r.tensors, t)
		return t
	}
	b, h := int64(bt.b), int64(s.hidden)
	r.nextT = keep(native.NewInt64([]int64{b, 1}, r.next))
	r.embedsT = keep(native.NewFloat32([]int64{b, 1, h}, r.embeds))
	r.positionsT = keep(native.NewInt64([]int64{b, 1}, r.positions))
	r.logitsT = keep(native.NewFloat32([]int64{b, 1, int64(s.vocab)}, r.logits))
	if tensorErr != nil {
		r.Close()
		return nil, tensorErr
	}
	if s.layout == layoutOwn {
		// Last-position logits at every step: bound once for the whole run.
		if err := r.binding.BindOutput("logits", r.logitsT); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

// prefill runs the prompts (embeds [b, length, hidden]) and returns each
// row's last-position logits.
func (r *decodeRun) prefill(embeds []float32, times *runTimes) ([][]float32, error) {
	s, bt := r.e.spec, r.bt
	b, q := int64(bt.b), int64(bt.length)
	positions := make([]int64, bt.b*bt.length)
	for row := range bt.b {
		for i := range bt.length {
			// HF's convention: the first real token is position 1, pads 1.
			positions[row*bt.length+i] = int64(max(i-bt.pad[row]+1, 1))
		}
	}
	var prefillTensors []*native.Tensor
	defer func() {
		for _, t := range prefillTensors {
			t.Close()
		}
	}()
	bind := func(name string, t *native.Tensor, err error) error {
		if err != nil {
			return err
		}
		prefillTensors = append(prefillTensors, t)
		return r.binding.BindInput(name, t)
	}
	t, err := native.NewFloat32([]int64{b, q, int64(s.hidden)}, embeds)
	if err := bind("inputs_embeds", t, err); err != nil {
		return nil, err
	}
	t, err = native.NewInt64([]int64{b, q}, positions)
	if err := bind("position_ids", t, err); err != nil {
		return nil, err
	}
	logits := r.logits
	if s.layout == layoutCommunity {
		// Logits of every position; the decode steps bind r.logitsT.
		logits = make([]float32, bt.b*bt.length*s.vocab)
		lt, err := native.NewFloat32([]int64{b, q, int64(s.vocab)}, logits)
		if err != nil {
			return nil, err
		}
		prefillTensors = append(prefillTensors, lt)
		if err := r.binding.BindOutput("logits", lt); err != nil {
			return nil, err
		}
	}
	if err := r.run(bt.length, times, &times.prefill, &times.prefillRuns); err != nil {
		return nil, err
	}
	perRow := len(logits) / bt.b // vocab, or length*vocab (community)
	rows := make([][]float32, bt.b)
	for row := range rows {
		at := (row+1)*perRow - s.vocab
		rows[row] = logits[at : at+s.vocab]
	}
	return rows, nil
}

// Close releases the run's tensors, cache and binding.
func (r *decodeRun) Close() {
	for _, t := range append(r.tensors, r.masks...) {
		t.Close()
	}
	r.tensors, r.masks = nil, nil
	if r.kv != nil {
		r.kv.Close()
	}
	r.binding.Close()
}

// step embeds r.next, runs the decoder on it and returns each row's
// logits.
func (r *decodeRun) step(times *runTimes) ([][]float32, error) {
	if err := r.e.runEmbed(r.nextT, r.embedsT, times); err != nil {
		return nil, err
	}
	for row := range r.bt.b {
		r.positions[row] = int64(r.past - r.bt.pad[row] + 1)
	}
	if err := r.binding.BindInput("inputs_embeds", r.embedsT); err != nil {
		return nil, err
	}
	if err := r.binding.BindInput("position_ids", r.positionsT); err != nil {
		return nil, err
	}
	if r.past == r.bt.length && r.e.spec.layout == layoutCommunity {
		// The prefill's logits were of every position.
		if err := r.binding.BindOutput("logits", r.logitsT); err != nil {
			return nil, err
		}
	}
	if err := r.run(1, times, &times.steps, &times.stepRuns); err != nil {
		return nil, err
	}
	rows := make([][]float32, r.bt.b)
	for row := range rows {
		rows[row] = r.logits[row*r.e.spec.vocab : (row+1)*r.e.spec.vocab]
	}
	return rows, nil
}

// run binds the masks of queries new positions and the KV cache, runs
// the decoder and advances the cache, adding the run's time to d and n.
func (r *decodeRun) run(queries int, times *runTimes, d *time.Duration, n *int) error {
	if err := r.bindMasks(queries); err != nil {
		return err
	}
	if err := r.kv.bind(r.binding, r.past, queries); err != nil {
		return err
	}
	start := time.Now()
	outs, err := r.binding.Run()
	*d += time.Since(start)
	*n++
	if err != nil {
		return err
	}
	if err := r.kv.advance(outs); err != nil {
		return err
	}
	r.past += queries
	return nil
}

// bindMasks builds and binds the own layout's masks [B,1,queries,total]:
// attention_mask, and sliding_attention_mask when the decoder takes it,
// the same tensor unless a query outside the prefix block reaches past the
// window.
func (r *decodeRun) bindMasks(queries int) error {
	s, bt := r.e.spec, r.bt
	if s.layout != layoutOwn {
		return nil
	}
	for _, t := range r.masks {
		t.Close()
	}
	r.masks = r.masks[:0]
	total := r.past + queries
	n := bt.b * queries * total
	var mask, sliding []float32
	if queries == 1 {
		if r.mask == nil {
			capacity := bt.b * (bt.length + bt.maxNew)
			r.mask, r.sliding = make([]float32, capacity), make([]float32, capacity)
		}
		mask, sliding = r.mask[:n], r.sliding[:n]
	} else {
		mask = make([]float32, n)
	}
	fillMask(mask, bt, r.past, queries)
	shape := []int64{int64(bt.b), 1, int64(queries), int64(total)}
	mt, err := native.NewFloat32(shape, mask)
	if err != nil {
		return err
	}
	r.masks = append(r.masks, mt)
	if err := r.binding.BindInput("attention_mask", mt); err != nil {
		return err
	}
	if s.slidingWindow == 0 {
		return nil
	}
	st := mt
	if sliding != nil && fillSlidingMask(sliding, mask, bt, r.past, queries, s.slidingWindow) {
		if st, err = native.NewFloat32(shape, sliding); err != nil {
			return err
		}
		r.masks = append(r.masks, st)
	}
	return r.binding.BindInput(inputSlidingMask, st)
}

// fillMask writes the additive mask [B,1,queries,past+queries] into dst:
// a row attends to every non-padding key (the prompt is one bidirectional
// prefix-LM block at prefill; a generated token is the newest key, so
// causality needs no extra masking); padding queries see nothing.
func fillMask(dst []float32, bt *batch, past, queries int) {
	total := past + queries
	for r := range bt.b {
		for i := range queries {
			row := dst[(r*queries+i)*total : (r*queries+i+1)*total]
			cut := bt.pad[r]
			if past+i < bt.pad[r] {
				cut = total
			}
			fill(row[:cut], maskedOut)
			clear(row[cut:])
		}
	}
}

// fillSlidingMask writes the sliding-window layers' mask into dst, from
// the attention mask of the same call, as transformers builds it: a query
// of the prefix block (cache index below bt.length) keeps its row; a
// generated one also loses the keys at cache distance >= window. It
// reports whether that cut anything (else the attention mask serves both).
func fillSlidingMask(dst, mask []float32, bt *batch, past, queries, window int) bool {
	total := past + queries
	if past+queries-1 < max(bt.length, window) {
		return false // no generated query reaches a key window away
	}
	copy(dst, mask)
	for r := range bt.b {
		for i := range queries {
			q := past + i
			if q < bt.length {
				continue
			}
			row := dst[(r*queries+i)*total : (r*queries+i+1)*total]
			fill(row[:max(0, q-window+1)], maskedOut)
		}
	}
	return true
}

func fill(s []float32, v float32) {
	for i := range s {
		s[i] = v
	}
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
