package paligemma

import (
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
	pad       []int // left padding per row
	out       [][]int
	done      []bool
}

// decode runs prefill and greedy decoding steps with the KV cache until
// every row has emitted an eos id or its max_new_tokens.
func (e *engine) decode(ctx context.Context, features []float32, tasks []genTask, times *runTimes) ([][]int, error) {
	s := e.spec
	bt := &batch{b: len(tasks), pad: make([]int, len(tasks)), out: make([][]int, len(tasks)), done: make([]bool, len(tasks))}
	maxNew := 0
	for _, t := range tasks {
		bt.length = max(bt.length, s.imageTokens+1+len(t.prompt))
		maxNew = max(maxNew, t.maxNew)
	}
	ids := make([]int64, bt.b*bt.length)
	for r, t := range tasks {
		bt.pad[r] = bt.length - (s.imageTokens + 1 + len(t.prompt))
		row := ids[r*bt.length : (r+1)*bt.length]
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
	embeds, err := e.embed(ids, bt.b, bt.length, times)
	if err != nil {
		return nil, err
	}
	for r := range bt.b {
		at := (r*bt.length + bt.pad[r]) * s.hidden
		copy(embeds[at:at+s.imageTokens*s.hidden], features)
	}
	kv, err := e.newKV(bt.b, bt.length+maxNew)
	if err != nil {
		return nil, err
	}
	defer kv.Close()
	binding, err := e.decoder.NewBinding()
	if err != nil {
		return nil, err
	}
	defer binding.Close()

	past, queries := 0, bt.length
	for step := 0; ; step++ {
		logits, err := e.step(binding, kv, bt, embeds, past, queries, times)
		if err != nil {
			return nil, fmt.Errorf("decode step %d: %w", step, err)
		}
		if e.onStep != nil {
			e.onStep(step, logits)
		}
		next := make([]int64, bt.b)
		for r, t := range tasks {
			next[r] = int64(s.pad)
			if bt.done[r] {
				continue
			}
			tok := argmax(logits[r])
			bt.out[r] = append(bt.out[r], tok)
			next[r] = int64(tok)
			bt.done[r] = slices.Contains(s.eos, tok) || len(bt.out[r]) >= t.maxNew
		}
		past += queries
		if !slices.Contains(bt.done, false) {
			return bt.out, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("generation stopped after %d steps: %w", step+1, err)
		}
		if embeds, err = e.embed(next, bt.b, 1, times); err != nil {
			return nil, err
		}
		queries = 1
	}
}

// step runs the decoder on queries new positions after past cached ones
// and returns each row's last-position logits.
func (e *engine) step(binding *native.Binding, kv kvCache, bt *batch, embeds []float32, past, queries int, times *runTimes) ([][]float32, error) {
	s := e.spec
	b, q, total := int64(bt.b), int64(queries), int64(past+queries)
	var closers []*native.Tensor
	defer func() {
		for _, t := range closers {
			t.Close()
		}
	}()
	input := func(name string, t *native.Tensor, err error) error {
		if err != nil {
			return err
		}
		closers = append(closers, t)
		return binding.BindInput(name, t)
	}
	t, err := native.NewFloat32([]int64{b, q, int64(s.hidden)}, embeds)
	if err := input("inputs_embeds", t, err); err != nil {
		return nil, err
	}
	positions := make([]int64, bt.b*queries)
	for r := range bt.b {
		for i := range queries {
			// HF's convention: the first real token is position 1, pads 1.
			positions[r*queries+i] = int64(max(past+i-bt.pad[r]+1, 1))
		}
	}
	t, err = native.NewInt64([]int64{b, q}, positions)
	if err := input("position_ids", t, err); err != nil {
		return nil, err
	}
	if s.layout == layoutOwn {
		t, err := native.NewFloat32([]int64{b, 1, q, total}, attentionMask(bt, past, queries))
		if err := input("attention_mask", t, err); err != nil {
			return nil, err
		}
	}
	binding.ClearOutputs()
	logitRows := int64(1)
	if s.layout == layoutCommunity {
		logitRows = q
	}
	logits := make([]float32, int(b*logitRows)*s.vocab)
	lt, err := native.NewFloat32([]int64{b, logitRows, int64(s.vocab)}, logits)
	if err != nil {
		return nil, err
	}
	closers = append(closers, lt)
	if err := binding.BindOutput("logits", lt); err != nil {
		return nil, err
	}
	if err := kv.bind(binding, past, queries); err != nil {
		return nil, err
	}
	start := time.Now()
	outs, err := binding.Run(isPresent)
	if past == 0 {
		times.prefill += time.Since(start)
		times.prefillRuns++
	} else {
		times.steps += time.Since(start)
		times.stepRuns++
	}
	if err != nil {
		return nil, err
	}
	if err := kv.advance(outs); err != nil {
		return nil, err
	}
	rows := make([][]float32, bt.b)
	for r := range rows {
		at := (r*int(logitRows) + int(logitRows) - 1) * s.vocab
		rows[r] = logits[at : at+s.vocab]
	}
	return rows, nil
}

// attentionMask builds the additive mask [B,1,queries,past+queries]: a row
// attends to every non-padding key (the prompt is one bidirectional
// prefix-LM block at prefill; a generated token is the newest key, so
// causality needs no extra masking); padding queries see nothing.
func attentionMask(bt *batch, past, queries int) []float32 {
	total := past + queries
	mask := make([]float32, bt.b*queries*total)
	for r := range bt.b {
		for i := range queries {
			row := mask[(r*queries+i)*total : (r*queries+i+1)*total]
			padQuery := past+i < bt.pad[r]
			for k := range row {
				if padQuery || k < bt.pad[r] {
					row[k] = maskedOut
				}
			}
		}
	}
	return mask
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
