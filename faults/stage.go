package faults

import (
	"context"
	"errors"
	"fmt"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// The generic, Toxiproxy-like stages live one per file (stage_*.go); the
// registry that builds them from string options is stage_registry.go. Every stage value serves ONE direction of
// ONE connection: it keeps state between Forward calls (bytes counted, pacing
// debt) and is not safe for concurrent use; the proxy calls it from that
// direction's goroutine only. Build a fresh one per connection and direction
// (StageSpec.New).
//
// Common contract of the stages here (see proxy.Stage):
//   - bytes are never dropped or reordered, except by design: Timeout
//     swallows everything, Reset and LimitData forward nothing past their
//     cut-off;
//   - emit is called with sub-slices of chunk only, and nothing is kept after
//     Forward returns: the proxy reuses its read buffer, and emit's argument
//     is valid only during the emit call;
//   - an empty chunk is a no-op;
//   - when ctx is done Forward returns ctx.Err() promptly; the part of the
//     chunk not yet emitted is then not forwarded, since the connection is
//     going away;
//   - an error from emit is returned as is, unwrapped, so the proxy can tell
//     its own write errors with errors.Is.

// Errors of stage configuration; OptionError wraps the last two.
var (
	// ErrUnknownStage is returned by ParseStage/NewStage for a kind that
	// is not in StageKinds.
	ErrUnknownStage = errors.New("unknown stage kind")
	// ErrUnknownOption is an option name the kind does not take.
	ErrUnknownOption = errors.New("unknown option")
	// ErrMissingOption is a required option that was not given.
	ErrMissingOption = errors.New("missing required option")
)

// OptionError is a bad option of a stage, from the registry (option names
// as users write them, e.g. "jitter") or from a constructor (the same names:
// each config field documents its option name).
type OptionError struct {
	Kind   string // stage kind, e.g. "latency"
	Option string // option name, e.g. "jitter"
	Value  string // the offending value as given ("" if none)
	Err    error
}

func (e *OptionError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("faults: %s: option %s: %v", e.Kind, e.Option, e.Err)
	}
	return fmt.Sprintf("faults: %s: option %s=%q: %v", e.Kind, e.Option, e.Value, e.Err)
}

// Unwrap returns the cause, so errors.Is(err, ErrUnknownOption) works.
func (e *OptionError) Unwrap() error { return e.Err }

// errNegative is the cause for every option that must not be negative.
var errNegative = errors.New("must not be negative")

func optErr(kind, opt string, v any, err error) *OptionError {
	return &OptionError{Kind: kind, Option: opt, Value: fmt.Sprint(v), Err: err}
}

func checkNonNeg[T ~int | ~int64](kind, opt string, v T) error {
	if v < 0 {
		return optErr(kind, opt, v, errNegative)
	}
	return nil
}

// stageConfig is what every config type below provides to the constructors
// and to the registry.
type stageConfig interface {
	validate() error
	// build makes the stage from a validated config; r and clk override
	// the config's own Rand and Clock fields when non-nil.
	build(r *Rand, clk Clock) proxy.Stage
}

func orRand(r *Rand) *Rand {
	if r == nil {
		return NewRand(0)
	}
	return r
}

func newStage(c stageConfig) (proxy.Stage, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c.build(nil, nil), nil
}

// passStage forwards unchanged; it is what a zero StageSpec builds.
type passStage struct{}

func (passStage) Forward(_ context.Context, chunk []byte, emit func([]byte) error) (*proxy.Cut, error) {
	if len(chunk) == 0 {
		return nil, nil
	}
	return nil, emit(chunk)
}

func pickRand(a, b *Rand) *Rand {
	if a != nil {
		return a
	}
	return b
}

func pickClock(a, b Clock) Clock {
	if a != nil {
		return a
	}
	return b
}
