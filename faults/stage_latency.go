package faults

import (
	"context"
	"errors"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// ---- latency ----------------------------------------------------------

// Latency delays every chunk by Delay±Jitter before passing it on
// (Toxiproxy "latency"). The delay starts when the chunk is handed to
// Forward; as the proxy reads the next chunk only after Forward returns,
// back-to-back chunks wait one after the other (Toxiproxy pipelines them
// against their arrival time). For TDS's request/response traffic this is
// the same; a large result set read in many chunks is slowed more.
type Latency struct {
	// Delay is the base delay per chunk (option "delay", alias "latency").
	Delay time.Duration `opt:"delay"`
	// Jitter spreads each delay uniformly over [Delay-Jitter, Delay+Jitter],
	// clamped at 0 (option "jitter"). Zero means none.
	Jitter time.Duration `opt:"jitter"`
	// Rand draws the jitter, one draw per chunk; nil means NewRand(0).
	Rand *Rand
	// Clock sleeps; nil means RealClock.
	Clock Clock
}

// NewLatency returns a latency stage for one connection and direction.
func NewLatency(c Latency) (proxy.Stage, error) { return newStage(c) }

func (c Latency) validate() error {
	return errors.Join(checkNonNeg("latency", "delay", c.Delay), checkNonNeg("latency", "jitter", c.Jitter))
}

func (c Latency) build(r *Rand, clk Clock) proxy.Stage {
	return &latencyStage{delay: c.Delay, jitter: c.Jitter, rand: orRand(pickRand(r, c.Rand)), clock: orReal(pickClock(clk, c.Clock))}
}

type latencyStage struct {
	delay, jitter time.Duration
	rand          *Rand
	clock         Clock
}

var _ proxy.Stage = (*latencyStage)(nil)

func (s *latencyStage) Forward(ctx context.Context, chunk []byte, emit func([]byte) error) (*proxy.Cut, error) {
	if err := ctx.Err(); err != nil || len(chunk) == 0 {
		return nil, err
	}
	if err := s.clock.Sleep(ctx, s.rand.Duration(s.delay, s.jitter)); err != nil {
		return nil, err
	}
	return nil, emit(chunk)
}
