package plugin

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"paliprompt/core"
)

// queue is the one bounded queue in front of the grounder (one model on
// one GPU). A request holds a slot from admission to reply; grounding runs
// one request at a time. tryAdmit refuses at once when every slot is taken,
// so a caller learns "busy" immediately instead of timing out.
type queue struct {
	slots   chan struct{} // one token per admitted request
	turn    chan struct{} // one token: the grounder
	waiting atomic.Int64  // admitted requests waiting for the grounder
}

func newQueue(size int) *queue {
	q := &queue{slots: make(chan struct{}, size), turn: make(chan struct{}, 1)}
	return q
}

// tryAdmit takes a slot without waiting, or fails with ErrBusy.
func (q *queue) tryAdmit() (release func(), err error) {
	select {
	case q.slots <- struct{}{}:
		return q.releaser(), nil
	default:
		return nil, core.Errorf(core.ErrUnavailable, "queue full (%d requests admitted, queue.size is %d); try again later", len(q.slots), cap(q.slots))
	}
}

// admit waits for a slot until ctx ends.
func (q *queue) admit(ctx context.Context) (release func(), err error) {
	select {
	case q.slots <- struct{}{}:
		return q.releaser(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (q *queue) releaser() func() {
	var once sync.Once
	return func() { once.Do(func() { <-q.slots }) }
}

// run calls fn once the grounder is free, unless ctx ends first. The
// error says where the deadline hit, for the 504 description.
func (q *queue) run(ctx context.Context, fn func() error) error {
	q.waiting.Add(1)
	select {
	case q.turn <- struct{}{}:
		q.waiting.Add(-1)
	case <-ctx.Done():
		q.waiting.Add(-1)
		return fmt.Errorf("while waiting for the grounder (%d waiting): %w", q.waiting.Load(), ctx.Err())
	}
	defer func() { <-q.turn }()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("while waiting for the grounder: %w", err)
	}
	return fn()
}

// QueueStats is the queue part of the service stats.
type QueueStats struct {
	// Depth is the number of requests waiting for the grounder.
	Depth int `json:"queue_depth"`
	// Admitted is the number of requests in the service (waiting, being
	// grounded, or in later stages).
	Admitted int `json:"queue_admitted"`
	Size     int `json:"queue_size"`
}

func (q *queue) stats() QueueStats {
	return QueueStats{Depth: int(q.waiting.Load()), Admitted: len(q.slots), Size: cap(q.slots)}
}
