package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// t0 is where every FakeClock of these tests starts.
var t0 = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// emitted is one call of emit, as the test saw it.
type emitted struct {
	data []byte
	at   time.Time
}

// run is the result of feeding a stage a stream in chunks.
type run struct {
	out   []byte
	emits []emitted
	// cutAt is the index of the first chunk whose Forward returned a Cut,
	// -1 if none; cuts counts the calls that returned one.
	cutAt, cuts int
	cut         *proxy.Cut
	// emitsAfterCut counts emits made by calls after the first Cut.
	emitsAfterCut int
}

// feed passes data to st in chunks of the given sizes, the way the relay
// does: every chunk is copied into one reused read buffer, which is
// scribbled over after Forward returns, so a stage that kept the chunk
// would emit garbage later. emit copies what it gets, as a socket write
// would.
func feed(t *testing.T, st proxy.Stage, clk Clock, data []byte, sizes []int) run {
	t.Helper()
	r := run{cutAt: -1}
	buf := make([]byte, 1024)
	cutSeen := false
	emit := func(b []byte) error {
		if len(b) == 0 {
			t.Error("emit called with an empty slice")
		}
		var at time.Time
		if clk != nil {
			at = clk.Now()
		}
		r.out = append(r.out, b...)
		r.emits = append(r.emits, emitted{data: bytes.Clone(b), at: at})
		if cutSeen {
			r.emitsAfterCut++
		}
		return nil
	}
	for i, n := range sizes {
		if n > len(buf) {
			buf = make([]byte, n)
		}
		chunk := buf[:n]
		copy(chunk, data[:n])
		data = data[n:]
		cut, err := st.Forward(context.Background(), chunk, emit)
		if err != nil {
			t.Fatalf("chunk %d: Forward: %v", i, err)
		}
		for j := range chunk {
			chunk[j] = 0xEE
		}
		if cut != nil {
			r.cuts++
			if !cutSeen {
				cutSeen, r.cutAt, r.cut = true, i, cut
			}
		}
	}
	if len(data) != 0 {
		t.Fatalf("feed: %d bytes not covered by sizes", len(data))
	}
	return r
}

// chunking returns random chunk sizes (1..max) covering n bytes.
func chunking(rng *rand.Rand, n, max int) []int {
	var sizes []int
	for n > 0 {
		s := min(n, 1+rng.IntN(max))
		sizes = append(sizes, s)
		n -= s
	}
	return sizes
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// mustStage unwraps a constructor's result.
func mustStage(t *testing.T) func(proxy.Stage, error) proxy.Stage {
	return func(st proxy.Stage, err error) proxy.Stage {
		t.Helper()
		if err != nil {
			t.Fatalf("constructor: %v", err)
		}
		return st
	}
}

// TestStagesPreserveBytes is the property test of every non-lossy stage:
// over random data cut in random chunks, the concatenation of what is
// emitted equals the input and no Cut is asked for.
func TestStagesPreserveBytes(t *testing.T) {
	stages := map[string]func(t *testing.T, r *Rand, clk Clock) proxy.Stage{
		"latency": func(t *testing.T, r *Rand, clk Clock) proxy.Stage {
			return mustStage(t)(NewLatency(Latency{Delay: 50 * time.Millisecond, Jitter: 60 * time.Millisecond, Rand: r, Clock: clk}))
		},
		"bandwidth 7B/s": func(t *testing.T, _ *Rand, clk Clock) proxy.Stage {
			return mustStage(t)(NewBandwidth(Bandwidth{BytesPerSecond: 7, Clock: clk}))
		},
		"bandwidth 1000B/s": func(t *testing.T, _ *Rand, clk Clock) proxy.Stage {
			return mustStage(t)(NewBandwidth(Bandwidth{BytesPerSecond: 1000, Clock: clk}))
		},
		"bandwidth 1GiB/s": func(t *testing.T, _ *Rand, clk Clock) proxy.Stage {
			return mustStage(t)(NewBandwidth(Bandwidth{BytesPerSecond: 1 << 30, Clock: clk}))
		},
		"slicer 1": func(t *testing.T, r *Rand, clk Clock) proxy.Stage {
			return mustStage(t)(NewSlicer(Slicer{AverageSize: 1, Delay: time.Millisecond, Rand: r, Clock: clk}))
		},
		"slicer 20±19": func(t *testing.T, r *Rand, clk Clock) proxy.Stage {
			return mustStage(t)(NewSlicer(Slicer{AverageSize: 20, SizeVariation: 19, Rand: r, Clock: clk}))
		},
		"slow_close": func(t *testing.T, _ *Rand, clk Clock) proxy.Stage {
			return mustStage(t)(NewSlowClose(SlowClose{Delay: time.Second, Clock: clk}))
		},
		"reset beyond the data": func(t *testing.T, _ *Rand, _ Clock) proxy.Stage {
			return mustStage(t)(NewReset(Reset{AfterBytes: 1 << 40}))
		},
		"limit_data beyond the data": func(t *testing.T, _ *Rand, _ Clock) proxy.Stage {
			return mustStage(t)(NewLimitData(LimitData{Bytes: 1 << 40}))
		},
		"delayed slicer": func(t *testing.T, r *Rand, clk Clock) proxy.Stage {
			inner := mustStage(t)(NewSlicer(Slicer{AverageSize: 3, SizeVariation: 2, Delay: time.Millisecond, Rand: r, Clock: clk}))
			return mustStage(t)(NewDelayed(Delayed{AfterBytes: 100, Inner: inner}))
		},
		"spec latency after_bytes": func(t *testing.T, r *Rand, clk Clock) proxy.Stage {
			spec, err := ParseStage("latency", map[string]string{"delay": "10ms", "after_bytes": "1KiB"})
			if err != nil {
				t.Fatal(err)
			}
			return spec.New(r, clk)
		},
		"zero spec": func(t *testing.T, r *Rand, clk Clock) proxy.Stage {
			return StageSpec{}.New(r, clk)
		},
	}
	for name, mk := range stages {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			for iter := range 100 {
				clk := NewFakeClock(t0)
				st := mk(t, NewRand(uint64(iter)+1), clk)
				data := randomBytes(rng, rng.IntN(3000))
				r := feed(t, st, clk, data, chunking(rng, len(data), 700))
				if !bytes.Equal(r.out, data) {
					t.Fatalf("iteration %d: output (%d bytes) differs from input (%d bytes)", iter, len(r.out), len(data))
				}
				if r.cuts != 0 {
					t.Fatalf("iteration %d: unexpected Cut %+v", iter, r.cut)
				}
			}
		})
	}
}

