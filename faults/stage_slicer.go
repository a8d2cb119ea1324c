package faults

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// ---- slicer -----------------------------------------------------------

// Slicer splits every chunk into slices of AverageSize±SizeVariation bytes
// with Delay between consecutive slices (Toxiproxy "slicer"), so a peer
// sees many small TCP segments and partial TDS packets. Whether slices
// leave as separate segments depends on the proxy writing each emit with
// TCP_NODELAY (Go's default).
type Slicer struct {
	// AverageSize is the mean slice size, 1 byte to 1 GiB (option
	// "average_size").
	AverageSize int `opt:"average_size"`
	// SizeVariation spreads slice sizes uniformly over
	// [AverageSize-SizeVariation, AverageSize+SizeVariation]; it must be
	// smaller than AverageSize (option "size_variation"). The last slice of
	// a chunk takes what is left and may be smaller.
	SizeVariation int `opt:"size_variation"`
	// Delay is the least time from one slice's emit to the next slice,
	// within a chunk and across chunks; time spent waiting for input
	// counts towards it (option "delay"). Zero means none.
	Delay time.Duration `opt:"delay"`
	// Rand draws slice sizes, one draw per slice when SizeVariation > 0;
	// nil means NewRand(0).
	Rand *Rand
	// Clock sleeps and tells the time; nil means RealClock.
	Clock Clock
}

// maxSliceSize bounds AverageSize so that size arithmetic never overflows.
const maxSliceSize = 1 << 30

// NewSlicer returns a slicer stage for one connection and direction.
func NewSlicer(c Slicer) (proxy.Stage, error) { return newStage(c) }

func (c Slicer) validate() error {
	var errs []error
	if c.AverageSize < 1 || c.AverageSize > maxSliceSize {
		errs = append(errs, optErr("slicer", "average_size", c.AverageSize, errors.New("must be between 1 and 1GiB")))
	}
	if c.SizeVariation < 0 {
		errs = append(errs, optErr("slicer", "size_variation", c.SizeVariation, errNegative))
	} else if c.SizeVariation >= c.AverageSize {
		errs = append(errs, optErr("slicer", "size_variation", c.SizeVariation,
			fmt.Errorf("must be smaller than average_size (%d)", c.AverageSize)))
	}
	errs = append(errs, checkNonNeg("slicer", "delay", c.Delay))
	return errors.Join(errs...)
}

func (c Slicer) build(r *Rand, clk Clock) proxy.Stage {
	return &slicerStage{avg: c.AverageSize, vari: c.SizeVariation, delay: c.Delay,
		rand: orRand(pickRand(r, c.Rand)), clock: orReal(pickClock(clk, c.Clock))}
}

type slicerStage struct {
	avg, vari int
	delay     time.Duration
	rand      *Rand
	clock     Clock
	emitted   bool      // a slice has been emitted before
	last      time.Time // when the previous slice was emitted
}

var _ proxy.Stage = (*slicerStage)(nil)

func (s *slicerStage) Forward(ctx context.Context, chunk []byte, emit func([]byte) error) (*proxy.Cut, error) {
	for len(chunk) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if s.delay > 0 && s.emitted {
			if wait := s.last.Add(s.delay).Sub(s.clock.Now()); wait > 0 {
				if err := s.clock.Sleep(ctx, wait); err != nil {
					return nil, err
				}
			}
		}
		size := s.avg
		if s.vari > 0 {
			size += s.rand.Intn(2*s.vari+1) - s.vari
		}
		size = min(max(size, 1), len(chunk))
		if err := emit(chunk[:size]); err != nil {
			return nil, err
		}
		if s.delay > 0 {
			s.emitted, s.last = true, s.clock.Now()
		}
		chunk = chunk[size:]
	}
	return nil, nil
}
