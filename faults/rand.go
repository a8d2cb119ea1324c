package faults

import (
	crand "crypto/rand"
	"encoding/binary"
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"
	"time"
)

// Rand is the seedable randomness of the fault engine: probabilities,
// jitter, slice sizes. It wraps a math/rand/v2 PCG behind a mutex, so it is
// safe for concurrent use.
//
// Reproducibility: the same seed and the same sequence of calls give the
// same results. Every method consumes exactly one 64-bit draw, whatever its
// arguments (Chance(0) and Duration(d, 0) included), so changing a
// probability or a jitter in a configuration does not shift the draws of
// every later decision. Calls made concurrently from several goroutines
// interleave in scheduling order; give each connection its own stream with
// Split, taken in a deterministic order (e.g. at accept), to keep runs
// comparable.
//
// The zero value is usable and seeds itself at random on first use, like
// NewRand(0).
type Rand struct {
	mu   sync.Mutex
	seed uint64
	src  *rand.PCG
}

// NewRand returns a Rand seeded with seed. Seed 0 means "pick a random seed"
// (from crypto/rand); Seed reports the seed chosen, so that a run can be
// replayed with it.
func NewRand(seed uint64) *Rand {
	r := &Rand{}
	r.init(seed)
	return r
}

// init seeds r; r.mu is held or r is not yet shared.
func (r *Rand) init(seed uint64) {
	if seed == 0 {
		var b [8]byte
		// crypto/rand.Read never fails since Go 1.24 (it crashes the
		// program instead), so the error is nil by contract.
		_, _ = crand.Read(b[:])
		seed = binary.LittleEndian.Uint64(b[:])
		if seed == 0 {
			// 0 cannot be reported as "the seed" since it means "random".
			seed = 1
		}
	}
	r.seed = seed
	// PCG takes two words; the second is derived from the seed so that a
	// single number replays a run.
	r.src = rand.NewPCG(seed, splitmix64(seed))
}

// splitmix64 is the finaliser of SplitMix64 (Steele, Lea, Flood 2014), used
// here only to derive PCG's second seed word from the first.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// draw returns the next 64-bit value of the stream.
func (r *Rand) draw() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.src == nil {
		r.init(0)
	}
	return r.src.Uint64()
}

// Seed returns the seed of r (the one chosen at random for seed 0).
func (r *Rand) Seed() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.src == nil {
		r.init(0)
	}
	return r.seed
}

// unit maps a draw to [0, 1) with 53 bits of precision, as math/rand/v2's
// Float64 does.
func unit(u uint64) float64 {
	return float64(u>>11) / (1 << 53)
}

// Float64 returns a uniform number in [0, 1).
func (r *Rand) Float64() float64 { return unit(r.draw()) }

// Chance reports true with probability p: p <= 0 (or NaN) is never, p >= 1
// always. It consumes one draw in every case.
func (r *Rand) Chance(p float64) bool {
	return unit(r.draw()) < p
}

// Intn returns a uniform int in [0, n); it returns 0 if n <= 0 (it does not
// panic, unlike math/rand). It consumes exactly one draw: the multiply-shift
// mapping (Lemire) without rejection has a bias below n/2^64, negligible for
// any n used here, in exchange for a fixed number of draws.
func (r *Rand) Intn(n int) int {
	u := r.draw()
	if n <= 0 {
		return 0
	}
	hi, _ := bits.Mul64(u, uint64(n))
	return int(hi)
}

// Duration returns a uniform duration in [base-jitter, base+jitter],
// clamped at 0; a jitter <= 0 gives base (clamped). It consumes one draw in
// every case.
func (r *Rand) Duration(base, jitter time.Duration) time.Duration {
	u := r.draw()
	if jitter > 0 {
		// Keep 2*jitter+1 within uint64 and the sum within int64: the
		// bounds are far beyond any real delay, but overflow must not turn
		// a long delay into a negative one.
		const maxJitter = (math.MaxInt64 - 1) / 2
		jitter = min(jitter, maxJitter)
		off, _ := bits.Mul64(u, uint64(2*jitter+1))
		base = addSat(base, time.Duration(off)-jitter)
	}
	return max(base, 0)
}

// addSat returns a+b, saturated at the int64 bounds.
func addSat(a, b time.Duration) time.Duration {
	switch {
	case b > 0 && a > math.MaxInt64-b:
		return math.MaxInt64
	case b < 0 && a < math.MinInt64-b:
		return math.MinInt64
	}
	return a + b
}

// Split returns a new, independent Rand seeded from one draw of r. Taking
// one Split per connection, in accept order, gives each connection a
// reproducible stream even when connections run concurrently.
func (r *Rand) Split() *Rand {
	s := r.draw()
	if s == 0 {
		s = 1 // 0 would mean "random"
	}
	return NewRand(s)
}