func TestLatencySleeps(t *testing.T) {
	const delay, jitter = 100 * time.Millisecond, 30 * time.Millisecond
	clk := NewFakeClock(t0)
	st := mustStage(t)(NewLatency(Latency{Delay: delay, Jitter: jitter, Rand: NewRand(9), Clock: clk}))
	sizes := []int{10, 1, 500, 3, 3, 77}
	data := make([]byte, 594)
	r := feed(t, st, clk, data, sizes)

	sleeps := clk.Sleeps()
	if len(sleeps) != len(sizes) {
		t.Fatalf("%d sleeps for %d chunks", len(sleeps), len(sizes))
	}
	ref := NewRand(9)
	var total time.Duration
	for i, d := range sleeps {
		if d < delay-jitter || d > delay+jitter {
			t.Errorf("sleep %d = %v, want within %v±%v", i, d, delay, jitter)
		}
		if want := ref.Duration(delay, jitter); d != want {
			t.Errorf("sleep %d = %v, want %v from the same seed", i, d, want)
		}
		total += d
		// Each chunk leaves whole, after its own delay.
		if got := r.emits[i]; len(got.data) != sizes[i] || !got.at.Equal(t0.Add(total)) {
			t.Errorf("emit %d: %d bytes at %v, want %d bytes at %v", i, len(got.data), got.at.Sub(t0), sizes[i], total)
		}
	}
}

func TestLatencyJitterClampsAtZero(t *testing.T) {
	clk := NewFakeClock(t0)
	st := mustStage(t)(NewLatency(Latency{Delay: time.Millisecond, Jitter: time.Second, Rand: NewRand(4), Clock: clk}))
	data := make([]byte, 200)
	feed(t, st, clk, data, chunking(rand.New(rand.NewPCG(3, 3)), len(data), 3))
	for i, d := range clk.Sleeps() {
		if d < 0 || d > time.Second+time.Millisecond {
			t.Errorf("sleep %d = %v, want in [0, 1.001s]", i, d)
		}
	}
}

func TestLatencyEmptyChunk(t *testing.T) {
	clk := NewFakeClock(t0)
	st := mustStage(t)(NewLatency(Latency{Delay: time.Second, Clock: clk}))
	r := feed(t, st, clk, nil, []int{0, 0})
	if len(r.emits) != 0 || len(clk.Sleeps()) != 0 {
		t.Errorf("empty chunks: %d emits, %d sleeps; want none", len(r.emits), len(clk.Sleeps()))
	}
}

// pieceTolerance is the bandwidth stage's bucket depth, in time: a tenth of
// a second at rates of 10 B/s and more, one byte's time below.
func pieceTolerance(rate int64) (piece int64, tol time.Duration) {
	piece = max(1, rate/10)
	return piece, time.Duration(piece * int64(time.Second) / rate)
}

