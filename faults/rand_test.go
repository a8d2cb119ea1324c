package faults

import (
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

// randTrace runs a fixed mixed sequence of calls and returns every result
// as a float64, so that two runs can be compared.
func randTrace(t *testing.T, r *Rand) []float64 {
	t.Helper()
	var out []float64
	for i := range 50 {
		out = append(out, r.Float64())
		out = append(out, float64(r.Intn(i+1)))
		if r.Chance(float64(i) / 50) {
			out = append(out, 1)
		} else {
			out = append(out, 0)
		}
		out = append(out, float64(r.Duration(time.Duration(i)*time.Millisecond, time.Millisecond)))
	}
	return out
}

func TestRandReproducible(t *testing.T) {
	for _, seed := range []uint64{1, 42, 1 << 63, math.MaxUint64} {
		a, b := randTrace(t, NewRand(seed)), randTrace(t, NewRand(seed))
		if !slices.Equal(a, b) {
			t.Errorf("seed %d: two runs differ", seed)
		}
	}
}

func TestRandSeedsDiffer(t *testing.T) {
	a, b := randTrace(t, NewRand(1)), randTrace(t, NewRand(2))
	if slices.Equal(a, b) {
		t.Error("seeds 1 and 2 gave the same sequence")
	}
}

func TestRandSeedZeroIsReported(t *testing.T) {
	r := NewRand(0)
	seed := r.Seed()
	if seed == 0 {
		t.Fatal("Seed() = 0 for a random seed; it must report the seed chosen")
	}
	if a, b := randTrace(t, r), randTrace(t, NewRand(seed)); !slices.Equal(a, b) {
		t.Error("NewRand(r.Seed()) does not replay r")
	}
	if NewRand(0).Seed() == seed && NewRand(0).Seed() == seed {
		t.Error("three random seeds were equal")
	}
}

func TestRandZeroValue(t *testing.T) {
	var r Rand
	if f := r.Float64(); f < 0 || f >= 1 {
		t.Errorf("Float64() = %v", f)
	}
	if r.Seed() == 0 {
		t.Error("zero Rand reports seed 0 after use")
	}
}

// TestRandOneDrawPerCall checks the reproducibility contract: every call,
// whatever its arguments, consumes exactly one draw, so a reference stream
// advanced by one Float64 per call stays in step.
func TestRandOneDrawPerCall(t *testing.T) {
	calls := map[string]func(r *Rand){
		"Float64":            func(r *Rand) { r.Float64() },
		"Chance(0)":          func(r *Rand) { r.Chance(0) },
		"Chance(-1)":         func(r *Rand) { r.Chance(-1) },
		"Chance(1)":          func(r *Rand) { r.Chance(1) },
		"Chance(NaN)":        func(r *Rand) { r.Chance(math.NaN()) },
		"Chance(0.5)":        func(r *Rand) { r.Chance(0.5) },
		"Intn(0)":            func(r *Rand) { r.Intn(0) },
		"Intn(-3)":           func(r *Rand) { r.Intn(-3) },
		"Intn(1)":            func(r *Rand) { r.Intn(1) },
		"Intn(1000)":         func(r *Rand) { r.Intn(1000) },
		"Duration(d, 0)":     func(r *Rand) { r.Duration(time.Second, 0) },
		"Duration(d, -1)":    func(r *Rand) { r.Duration(time.Second, -1) },
		"Duration(d, j)":     func(r *Rand) { r.Duration(time.Second, time.Millisecond) },
		"Duration(-d, j)":    func(r *Rand) { r.Duration(-time.Second, time.Millisecond) },
		"Duration(max, max)": func(r *Rand) { r.Duration(math.MaxInt64, math.MaxInt64) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			r, ref := NewRand(7), NewRand(7)
			for range 3 {
				call(r)
				ref.Float64()
			}
			if a, b := r.Float64(), ref.Float64(); a != b {
				t.Errorf("out of step after 3 calls: %v != %v", a, b)
			}
		})
	}
}

