package faults

import (
	"context"
	"fmt"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// ---- timeout / blackhole ------------------------------------------------

// Timeout swallows every byte of the direction (Toxiproxy "timeout"; with
// CloseAfter 0 it is a blackhole). With CloseAfter > 0 its first chunk
// returns a Cut with Style FIN and After CloseAfter, so the proxy closes
// the connection that long after data first met the stage, as Toxiproxy's
// timeout does; the countdown cannot start earlier because a stage only
// runs when data arrives.
type Timeout struct {
	// CloseAfter is the delay before the close (option "timeout"); zero
	// holds the connection open, swallowing data, for as long as the
	// stage is attached.
	CloseAfter time.Duration `opt:"timeout"`
}

// NewTimeout returns a timeout (blackhole) stage for one connection and
// direction.
func NewTimeout(c Timeout) (proxy.Stage, error) { return newStage(c) }

func (c Timeout) validate() error { return checkNonNeg("timeout", "timeout", c.CloseAfter) }

func (c Timeout) build(*Rand, Clock) proxy.Stage { return &timeoutStage{after: c.CloseAfter} }

type timeoutStage struct {
	after time.Duration
	armed bool // the Cut has been handed to the proxy
}

var _ proxy.Stage = (*timeoutStage)(nil)

func (s *timeoutStage) Forward(ctx context.Context, chunk []byte, _ func([]byte) error) (*proxy.Cut, error) {
	if err := ctx.Err(); err != nil || len(chunk) == 0 {
		return nil, err
	}
	if s.after > 0 && !s.armed {
		// Once only: the proxy owns the timer from here on.
		s.armed = true
		return &proxy.Cut{Style: proxy.StyleFIN, Reason: fmt.Sprintf("timeout %s", s.after), After: s.after}, nil
	}
	return nil, nil
}