func TestBandwidthPacing(t *testing.T) {
	rates := []int64{1, 3, 10, 1000, 64 << 10, 1e6, 1 << 30}
	for _, rate := range rates {
		t.Run(strconv.FormatInt(rate, 10), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(rate), 5))
			piece, tol := pieceTolerance(rate)
			n := int(min(rate*3+17, 200000))
			data := randomBytes(rng, n)
			clk := NewFakeClock(t0)
			st := mustStage(t)(NewBandwidth(Bandwidth{BytesPerSecond: rate, Clock: clk}))
			r := feed(t, st, clk, data, chunking(rng, n, 9000))
			if !bytes.Equal(r.out, data) {
				t.Fatal("output differs from input")
			}
			// Total time: what n bytes take at the rate, less at most the
			// one piece the bucket may start with.
			ideal := time.Duration(int64(n) * int64(time.Second) / rate)
			if got := clk.Slept(); got > ideal || got < ideal-tol {
				t.Errorf("slept %v for %d bytes at %d B/s; want in [%v, %v]", got, n, rate, ideal-tol, ideal)
			}
			// The rate is never exceeded by more than one piece: at every
			// emit, bytes sent so far <= rate*elapsed + piece.
			var sent int64
			for i, e := range r.emits {
				if int64(len(e.data)) > piece {
					t.Fatalf("emit %d: %d bytes, more than a piece (%d)", i, len(e.data), piece)
				}
				sent += int64(len(e.data))
				allowed := float64(rate)*e.at.Sub(t0).Seconds() + float64(piece)
				if float64(sent) > allowed+1e-6*float64(rate) {
					t.Fatalf("emit %d: %d bytes sent after %v at %d B/s (allowed %.0f)", i, sent, e.at.Sub(t0), rate, allowed)
				}
			}
		})
	}
}

func TestBandwidthIdleBanksOnePiece(t *testing.T) {
	const rate = 1000 // 100-byte pieces, 100ms each
	clk := NewFakeClock(t0)
	st := mustStage(t)(NewBandwidth(Bandwidth{BytesPerSecond: rate, Clock: clk}))
	feed(t, st, clk, make([]byte, 1000), []int{1000})
	before := clk.Slept()
	// An hour of idle link must not allow an hour's worth of burst.
	clk.Advance(time.Hour)
	feed(t, st, clk, make([]byte, 1000), []int{1000})
	if got, want := clk.Slept()-before, 900*time.Millisecond; got != want {
		t.Errorf("after idle: slept %v for 1000 bytes at 1000 B/s, want %v (one piece of credit)", got, want)
	}
}

func TestSlicerSizes(t *testing.T) {
	tests := []struct {
		avg, vari int
		delay     time.Duration
	}{
		{1, 0, time.Millisecond},
		{10, 3, 5 * time.Millisecond},
		{10, 9, 0},
		{64, 0, time.Second},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d±%d/%v", tc.avg, tc.vari, tc.delay), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.avg), uint64(tc.vari)))
			clk := NewFakeClock(t0)
			st := mustStage(t)(NewSlicer(Slicer{AverageSize: tc.avg, SizeVariation: tc.vari, Delay: tc.delay, Rand: NewRand(21), Clock: clk}))
			data := randomBytes(rng, 5000)
			sizes := chunking(rng, len(data), 400)
			r := feed(t, st, clk, data, sizes)
			if !bytes.Equal(r.out, data) {
				t.Fatal("output differs from input")
			}
			// Every slice is in range, except that the last slice of a
			// chunk takes what is left.
			emitIdx := 0
			for ci, n := range sizes {
				left := n
				for left > 0 {
					got := len(r.emits[emitIdx].data)
					lo := max(1, tc.avg-tc.vari)
					if got > tc.avg+tc.vari || (got < lo && got != left) || got > left {
						t.Fatalf("chunk %d: slice of %d bytes (%d left), want %d±%d", ci, got, left, tc.avg, tc.vari)
					}
					left -= got
					emitIdx++
				}
			}
			sleeps := clk.Sleeps()
			if tc.delay == 0 {
				if len(sleeps) != 0 {
					t.Errorf("%d sleeps with no delay", len(sleeps))
				}
				return
			}
			if len(sleeps) != len(r.emits)-1 {
				t.Fatalf("%d sleeps for %d slices, want one between each", len(sleeps), len(r.emits))
			}
			for i, d := range sleeps {
				if d != tc.delay {
					t.Fatalf("sleep %d = %v, want %v", i, d, tc.delay)
				}
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestSlicerIdleCountsTowardsDelay(t *testing.T) {
	clk := NewFakeClock(t0)
	st := mustStage(t)(NewSlicer(Slicer{AverageSize: 5, Delay: time.Second, Clock: clk}))
	feed(t, st, clk, make([]byte, 10), []int{10})
	clk.Advance(time.Minute)
	feed(t, st, clk, make([]byte, 10), []int{10})
	want := []time.Duration{time.Second, time.Second}
	if got := clk.Sleeps(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("sleeps %v, want %v (no wait after an idle minute)", got, want)
	}
}

func TestCutoff(t *testing.T) {
	kinds := []struct {
		name  string
		style proxy.CloseStyle
		mk    func(n int64) (proxy.Stage, error)
	}{
		{"reset", proxy.StyleRST, func(n int64) (proxy.Stage, error) { return NewReset(Reset{AfterBytes: n}) }},
		{"limit_data", proxy.StyleFIN, func(n int64) (proxy.Stage, error) { return NewLimitData(LimitData{Bytes: n}) }},
	}
	for _, k := range kinds {
		for _, limit := range []int64{0, 1, 5, 100, 1000} {
			t.Run(k.name+"/"+itoa(int(limit)), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(limit), 7))
				for iter := range 100 {
					data := randomBytes(rng, rng.IntN(1500))
					sizes := chunking(rng, len(data), 300)
					st := mustStage(t)(k.mk(limit))
					r := feed(t, st, nil, data, sizes)
					want := data[:min(int64(len(data)), limit)]
					if !bytes.Equal(r.out, want) {
						t.Fatalf("iteration %d: forwarded %d bytes, want the first %d", iter, len(r.out), len(want))
					}
					// The cut comes with the first chunk that reaches the
					// limit, and every later call repeats it.
					wantAt, sum := -1, int64(0)
					for i, n := range sizes {
						sum += int64(n)
						if sum >= limit {
							wantAt = i
							break
						}
					}
					if r.cutAt != wantAt {
						t.Fatalf("iteration %d: cut at chunk %d, want %d", iter, r.cutAt, wantAt)
					}
					if wantAt >= 0 {
						if r.cut.Style != k.style || r.cut.After != 0 || r.cut.Reason == "" {
							t.Fatalf("cut %+v, want style %s at once with a reason", r.cut, k.style)
						}
						if r.cuts != len(sizes)-wantAt || r.emitsAfterCut != 0 {
							t.Fatalf("after the cut: %d cuts, %d emits; want a cut per call and no emit", r.cuts, r.emitsAfterCut)
						}
					}
				}
			})
		}
	}
}