func TestRandRanges(t *testing.T) {
	r := NewRand(3)
	for i := range 2000 {
		if f := r.Float64(); f < 0 || f >= 1 {
			t.Fatalf("Float64() = %v", f)
		}
		n := i%17 + 1
		if v := r.Intn(n); v < 0 || v >= n {
			t.Fatalf("Intn(%d) = %d", n, v)
		}
		if v := r.Intn(0); v != 0 {
			t.Fatalf("Intn(0) = %d", v)
		}
		if r.Chance(0) || !r.Chance(1) || r.Chance(math.NaN()) {
			t.Fatal("Chance(0), Chance(1) or Chance(NaN) wrong")
		}
		base, jitter := 100*time.Millisecond, time.Duration(i)*time.Microsecond
		if d := r.Duration(base, jitter); d < base-jitter || d > base+jitter {
			t.Fatalf("Duration(%v, %v) = %v", base, jitter, d)
		}
		if d := r.Duration(time.Millisecond, 5*time.Millisecond); d < 0 || d > 6*time.Millisecond {
			t.Fatalf("Duration(1ms, 5ms) = %v, want clamped to [0, 6ms]", d)
		}
	}
}

func TestRandDurationEdges(t *testing.T) {
	r := NewRand(5)
	tests := []struct {
		name           string
		base, jitter   time.Duration
		lowest, uptoIn time.Duration
	}{
		{"no jitter", time.Second, 0, time.Second, time.Second},
		{"negative jitter", time.Second, -time.Second, time.Second, time.Second},
		{"negative base", -time.Second, 0, 0, 0},
		{"jitter 1ns", time.Second, 1, time.Second - 1, time.Second + 1},
		{"huge", math.MaxInt64, math.MaxInt64, 0, math.MaxInt64},
		{"most negative", math.MinInt64, math.MaxInt64, 0, math.MaxInt64},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 100 {
				if d := r.Duration(tc.base, tc.jitter); d < tc.lowest || d > tc.uptoIn {
					t.Fatalf("Duration(%v, %v) = %v, want in [%v, %v]", tc.base, tc.jitter, d, tc.lowest, tc.uptoIn)
				}
			}
		})
	}
}

func TestRandChanceFrequency(t *testing.T) {
	// A fixed seed makes this deterministic; the bounds are wide enough
	// that any sane generator passes for any seed.
	r := NewRand(11)
	hits := 0
	for range 10000 {
		if r.Chance(0.3) {
			hits++
		}
	}
	if hits < 2700 || hits > 3300 {
		t.Errorf("Chance(0.3) hit %d of 10000", hits)
	}
}

func TestRandSplit(t *testing.T) {
	a, b := NewRand(9).Split(), NewRand(9).Split()
	if !slices.Equal(randTrace(t, a), randTrace(t, b)) {
		t.Error("Split of equal parents differ")
	}
	p := NewRand(9)
	c := p.Split()
	if slices.Equal(randTrace(t, p), randTrace(t, c)) {
		t.Error("Split child repeats its parent")
	}
}

func TestRandConcurrent(t *testing.T) {
	const goroutines, rounds, callsPerRound = 8, 500, 4
	r := NewRand(13)
	got := make([][]float64, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				got[g] = append(got[g], r.Float64())
				r.Intn(i + 1)
				r.Chance(0.5)
				r.Duration(time.Second, time.Second)
			}
		})
	}
	wg.Wait()
	// Every call took exactly one draw of the one stream, none lost or
	// taken twice: each concurrent Float64 is a draw of the sequential
	// stream, all at different positions, and the next draw is the one
	// after all of them.
	ref := NewRand(13)
	pos := map[float64]int{}
	const total = goroutines * rounds * callsPerRound
	for i := range total {
		pos[ref.Float64()] = i
	}
	seen := map[int]bool{}
	for _, vs := range got {
		for _, v := range vs {
			i, ok := pos[v]
			if !ok || seen[i] {
				t.Fatalf("concurrent draw %v: in the stream %v, already taken %v", v, ok, seen[i])
			}
			seen[i] = true
		}
	}
	if next, want := r.Float64(), ref.Float64(); next != want {
		t.Errorf("after %d concurrent calls the next draw is %v, want the stream's draw %d (%v)", total, next, total, want)
	}
}
