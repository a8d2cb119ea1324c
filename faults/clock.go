package faults

import (
	"context"
	"sync"
	"time"
)

// Clock is the time source of the stages. Production code uses RealClock;
// tests use a FakeClock so that delays are observed, not waited for.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Sleep waits for d, or until ctx is done, in which case it returns
	// ctx.Err(). A d <= 0 does not wait but still reports a done ctx.
	Sleep(ctx context.Context, d time.Duration) error
}

// orReal resolves the documented default of every Clock option: nil means
// the real clock.
func orReal(c Clock) Clock {
	if c == nil {
		return RealClock{}
	}
	return c
}

// RealClock is the wall clock. Its zero value is ready to use and safe for
// concurrent use.
type RealClock struct{}

var _ Clock = RealClock{}

// timers holds stopped timers for reuse: a bandwidth or slicer stage sleeps
// once per slice, and a timer per sleep would be garbage on the hot path
// (reusable timers, as Toxiproxy's toxics do). A pool rather than one timer per clock
// keeps RealClock a stateless value that any number of connections share.
var timers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits for d or until ctx is done, whichever comes first.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil || d <= 0 {
		return err
	}
	t := timers.Get().(*time.Timer)
	// Since Go 1.23 Reset and Stop on an unreferenced-channel timer never
	// leave a stale tick behind, so a pooled timer needs no draining.
	t.Reset(d)
	defer func() {
		t.Stop()
		timers.Put(t)
	}()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// FakeClock is a Clock for tests: Sleep returns at once, advancing Now by
// the requested duration and recording it. It is safe for concurrent use;
// its zero value starts at the zero time.
type FakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

var _ Clock = (*FakeClock)(nil)

// NewFakeClock returns a FakeClock whose Now starts at start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start}
}

// Now returns the fake current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep records d (every call, including d <= 0, so that tests can count
// decisions) and advances Now by d if positive. A done ctx makes it return
// ctx.Err() without recording anything, as a real sleep would have been
// cut short.
func (c *FakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	if d > 0 {
		c.now = c.now.Add(d)
	}
	return nil
}

// Advance moves Now forward by d without recording a sleep, as time spent
// elsewhere (waiting for input, a slow peer) would.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Sleeps returns a copy of the durations passed to Sleep, in call order.
func (c *FakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// Slept returns the sum of the positive durations passed to Sleep.
func (c *FakeClock) Slept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var total time.Duration
	for _, d := range c.sleeps {
		if d > 0 {
			total += d
		}
	}
	return total
}