func TestTimeout(t *testing.T) {
	t.Run("blackhole", func(t *testing.T) {
		st := mustStage(t)(NewTimeout(Timeout{}))
		r := feed(t, st, nil, make([]byte, 300), []int{100, 100, 100})
		if len(r.out) != 0 || r.cuts != 0 {
			t.Errorf("blackhole forwarded %d bytes and cut %d times", len(r.out), r.cuts)
		}
	})
	t.Run("close after", func(t *testing.T) {
		st := mustStage(t)(NewTimeout(Timeout{CloseAfter: 5 * time.Second}))
		r := feed(t, st, nil, make([]byte, 300), []int{0, 100, 100, 100})
		if len(r.out) != 0 {
			t.Errorf("forwarded %d bytes", len(r.out))
		}
		if r.cutAt != 1 || r.cuts != 1 {
			t.Fatalf("cut at chunk %d, %d times; want once, at the first data (chunk 1)", r.cutAt, r.cuts)
		}
		if r.cut.Style != proxy.StyleFIN || r.cut.After != 5*time.Second {
			t.Errorf("cut %+v, want FIN after 5s", r.cut)
		}
	})
}

func TestSlowClose(t *testing.T) {
	clk := NewFakeClock(t0)
	st := mustStage(t)(NewSlowClose(SlowClose{Delay: 3 * time.Second, Clock: clk}))
	data := []byte("hello")
	if r := feed(t, st, clk, data, []int{2, 3}); !bytes.Equal(r.out, data) {
		t.Fatalf("output %q", r.out)
	}
	if n := len(clk.Sleeps()); n != 0 {
		t.Fatalf("%d sleeps before EOF", n)
	}
	eof, ok := st.(proxy.EOFStage)
	if !ok {
		t.Fatal("slow_close does not implement proxy.EOFStage")
	}
	eof.OnEOF(context.Background())
	if got := clk.Sleeps(); len(got) != 1 || got[0] != 3*time.Second {
		t.Errorf("OnEOF slept %v, want [3s]", got)
	}
}

// recorder is an inner stage that records what reaches it and passes it on.
type recorder struct {
	got   []byte
	calls int
	eofs  int
}

func (r *recorder) Forward(_ context.Context, chunk []byte, emit func([]byte) error) (*proxy.Cut, error) {
	r.calls++
	r.got = append(r.got, chunk...)
	return nil, emit(chunk)
}

func (r *recorder) OnEOF(context.Context) { r.eofs++ }

func TestDelayedBoundary(t *testing.T) {
	for _, after := range []int64{0, 1, 7, 100, 5000} {
		t.Run(itoa(int(after)), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(after), 9))
			for iter := range 100 {
				data := randomBytes(rng, rng.IntN(1000))
				inner := &recorder{}
				st := mustStage(t)(NewDelayed(Delayed{AfterBytes: after, Inner: inner}))
				r := feed(t, st, nil, data, chunking(rng, len(data), 50))
				if !bytes.Equal(r.out, data) {
					t.Fatalf("iteration %d: output differs", iter)
				}
				split := min(int64(len(data)), after)
				if !bytes.Equal(inner.got, data[split:]) {
					t.Fatalf("iteration %d: inner got %d bytes, want the %d after byte %d", iter, len(inner.got), len(data)-int(split), split)
				}
				if len(data[split:]) == 0 && inner.calls != 0 {
					t.Fatalf("iteration %d: inner called %d times with nothing to do", iter, inner.calls)
				}
				st.(proxy.EOFStage).OnEOF(context.Background())
				if wantEOF := int64(len(data)) >= after; (inner.eofs == 1) != wantEOF {
					t.Fatalf("iteration %d: inner OnEOF called %d times, want started=%v", iter, inner.eofs, wantEOF)
				}
			}
		})
	}
}

