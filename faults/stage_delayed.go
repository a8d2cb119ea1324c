package faults

import (
	"context"
	"errors"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// ---- after N bytes ------------------------------------------------------

// Delayed lets AfterBytes bytes of the direction pass unchanged, then hands
// everything after them to Inner, splitting the chunk that crosses the
// boundary; this is how a fault applies "after N bytes" (registry option
// "after_bytes" of every kind). If Inner is a proxy.EOFStage, its OnEOF
// runs only once Inner has started, i.e. once AfterBytes have passed.
type Delayed struct {
	// AfterBytes is how many bytes pass before Inner starts (option
	// "after_bytes"); 0 starts Inner at once.
	AfterBytes int64
	// Inner is the stage that applies afterwards; it must not be nil and,
	// like every stage, belongs to this connection and direction only.
	Inner proxy.Stage
}

// NewDelayed returns the wrapping stage; it always implements
// proxy.EOFStage (a no-op unless Inner does).
func NewDelayed(c Delayed) (proxy.Stage, error) {
	if err := checkNonNeg("delayed", "after_bytes", c.AfterBytes); err != nil {
		return nil, err
	}
	if c.Inner == nil {
		return nil, &OptionError{Kind: "delayed", Option: "inner", Err: errors.New("must not be nil")}
	}
	return &delayedStage{after: c.AfterBytes, inner: c.Inner}, nil
}

type delayedStage struct {
	after, passed int64
	inner         proxy.Stage
}

var (
	_ proxy.Stage    = (*delayedStage)(nil)
	_ proxy.EOFStage = (*delayedStage)(nil)
)

func (s *delayedStage) Forward(ctx context.Context, chunk []byte, emit func([]byte) error) (*proxy.Cut, error) {
	if err := ctx.Err(); err != nil || len(chunk) == 0 {
		return nil, err
	}
	if room := s.after - s.passed; room > 0 {
		n := min(int64(len(chunk)), room)
		if err := emit(chunk[:n]); err != nil {
			return nil, err
		}
		s.passed += n
		chunk = chunk[n:]
		if len(chunk) == 0 {
			return nil, nil
		}
	}
	return s.inner.Forward(ctx, chunk, emit)
}

// OnEOF passes the end on to Inner if it has started and wants it.
func (s *delayedStage) OnEOF(ctx context.Context) {
	if e, ok := s.inner.(proxy.EOFStage); ok && s.passed >= s.after {
		e.OnEOF(ctx)
	}
}
