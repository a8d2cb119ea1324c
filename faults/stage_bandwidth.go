package faults

import (
	"context"
	"errors"
	"math"
	"math/bits"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// ---- bandwidth --------------------------------------------------------

// Bandwidth limits the rate of one direction (Toxiproxy "bandwidth"). It
// emits in pieces of at most a tenth of a second's worth (at least 1 byte)
// and paces them with a token bucket one piece deep: over any interval T
// at most BytesPerSecond*T + one piece pass, and an idle link banks no more
// than one piece of credit.
type Bandwidth struct {
	// BytesPerSecond is the limit, at least 1 (option "rate", e.g.
	// "1MiB/s" or "8Mbit").
	BytesPerSecond int64 `opt:"rate"`
	// Clock sleeps and tells the time; nil means RealClock.
	Clock Clock
}

// NewBandwidth returns a bandwidth stage for one connection and direction.
func NewBandwidth(c Bandwidth) (proxy.Stage, error) { return newStage(c) }

func (c Bandwidth) validate() error {
	if c.BytesPerSecond < 1 {
		return optErr("bandwidth", "rate", c.BytesPerSecond, errors.New("must be at least 1 byte/s"))
	}
	return nil
}

func (c Bandwidth) build(_ *Rand, clk Clock) proxy.Stage {
	s := &bandwidthStage{rate: uint64(c.BytesPerSecond), clock: orReal(pickClock(clk, c.Clock))}
	s.piece = int(max(1, min(c.BytesPerSecond/10, math.MaxInt32)))
	// The bucket depth, in time: the cost of one full piece. Computed
	// without the carry so that it does not disturb the pacing sequence.
	hi, lo := bits.Mul64(uint64(s.piece), uint64(time.Second))
	q, _ := bits.Div64(hi, lo, s.rate)
	s.burst = time.Duration(q)
	return s
}

type bandwidthStage struct {
	rate  uint64 // bytes per second, >= 1
	piece int    // most bytes per emit, >= 1
	burst time.Duration
	clock Clock
	// next is the virtual time at which the link has sent everything
	// emitted so far; carry is the sub-nanosecond remainder of the costs
	// (in units of 1/rate ns) so that rounding never drifts the rate.
	next  time.Time
	carry uint64
}

var _ proxy.Stage = (*bandwidthStage)(nil)

// cost returns how long n bytes take at the rate. n <= piece <= rate/10 (or
// 1) keeps the quotient below 2^64, which bits.Div64 requires.
func (s *bandwidthStage) cost(n int) time.Duration {
	hi, lo := bits.Mul64(uint64(n), uint64(time.Second))
	var c uint64
	lo, c = bits.Add64(lo, s.carry, 0)
	hi += c
	q, rem := bits.Div64(hi, lo, s.rate)
	s.carry = rem
	return time.Duration(q)
}

func (s *bandwidthStage) Forward(ctx context.Context, chunk []byte, emit func([]byte) error) (*proxy.Cut, error) {
	for len(chunk) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(len(chunk), s.piece)
		now := s.clock.Now()
		// Virtual scheduling: a piece starts when the previous one has
		// finished, or now if the link has been idle, less the bucket's
		// credit; it may be emitted once it has "finished" sending.
		start := s.next
		if floor := now.Add(-s.burst); start.Before(floor) {
			start = floor
		}
		finish := start.Add(s.cost(n))
		if wait := finish.Sub(now); wait > 0 {
			if err := s.clock.Sleep(ctx, wait); err != nil {
				return nil, err
			}
		}
		s.next = finish
		if err := emit(chunk[:n]); err != nil {
			return nil, err
		}
		chunk = chunk[n:]
	}
	return nil, nil
}