func TestDelayedReset(t *testing.T) {
	// "Reset after 10 bytes" built both ways gives the same cut point.
	data := []byte("0123456789abcdefghij")
	inner := mustStage(t)(NewReset(Reset{}))
	st := mustStage(t)(NewDelayed(Delayed{AfterBytes: 10, Inner: inner}))
	r := feed(t, st, nil, data, []int{4, 4, 4, 8})
	if string(r.out) != "0123456789" || r.cutAt != 2 || r.cut.Style != proxy.StyleRST {
		t.Errorf("got %q, cut at chunk %d (%+v); want 10 bytes then RST at chunk 2", r.out, r.cutAt, r.cut)
	}
}

// signalClock is the real clock, announcing each Sleep before it waits.
type signalClock struct {
	RealClock
	sleeping chan struct{}
}

func (c signalClock) Sleep(ctx context.Context, d time.Duration) error {
	select {
	case c.sleeping <- struct{}{}:
	default:
	}
	return c.RealClock.Sleep(ctx, d)
}

// TestCancel checks that a stage waiting for a long time returns
// ctx.Err() as soon as its context is cancelled, with the real clock. The
// 10s limit only keeps a broken stage from hanging the test.
func TestCancel(t *testing.T) {
	const long = time.Hour
	stages := map[string]func(t *testing.T, clk Clock) proxy.Stage{
		"latency": func(t *testing.T, clk Clock) proxy.Stage {
			return mustStage(t)(NewLatency(Latency{Delay: long, Clock: clk}))
		},
		"bandwidth": func(t *testing.T, clk Clock) proxy.Stage {
			return mustStage(t)(NewBandwidth(Bandwidth{BytesPerSecond: 1, Clock: clk}))
		},
		"slicer": func(t *testing.T, clk Clock) proxy.Stage {
			return mustStage(t)(NewSlicer(Slicer{AverageSize: 1, Delay: long, Clock: clk}))
		},
		"delayed latency": func(t *testing.T, clk Clock) proxy.Stage {
			inner := mustStage(t)(NewLatency(Latency{Delay: long, Clock: clk}))
			return mustStage(t)(NewDelayed(Delayed{AfterBytes: 1, Inner: inner}))
		},
	}
	for name, mk := range stages {
		t.Run(name+"/while sleeping", func(t *testing.T) {
			clk := signalClock{sleeping: make(chan struct{}, 1)}
			st := mk(t, clk)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := st.Forward(ctx, []byte("abc"), func([]byte) error { return nil })
				done <- err
			}()
			select {
			case <-clk.sleeping:
			case err := <-done:
				t.Fatalf("Forward returned %v without sleeping", err)
			case <-time.After(10 * time.Second):
				t.Fatal("stage never started sleeping")
			}
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Forward = %v, want context.Canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Forward did not return after cancel")
			}
		})
		t.Run(name+"/already cancelled", func(t *testing.T) {
			st := mk(t, RealClock{})
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := st.Forward(ctx, []byte("abc"), func([]byte) error { return nil }); !errors.Is(err, context.Canceled) {
				t.Errorf("Forward = %v, want context.Canceled", err)
			}
		})
	}
	t.Run("slow_close OnEOF", func(t *testing.T) {
		clk := signalClock{sleeping: make(chan struct{}, 1)}
		st := mustStage(t)(NewSlowClose(SlowClose{Delay: long, Clock: clk}))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan struct{})
		go func() {
			st.(proxy.EOFStage).OnEOF(ctx)
			close(done)
		}()
		select {
		case <-clk.sleeping:
		case <-time.After(10 * time.Second):
			t.Fatal("OnEOF never started sleeping")
		}
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("OnEOF did not return after cancel")
		}
	})
	t.Run("non-sleeping stages", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for _, st := range []proxy.Stage{
			mustStage(t)(NewReset(Reset{AfterBytes: 10})),
			mustStage(t)(NewLimitData(LimitData{Bytes: 10})),
			mustStage(t)(NewTimeout(Timeout{CloseAfter: time.Second})),
			mustStage(t)(NewSlowClose(SlowClose{Delay: time.Second})),
		} {
			cut, err := st.Forward(ctx, []byte("abc"), func([]byte) error {
				t.Error("emit called with a cancelled context")
				return nil
			})
			if cut != nil || !errors.Is(err, context.Canceled) {
				t.Errorf("%T: Forward = %v, %v; want nil, context.Canceled", st, cut, err)
			}
		}
	})
}

