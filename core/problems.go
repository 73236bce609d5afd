package core

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Problems collects every invalid field of a configuration, so that one
// run reports all of them, each under its full config.toml key
// ("layout.merge_iou: 1.5 is out of range: use 0..1").
type Problems struct {
	table string
	errs  []error
}

// NewProblems collects the problems of one table: keys given to its
// methods are relative to it ("merge_iou" in table "layout"). An empty
// table takes full keys.
func NewProblems(table string) *Problems { return &Problems{table: table} }

// Add records a problem with key.
func (p *Problems) Add(key, format string, args ...any) {
	if p.table != "" {
		key = p.table + "." + key
	}
	p.errs = append(p.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// Merge takes over the problems of a table validated on its own (an
// error from another Problems' Err).
func (p *Problems) Merge(err error) {
	var other *tableProblems
	if errors.As(err, &other) {
		p.errs = append(p.errs, other.errs...)
	} else if err != nil {
		p.errs = append(p.errs, err)
	}
}

// OneOf checks that value is one of allowed.
func (p *Problems) OneOf(key, value string, allowed ...string) {
	if !slices.Contains(allowed, value) {
		p.Add(key, "%q is not allowed: use one of %s", value, strings.Join(allowed, ", "))
	}
}

// AtLeast checks an integer's lower bound.
func (p *Problems) AtLeast(key string, value, min int) {
	if value < min {
		p.Add(key, "%d is too small: must be at least %d", value, min)
	}
}

// IntRange checks that lo <= value <= hi.
func (p *Problems) IntRange(key string, value, lo, hi int) {
	if value < lo || value > hi {
		p.Add(key, "%d is out of range: use %d..%d", value, lo, hi)
	}
}

// FloatRange checks that lo <= value <= hi (NaN is out of every range).
func (p *Problems) FloatRange(key string, value, lo, hi float64) {
	if math.IsNaN(value) || value < lo || value > hi {
		p.Add(key, "%v is out of range: use %v..%v", value, lo, hi)
	}
}

// NotEmpty checks that a string has more than spaces.
func (p *Problems) NotEmpty(key, value string) {
	if strings.TrimSpace(value) == "" {
		p.Add(key, "must not be empty")
	}
}

// Err returns nil, or an ErrConfig error listing every problem, one per
// line.
func (p *Problems) Err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return Errorf(ErrConfig, "%w", &tableProblems{errs: p.errs})
}

// tableProblems keeps the individual problems so that Merge can take them
// over without parsing text.
type tableProblems struct{ errs []error }

func (t *tableProblems) Error() string   { return errors.Join(t.errs...).Error() }
func (t *tableProblems) Unwrap() []error { return t.errs }
