package faults

import (
	"context"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// ---- slow_close ---------------------------------------------------------

// SlowClose passes data unchanged and delays the end of the direction: when
// the source closes, OnEOF waits Delay before the proxy passes the close on
// (Toxiproxy "slow_close").
type SlowClose struct {
	// Delay is how long the close is held (option "delay").
	Delay time.Duration `opt:"delay"`
	// Clock sleeps; nil means RealClock.
	Clock Clock
}

// NewSlowClose returns a slow_close stage for one connection and direction;
// the value also implements proxy.EOFStage.
func NewSlowClose(c SlowClose) (proxy.Stage, error) { return newStage(c) }

func (c SlowClose) validate() error { return checkNonNeg("slow_close", "delay", c.Delay) }

func (c SlowClose) build(_ *Rand, clk Clock) proxy.Stage {
	return &slowCloseStage{delay: c.Delay, clock: orReal(pickClock(clk, c.Clock))}
}

type slowCloseStage struct {
	delay time.Duration
	clock Clock
}

var (
	_ proxy.Stage    = (*slowCloseStage)(nil)
	_ proxy.EOFStage = (*slowCloseStage)(nil)
)

func (s *slowCloseStage) Forward(ctx context.Context, chunk []byte, emit func([]byte) error) (*proxy.Cut, error) {
	if err := ctx.Err(); err != nil || len(chunk) == 0 {
		return nil, err
	}
	return nil, emit(chunk)
}

// OnEOF holds the close for Delay, or until ctx is done.
func (s *slowCloseStage) OnEOF(ctx context.Context) {
	// The interface has no error: a cancelled wait just ends early, and
	// the proxy, which cancelled it, knows why.
	_ = s.clock.Sleep(ctx, s.delay)
}