// TestEmitError checks that a write failure stops the stage and comes
// back unwrapped.
func TestEmitError(t *testing.T) {
	errWrite := errors.New("write failed")
	clk := NewFakeClock(t0)
	for _, st := range []proxy.Stage{
		mustStage(t)(NewLatency(Latency{Delay: time.Millisecond, Clock: clk})),
		mustStage(t)(NewBandwidth(Bandwidth{BytesPerSecond: 10, Clock: clk})),
		mustStage(t)(NewSlicer(Slicer{AverageSize: 1, Clock: clk})),
		mustStage(t)(NewReset(Reset{AfterBytes: 2})),
		mustStage(t)(NewReset(Reset{AfterBytes: 20})),
		mustStage(t)(NewLimitData(LimitData{Bytes: 2})),
		mustStage(t)(NewSlowClose(SlowClose{Delay: time.Millisecond, Clock: clk})),
		mustStage(t)(NewDelayed(Delayed{AfterBytes: 2, Inner: &recorder{}})),
	} {
		calls := 0
		_, err := st.Forward(context.Background(), []byte("abcdef"), func([]byte) error {
			calls++
			return errWrite
		})
		if err != errWrite || calls != 1 {
			t.Errorf("%T: Forward = %v after %d emits, want errWrite after 1", st, err, calls)
		}
	}
}

func TestConstructorsValidate(t *testing.T) {
	tests := []struct {
		name, option string
		mk           func() (proxy.Stage, error)
	}{
		{"latency delay", "delay", func() (proxy.Stage, error) { return NewLatency(Latency{Delay: -1}) }},
		{"latency jitter", "jitter", func() (proxy.Stage, error) { return NewLatency(Latency{Jitter: -1}) }},
		{"bandwidth zero", "rate", func() (proxy.Stage, error) { return NewBandwidth(Bandwidth{}) }},
		{"slicer zero", "average_size", func() (proxy.Stage, error) { return NewSlicer(Slicer{}) }},
		{"slicer huge", "average_size", func() (proxy.Stage, error) { return NewSlicer(Slicer{AverageSize: 1<<30 + 1}) }},
		{"slicer variation", "size_variation", func() (proxy.Stage, error) { return NewSlicer(Slicer{AverageSize: 4, SizeVariation: 4}) }},
		{"slicer negative variation", "size_variation", func() (proxy.Stage, error) { return NewSlicer(Slicer{AverageSize: 4, SizeVariation: -1}) }},
		{"slicer delay", "delay", func() (proxy.Stage, error) { return NewSlicer(Slicer{AverageSize: 4, Delay: -1}) }},
		{"timeout", "timeout", func() (proxy.Stage, error) { return NewTimeout(Timeout{CloseAfter: -1}) }},
		{"reset", "bytes", func() (proxy.Stage, error) { return NewReset(Reset{AfterBytes: -1}) }},
		{"limit_data", "bytes", func() (proxy.Stage, error) { return NewLimitData(LimitData{Bytes: -1}) }},
		{"slow_close", "delay", func() (proxy.Stage, error) { return NewSlowClose(SlowClose{Delay: -1}) }},
		{"delayed bytes", "after_bytes", func() (proxy.Stage, error) { return NewDelayed(Delayed{AfterBytes: -1, Inner: passStage{}}) }},
		{"delayed nil", "inner", func() (proxy.Stage, error) { return NewDelayed(Delayed{}) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := tc.mk()
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Option != tc.option {
				t.Fatalf("err = %v, want an OptionError naming %q", err, tc.option)
			}
			if st != nil {
				t.Errorf("stage %T returned with an error", st)
			}
		})
	}
}

func TestParseStage(t *testing.T) {
	tests := []struct {
		kind string
		opts map[string]string
		want string // canonical String()
	}{
		{"latency", map[string]string{"delay": "250ms"}, "latency delay=250ms"},
		{"Latency", map[string]string{"latency": "1s", "jitter": "50ms"}, "latency delay=1s jitter=50ms"},
		{"bandwidth", map[string]string{"rate": "1MiB/s"}, "bandwidth rate=1MiB/s"},
		{"bandwidth", map[string]string{"RATE": " 8Mbit "}, "bandwidth rate=8Mbit"},
		{"slicer", map[string]string{"average_size": "16", "size_variation": "4", "delay": "1ms"}, "slicer average_size=16 size_variation=4 delay=1ms"},
		{"slicer", map[string]string{"average-size": "1KiB"}, "slicer average_size=1KiB"},
		{"timeout", nil, "timeout"},
		{"blackhole", map[string]string{"timeout": "30s"}, "timeout timeout=30s"},
		{"reset", map[string]string{"bytes": "0"}, "reset bytes=0"},
		{"reset", map[string]string{"after_bytes": "100"}, "reset after_bytes=100"},
		{"limit-data", map[string]string{"bytes": "4KiB"}, "limit_data bytes=4KiB"},
		{"slow_close", map[string]string{"delay": "5s", "after_bytes": "1MB"}, "slow_close delay=5s after_bytes=1MB"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			spec, err := ParseStage(tc.kind, tc.opts)
			if err != nil {
				t.Fatalf("ParseStage: %v", err)
			}
			if got := spec.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			if got, want := spec.Kind(), strings.Fields(tc.want)[0]; got != want {
				t.Errorf("Kind() = %q, want %q", got, want)
			}
			if spec.New(NewRand(1), NewFakeClock(t0)) == nil {
				t.Error("New returned nil")
			}
			st, err := NewStage(tc.kind, tc.opts, nil, nil)
			if err != nil || st == nil {
				t.Errorf("NewStage = %v, %v", st, err)
			}
		})
	}
}

// TestParseStageValues checks that parsed options reach the stage.
func TestParseStageValues(t *testing.T) {
	t.Run("latency", func(t *testing.T) {
		clk := NewFakeClock(t0)
		st, err := NewStage("latency", map[string]string{"delay": "250ms"}, NewRand(1), clk)
		if err != nil {
			t.Fatal(err)
		}
		feed(t, st, clk, []byte("x"), []int{1})
		if got := clk.Sleeps(); len(got) != 1 || got[0] != 250*time.Millisecond {
			t.Errorf("sleeps %v, want [250ms]", got)
		}
	})
	t.Run("bandwidth", func(t *testing.T) {
		clk := NewFakeClock(t0)
		st, err := NewStage("bandwidth", map[string]string{"rate": "8kbit"}, nil, clk)
		if err != nil {
			t.Fatal(err)
		}
		// 8kbit = 1000 B/s: 2000 bytes take 2s, less one 100-byte piece.
		feed(t, st, clk, make([]byte, 2000), []int{2000})
		if got := clk.Slept(); got != 1900*time.Millisecond {
			t.Errorf("slept %v, want 1.9s", got)
		}
	})
	t.Run("reset after_bytes", func(t *testing.T) {
		st, err := NewStage("reset", map[string]string{"after_bytes": "3", "bytes": "2"}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := feed(t, st, nil, []byte("abcdefgh"), []int{8})
		if string(r.out) != "abcde" || r.cut == nil || r.cut.Style != proxy.StyleRST {
			t.Errorf("got %q, cut %+v; want 3+2 bytes then RST", r.out, r.cut)
		}
	})
}

func TestParseStageErrors(t *testing.T) {
	tests := []struct {
		name   string
		kind   string
		opts   map[string]string
		option string // "" for an unknown kind
		is     error
	}{
		{"unknown kind", "jitterbug", nil, "", ErrUnknownStage},
		{"empty kind", "", nil, "", ErrUnknownStage},
		{"unknown option", "latency", map[string]string{"delay": "1s", "jiter": "1s"}, "jiter", ErrUnknownOption},
		{"option of another kind", "reset", map[string]string{"rate": "1MB/s"}, "rate", ErrUnknownOption},
		{"missing delay", "latency", map[string]string{"jitter": "1s"}, "delay", ErrMissingOption},
		{"missing rate", "bandwidth", nil, "rate", ErrMissingOption},
		{"missing average_size", "slicer", nil, "average_size", ErrMissingOption},
		{"missing bytes", "limit_data", nil, "bytes", ErrMissingOption},
		{"missing slow delay", "slow_close", nil, "delay", ErrMissingOption},
		{"alias twice", "latency", map[string]string{"delay": "1s", "latency": "2s"}, "latency", nil},
		{"bare number duration", "latency", map[string]string{"delay": "250"}, "delay", nil},
		{"negative duration", "latency", map[string]string{"delay": "-1s"}, "delay", nil},
		{"bad jitter", "latency", map[string]string{"delay": "1s", "jitter": "soon"}, "jitter", nil},
		{"bare rate", "bandwidth", map[string]string{"rate": "100"}, "rate", nil},
		{"bps rate", "bandwidth", map[string]string{"rate": "8Mbps"}, "rate", nil},
		{"zero rate", "bandwidth", map[string]string{"rate": "0B/s"}, "rate", nil},
		{"tiny rate", "bandwidth", map[string]string{"rate": "7bit"}, "rate", nil},
		{"bad size unit", "limit_data", map[string]string{"bytes": "4KB/s"}, "bytes", nil},
		{"fractional bytes", "limit_data", map[string]string{"bytes": "1.5"}, "bytes", nil},
		{"negative bytes", "reset", map[string]string{"bytes": "-1"}, "bytes", nil},
		{"size variation too big", "slicer", map[string]string{"average_size": "4", "size_variation": "4"}, "size_variation", nil},
		{"zero average", "slicer", map[string]string{"average_size": "0"}, "average_size", nil},
		{"huge average", "slicer", map[string]string{"average_size": "2GiB"}, "average_size", nil},
		{"bad after_bytes", "timeout", map[string]string{"after_bytes": "lots"}, "after_bytes", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseStage(tc.kind, tc.opts)
			if err == nil {
				t.Fatal("ParseStage succeeded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.is)
			}
			if tc.option == "" {
				// The message lists what is valid.
				if !strings.Contains(err.Error(), "latency, bandwidth") {
					t.Errorf("err = %v, want the list of kinds", err)
				}
				return
			}
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Option != tc.option {
				t.Fatalf("err = %v, want an OptionError naming %q", err, tc.option)
			}
			if !strings.Contains(err.Error(), tc.option) {
				t.Errorf("message %q does not name %q", err, tc.option)
			}
			if errors.Is(err, ErrUnknownOption) && !strings.Contains(err.Error(), "valid: ") {
				t.Errorf("message %q does not list the valid options", err)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1000", 1000, true},
		{"64KiB", 64 << 10, true},
		{"64 kib", 64 << 10, true},
		{"1MB", 1e6, true},
		{"1.5MB", 1.5e6, true},
		{"1.5KiB", 1536, true},
		{"2GiB", 2 << 30, true},
		{"10B", 10, true},
		{"1TiB", 1 << 40, true},
		{"", 0, false},
		{"KB", 0, false},
		{"-1", 0, false},
		{"1.2.3", 0, false},
		{"0.5", 0, false},
		{"1.0001KB", 0, false},
		{"1e3", 0, false},
		{"1/2", 0, false},
		{"1 parsec", 0, false},
		{"99999999999TiB", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1MiB/s", 1 << 20, true},
		{"1MiB", 1 << 20, true},
		{"500KB/s", 500e3, true},
		{"1000B/s", 1000, true},
		{"8Mbit", 1e6, true},
		{"8mbit/s", 1e6, true},
		{"1Gbit", 125e6, true},
		{"100bit", 12, true}, // rounded down
		{"8bit", 1, true},
		{"1.5KB/s", 1500, true},
		{"100", 0, false},
		{"7bit", 0, false},
		{"0B/s", 0, false},
		{"8Mbps", 0, false},
		{"1MBps", 0, false},
		{"1MB/min", 0, false},
		{"fast", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRate(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("ParseRate(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestStageHelp(t *testing.T) {
	kinds := StageKinds()
	want := []string{"latency", "bandwidth", "slicer", "timeout", "reset", "limit_data", "slow_close"}
	if strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Errorf("StageKinds() = %v, want %v", kinds, want)
	}
	kinds[0] = "mutated"
	if StageKinds()[0] != "latency" {
		t.Error("StageKinds returns shared storage")
	}
	for _, k := range want {
		help := StageHelp(k)
		if !strings.HasPrefix(help, k+": ") || !strings.Contains(help, "after_bytes") {
			t.Errorf("StageHelp(%q) = %q", k, help)
		}
	}
	for _, opt := range []string{"delay", "jitter"} {
		if !strings.Contains(StageHelp("latency"), opt) {
			t.Errorf("latency help lacks %q", opt)
		}
	}
	if StageHelp("blackhole") != StageHelp("timeout") {
		t.Error("blackhole help differs from timeout help")
	}
	if StageHelp("nope") != "" {
		t.Error("help for an unknown kind")
	}
}

func TestFakeClock(t *testing.T) {
	clk := NewFakeClock(t0)
	ctx := context.Background()
	for _, d := range []time.Duration{time.Second, 0, -time.Second, time.Millisecond} {
		if err := clk.Sleep(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Minute)
	if got, want := clk.Now(), t0.Add(time.Minute+time.Second+time.Millisecond); !got.Equal(want) {
		t.Errorf("Now() = %v, want %v", got, want)
	}
	if got := clk.Sleeps(); len(got) != 4 {
		t.Errorf("Sleeps() = %v, want all 4 calls", got)
	}
	if got := clk.Slept(); got != time.Second+time.Millisecond {
		t.Errorf("Slept() = %v", got)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := clk.Sleep(cancelled, time.Hour); !errors.Is(err, context.Canceled) || len(clk.Sleeps()) != 4 {
		t.Errorf("Sleep with a cancelled ctx = %v, recorded %d", err, len(clk.Sleeps()))
	}
	var zero FakeClock
	if err := zero.Sleep(ctx, time.Second); err != nil || !zero.Now().Equal(time.Time{}.Add(time.Second)) {
		t.Error("zero FakeClock unusable")
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				_ = clk.Sleep(ctx, time.Millisecond)
				clk.Now()
				clk.Sleeps()
			}
		})
	}
	wg.Wait()
	if n := len(clk.Sleeps()); n != 404 {
		t.Errorf("%d sleeps recorded after concurrent use, want 404", n)
	}
}

func TestRealClock(t *testing.T) {
	var clk RealClock
	ctx := context.Background()
	for range 50 {
		// Reuses pooled timers; each returns once its short wait is over.
		if err := clk.Sleep(ctx, time.Microsecond); err != nil {
			t.Fatal(err)
		}
	}
	if err := clk.Sleep(ctx, 0); err != nil {
		t.Errorf("Sleep(0) = %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := clk.Sleep(cancelled, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep with a cancelled ctx = %v", err)
	}
	if err := clk.Sleep(cancelled, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep(0) with a cancelled ctx = %v", err)
	}
	if clk.Now().IsZero() {
		t.Error("Now() is zero")
	}
}
