package faults

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// This file holds the generic, Toxiproxy-like stages and the registry that
// builds them from string options. Every stage value serves ONE direction of
// ONE connection: it keeps state between Forward calls (bytes counted, pacing
// debt) and is not safe for concurrent use; the proxy calls it from that
// direction's goroutine only. Build a fresh one per connection and direction
// (StageSpec.New).
//
// Common contract of the stages here (see proxy.Stage):
//   - bytes are never dropped or reordered, except by design: Timeout
//     swallows everything, Reset and LimitData forward nothing past their
//     cut-off;
//   - emit is called with sub-slices of chunk only, and nothing is kept after
//     Forward returns: the proxy reuses its read buffer, and emit's argument
//     is valid only during the emit call;
//   - an empty chunk is a no-op;
//   - when ctx is done Forward returns ctx.Err() promptly; the part of the
//     chunk not yet emitted is then not forwarded, since the connection is
//     going away;
//   - an error from emit is returned as is, unwrapped, so the proxy can tell
//     its own write errors with errors.Is.

// Errors of stage configuration; OptionError wraps the last two.
var (
	// ErrUnknownStage is returned by ParseStage/NewStage for a kind that
	// is not in StageKinds.
	ErrUnknownStage = errors.New("unknown stage kind")
	// ErrUnknownOption is an option name the kind does not take.
	ErrUnknownOption = errors.New("unknown option")
	// ErrMissingOption is a required option that was not given.
	ErrMissingOption = errors.New("missing required option")
)

// OptionError is a bad option of a stage, from the registry (option names
// as users write them, e.g. "jitter") or from a constructor (the same names:
// each config field documents its option name).
type OptionError struct {
	Kind   string // stage kind, e.g. "latency"
	Option string // option name, e.g. "jitter"
	Value  string // the offending value as given ("" if none)
	Err    error
}

func (e *OptionError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("faults: %s: option %s: %v", e.Kind, e.Option, e.Err)
	}
	return fmt.Sprintf("faults: %s: option %s=%q: %v", e.Kind, e.Option, e.Value, e.Err)
}

// Unwrap returns the cause, so errors.Is(err, ErrUnknownOption) works.
func (e *OptionError) Unwrap() error { return e.Err }

// errNegative is the cause for every option that must not be negative.
var errNegative = errors.New("must not be negative")

func optErr(kind, opt string, v any, err error) *OptionError {
	return &OptionError{Kind: kind, Option: opt, Value: fmt.Sprint(v), Err: err}
}

func checkNonNeg[T ~int | ~int64](kind, opt string, v T) error {
	if v < 0 {
		return optErr(kind, opt, v, errNegative)
	}
	return nil
}

// stageConfig is what every config type below provides to the constructors
// and to the registry.
type stageConfig interface {
	validate() error
	// build makes the stage from a validated config; r and clk override
	// the config's own Rand and Clock fields when non-nil.
	build(r *Rand, clk Clock) proxy.Stage
}

func orRand(r *Rand) *Rand {
	if r == nil {
		return NewRand(0)
	}
	return r
}

func newStage(c stageConfig) (proxy.Stage, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c.build(nil, nil), nil
}

// ---- latency ----------------------------------------------------------

// Latency delays every chunk by Delay±Jitter before passing it on
// (Toxiproxy "latency"). The delay starts when the chunk is handed to
// Forward; as the proxy reads the next chunk only after Forward returns,
// back-to-back chunks wait one after the other (Toxiproxy pipelines them
// against their arrival time). For TDS's request/response traffic this is
// the same; a large result set read in many chunks is slowed more.
type Latency struct {
	// Delay is the base delay per chunk (option "delay", alias "latency").
	Delay time.Duration
	// Jitter spreads each delay uniformly over [Delay-Jitter, Delay+Jitter],
	// clamped at 0 (option "jitter"). Zero means none.
	Jitter time.Duration
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

// ---- bandwidth --------------------------------------------------------

// Bandwidth limits the rate of one direction (Toxiproxy "bandwidth"). It
// emits in pieces of at most a tenth of a second's worth (at least 1 byte)
// and paces them with a token bucket one piece deep: over any interval T
// at most BytesPerSecond*T + one piece pass, and an idle link banks no more
// than one piece of credit.
type Bandwidth struct {
	// BytesPerSecond is the limit, at least 1 (option "rate", e.g.
	// "1MiB/s" or "8Mbit").
	BytesPerSecond int64
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

// ---- slicer -----------------------------------------------------------

// Slicer splits every chunk into slices of AverageSize±SizeVariation bytes
// with Delay between consecutive slices (Toxiproxy "slicer"), so a peer
// sees many small TCP segments and partial TDS packets. Whether slices
// leave as separate segments depends on the proxy writing each emit with
// TCP_NODELAY (Go's default).
type Slicer struct {
	// AverageSize is the mean slice size, 1 byte to 1 GiB (option
	// "average_size").
	AverageSize int
	// SizeVariation spreads slice sizes uniformly over
	// [AverageSize-SizeVariation, AverageSize+SizeVariation]; it must be
	// smaller than AverageSize (option "size_variation"). The last slice of
	// a chunk takes what is left and may be smaller.
	SizeVariation int
	// Delay is the least time from one slice's emit to the next slice,
	// within a chunk and across chunks; time spent waiting for input
	// counts towards it (option "delay"). Zero means none.
	Delay time.Duration
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
	CloseAfter time.Duration
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

// ---- reset / limit_data -------------------------------------------------

// Reset forwards AfterBytes bytes of the direction, then asks for the
// connection to be reset (Cut with Style RST: the client sees 10054 on
// Windows). With AfterBytes 0 the first chunk resets and nothing passes.
// The cut comes with the chunk that completes AfterBytes, without waiting
// for more data.
type Reset struct {
	// AfterBytes is how many bytes pass before the reset (option "bytes").
	AfterBytes int64
}

// NewReset returns a reset stage for one connection and direction.
func NewReset(c Reset) (proxy.Stage, error) { return newStage(c) }

func (c Reset) validate() error { return checkNonNeg("reset", "bytes", c.AfterBytes) }

func (c Reset) build(*Rand, Clock) proxy.Stage {
	return &cutoffStage{limit: c.AfterBytes,
		cut: proxy.Cut{Style: proxy.StyleRST, Reason: fmt.Sprintf("reset after %d bytes", c.AfterBytes)}}
}

// LimitData forwards at most Bytes bytes of the direction, then asks for a
// normal close (Toxiproxy "limit_data": Cut with Style FIN). The close comes
// with the chunk that completes Bytes; Bytes 0 closes at the first chunk.
type LimitData struct {
	// Bytes is the most that passes (option "bytes").
	Bytes int64
}

// NewLimitData returns a limit_data stage for one connection and direction.
func NewLimitData(c LimitData) (proxy.Stage, error) { return newStage(c) }

func (c LimitData) validate() error { return checkNonNeg("limit_data", "bytes", c.Bytes) }

func (c LimitData) build(*Rand, Clock) proxy.Stage {
	return &cutoffStage{limit: c.Bytes,
		cut: proxy.Cut{Style: proxy.StyleFIN, Reason: fmt.Sprintf("limit_data %d bytes", c.Bytes)}}
}

// cutoffStage forwards limit bytes, then returns cut on every call.
type cutoffStage struct {
	limit, sent int64
	cut         proxy.Cut
	done        bool
}

var _ proxy.Stage = (*cutoffStage)(nil)

func (s *cutoffStage) Forward(ctx context.Context, chunk []byte, emit func([]byte) error) (*proxy.Cut, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.done {
		return s.result(), nil
	}
	if len(chunk) == 0 {
		return nil, nil
	}
	room := s.limit - s.sent
	if int64(len(chunk)) < room {
		s.sent += int64(len(chunk))
		return nil, emit(chunk)
	}
	// This chunk reaches the limit: pass the part up to it, then cut.
	s.done = true
	s.sent = s.limit
	if room > 0 {
		if err := emit(chunk[:room]); err != nil {
			return nil, err
		}
	}
	return s.result(), nil
}

// result returns a fresh copy, so that a proxy that keeps or edits the Cut
// never shares it with the next call.
func (s *cutoffStage) result() *proxy.Cut {
	c := s.cut
	return &c
}

// ---- slow_close ---------------------------------------------------------

// SlowClose passes data unchanged and delays the end of the direction: when
// the source closes, OnEOF waits Delay before the proxy passes the close on
// (Toxiproxy "slow_close").
type SlowClose struct {
	// Delay is how long the close is held (option "delay").
	Delay time.Duration
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

// passStage forwards unchanged; it is what a zero StageSpec builds.
type passStage struct{}

func (passStage) Forward(_ context.Context, chunk []byte, emit func([]byte) error) (*proxy.Cut, error) {
	if len(chunk) == 0 {
		return nil, nil
	}
	return nil, emit(chunk)
}

func pickRand(a, b *Rand) *Rand {
	if a != nil {
		return a
	}
	return b
}

func pickClock(a, b Clock) Clock {
	if a != nil {
		return a
	}
	return b
}

// ---- registry -----------------------------------------------------------

// optKind is the format of an option value.
type optKind int

const (
	optDuration optKind = iota
	optSize
	optRate
)

func (k optKind) String() string {
	switch k {
	case optDuration:
		return "duration"
	case optSize:
		return "size"
	}
	return "rate"
}

// optSpec describes one option of a kind.
type optSpec struct {
	name     string
	alias    string // another accepted name, "" if none
	kind     optKind
	required bool
	help     string
}

// kindSpec describes one stage kind of the registry.
type kindSpec struct {
	name, summary string
	opts          []optSpec
	// make builds the config from parsed values, indexed like opts
	// (durations and sizes alike carried in int64).
	make func(v []int64) stageConfig
}

// afterBytesOpt is accepted by every kind.
var afterBytesOpt = optSpec{name: "after_bytes", kind: optSize,
	help: "pass this many bytes of the direction unchanged before the fault starts (default 0)"}

// stageKinds is the registry, in the order StageKinds lists it.
var stageKinds = []kindSpec{
	{
		name:    "latency",
		summary: "delays every chunk by delay±jitter before passing it on (Toxiproxy latency)",
		opts: []optSpec{
			{name: "delay", alias: "latency", kind: optDuration, required: true, help: "base delay per chunk, e.g. 250ms"},
			{name: "jitter", kind: optDuration, help: "each delay is uniform in [delay-jitter, delay+jitter], at least 0 (default 0)"},
		},
		make: func(v []int64) stageConfig { return Latency{Delay: time.Duration(v[0]), Jitter: time.Duration(v[1])} },
	},
	{
		name:    "bandwidth",
		summary: "limits the direction's rate, sending pieces of at most 1/10 s worth (Toxiproxy bandwidth)",
		opts: []optSpec{
			{name: "rate", kind: optRate, required: true, help: "bytes or bits per second, e.g. 64KiB/s, 1MB/s, 8Mbit (a unit is required)"},
		},
		make: func(v []int64) stageConfig { return Bandwidth{BytesPerSecond: v[0]} },
	},
	{
		name:    "slicer",
		summary: "splits data into small slices with a delay between them, i.e. many small TCP segments (Toxiproxy slicer)",
		opts: []optSpec{
			{name: "average_size", kind: optSize, required: true, help: "mean slice size, 1 to 1GiB, e.g. 16 or 1KiB"},
			{name: "size_variation", kind: optSize, help: "slice sizes are uniform in [average_size-size_variation, average_size+size_variation]; less than average_size (default 0)"},
			{name: "delay", kind: optDuration, help: "least time between consecutive slices, e.g. 10ms (default 0)"},
		},
		make: func(v []int64) stageConfig {
			return Slicer{AverageSize: clampInt(v[0]), SizeVariation: clampInt(v[1]), Delay: time.Duration(v[2])}
		},
	},
	{
		name:    "timeout",
		summary: "swallows all data; closes the connection (FIN) once timeout has passed since the first data, never if timeout is 0 (Toxiproxy timeout; alias blackhole)",
		opts: []optSpec{
			{name: "timeout", kind: optDuration, help: "delay before the close, e.g. 30s; 0 holds the connection forever (default 0)"},
		},
		make: func(v []int64) stageConfig { return Timeout{CloseAfter: time.Duration(v[0])} },
	},
	{
		name:    "reset",
		summary: "forwards bytes, then resets the connection (RST, error 10054 on Windows)",
		opts: []optSpec{
			{name: "bytes", kind: optSize, help: "bytes forwarded before the reset; 0 resets at the first data (default 0)"},
		},
		make: func(v []int64) stageConfig { return Reset{AfterBytes: v[0]} },
	},
	{
		name:    "limit_data",
		summary: "forwards at most bytes, then closes the connection (FIN) (Toxiproxy limit_data)",
		opts: []optSpec{
			{name: "bytes", kind: optSize, required: true, help: "most bytes forwarded, e.g. 4KiB"},
		},
		make: func(v []int64) stageConfig { return LimitData{Bytes: v[0]} },
	},
	{
		name:    "slow_close",
		summary: "passes data unchanged but holds the end of the direction before passing the close on (Toxiproxy slow_close)",
		opts: []optSpec{
			{name: "delay", kind: optDuration, required: true, help: "how long the close is held, e.g. 5s"},
		},
		make: func(v []int64) stageConfig { return SlowClose{Delay: time.Duration(v[0])} },
	},
}

// kindAliases maps accepted alternative kind names to registry names.
var kindAliases = map[string]string{"blackhole": "timeout"}

// clampInt converts a parsed size to int; validate rejects what clamping
// changes (sizes above 1GiB), so clamping only prevents wrap-around.
func clampInt(v int64) int { return int(min(v, math.MaxInt32)) }

func normName(s string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_")
}

func lookupKind(kind string) (*kindSpec, bool) {
	name := normName(kind)
	if a, ok := kindAliases[name]; ok {
		name = a
	}
	for i := range stageKinds {
		if stageKinds[i].name == name {
			return &stageKinds[i], true
		}
	}
	return nil, false
}

// StageKinds returns the kinds NewStage accepts, in a fixed order. The
// alias "blackhole" (for timeout) is accepted but not listed.
func StageKinds() []string {
	names := make([]string, len(stageKinds))
	for i, k := range stageKinds {
		names[i] = k.name
	}
	return names
}

// StageHelp returns a short description of a kind and its options, for
// --help and the docs; "" for an unknown kind.
func StageHelp(kind string) string {
	k, ok := lookupKind(kind)
	if !ok {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", k.name, k.summary)
	for _, o := range append(slices.Clone(k.opts), afterBytesOpt) {
		name := o.name
		if o.alias != "" {
			name += " (or " + o.alias + ")"
		}
		req := ""
		if o.required {
			req = ", required"
		}
		fmt.Fprintf(&b, "  %-20s %s%s: %s\n", name, o.kind, req, o.help)
	}
	return b.String()
}

// StageSpec is a parsed and validated stage configuration. It is immutable
// and may be shared; New builds the per-connection, per-direction stage.
// The zero StageSpec builds a passthrough stage.
type StageSpec struct {
	kind  string
	text  string
	after int64
	cfg   stageConfig
}

// Kind returns the registry name of the kind ("timeout" for "blackhole").
func (s StageSpec) Kind() string { return s.kind }

// String returns the spec in a canonical form, e.g.
// "latency delay=250ms jitter=50ms", for records and logs.
func (s StageSpec) String() string { return s.text }

// New returns a fresh stage for one connection and direction, drawing from
// r (nil: NewRand(0)) and timed by clk (nil: RealClock).
func (s StageSpec) New(r *Rand, clk Clock) proxy.Stage {
	if s.cfg == nil {
		return passStage{}
	}
	st := s.cfg.build(orRand(r), orReal(clk))
	if s.after > 0 {
		st = &delayedStage{after: s.after, inner: st}
	}
	return st
}

// ParseStage parses a kind and its options (names and formats in
// StageHelp; durations like "250ms", sizes like "1000", "64KiB", "1MB",
// rates like "1MiB/s", "8Mbit"). Kind and option names are
// case-insensitive and "-" may stand for "_". Every error is an
// *OptionError naming the option, or wraps ErrUnknownStage.
func ParseStage(kind string, opts map[string]string) (StageSpec, error) {
	k, ok := lookupKind(kind)
	if !ok {
		return StageSpec{}, fmt.Errorf("faults: %w %q (valid: %s)", ErrUnknownStage, kind, strings.Join(StageKinds(), ", "))
	}
	all := append(slices.Clone(k.opts), afterBytesOpt)
	// Resolve given names to options first, in sorted order so that the
	// error for several bad names is deterministic.
	given := make(map[int]string, len(opts)) // option index -> raw value
	givenAs := make(map[int]string, len(opts))
	keys := make([]string, 0, len(opts))
	for key := range opts {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		name := normName(key)
		i := slices.IndexFunc(all, func(o optSpec) bool { return o.name == name || (o.alias != "" && o.alias == name) })
		if i < 0 {
			valid := make([]string, len(all))
			for j, o := range all {
				valid[j] = o.name
			}
			return StageSpec{}, &OptionError{Kind: k.name, Option: key,
				Err: fmt.Errorf("%w (valid: %s)", ErrUnknownOption, strings.Join(valid, ", "))}
		}
		if prev, dup := givenAs[i]; dup {
			return StageSpec{}, &OptionError{Kind: k.name, Option: key,
				Err: fmt.Errorf("same option as %q; give one", prev)}
		}
		given[i], givenAs[i] = strings.TrimSpace(opts[key]), key
	}
	vals := make([]int64, len(all))
	var text strings.Builder
	text.WriteString(k.name)
	for i, o := range all {
		raw, ok := given[i]
		if !ok {
			if o.required {
				return StageSpec{}, &OptionError{Kind: k.name, Option: o.name, Err: ErrMissingOption}
			}
			continue
		}
		v, err := parseOpt(o.kind, raw)
		if err != nil {
			return StageSpec{}, &OptionError{Kind: k.name, Option: givenAs[i], Value: raw, Err: err}
		}
		vals[i] = v
		fmt.Fprintf(&text, " %s=%s", o.name, raw)
	}
	cfg := k.make(vals[:len(k.opts)])
	if err := cfg.validate(); err != nil {
		return StageSpec{}, err
	}
	return StageSpec{kind: k.name, text: text.String(), after: vals[len(k.opts)], cfg: cfg}, nil
}

// NewStage parses kind and opts (see ParseStage) and builds a stage for one
// connection and direction. To build many, parse once with ParseStage and
// call StageSpec.New per connection.
func NewStage(kind string, opts map[string]string, r *Rand, clk Clock) (proxy.Stage, error) {
	spec, err := ParseStage(kind, opts)
	if err != nil {
		return nil, err
	}
	return spec.New(r, clk), nil
}

func parseOpt(k optKind, s string) (int64, error) {
	switch k {
	case optDuration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("bad duration (use a unit, e.g. 250ms or 1.5s): %w", err)
		}
		if d < 0 {
			return 0, errNegative
		}
		return int64(d), nil
	case optSize:
		return ParseSize(s)
	}
	return ParseRate(s)
}

// ---- sizes and rates ----------------------------------------------------

// Byte multipliers by lower-case unit. SI units are powers of 1000, IEC
// units powers of 1024, as in IEC 80000-13.
var byteUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// Bit multipliers (SI, as in tc's kbit/mbit) for rates.
var bitUnits = map[string]int64{"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}

// splitNumber splits "1.5 MiB" into an exact number and the lower-case unit.
func splitNumber(s string) (*big.Rat, string, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	if num == "" || strings.Count(num, ".") > 1 || num == "." {
		return nil, "", fmt.Errorf("bad number %q", s)
	}
	v, ok := new(big.Rat).SetString(num)
	if !ok {
		return nil, "", fmt.Errorf("bad number %q", s)
	}
	return v, unit, nil
}

// toInt64 returns v if it fits in an int64.
func toInt64(v *big.Rat) (int64, bool) {
	if !v.IsInt() || !v.Num().IsInt64() {
		return 0, false
	}
	return v.Num().Int64(), true
}

// ParseSize parses a byte count: a non-negative number with an optional
// unit B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of
// 1024), case-insensitive: "1000", "64KiB", "1.5MB". The result must be a
// whole number of bytes.
func ParseSize(s string) (int64, error) {
	v, unit, err := splitNumber(s)
	if err != nil {
		return 0, err
	}
	m, ok := byteUnits[unit]
	if !ok {
		return 0, fmt.Errorf("unknown size unit %q (use B, KB, KiB, MB, MiB, GB, GiB)", unit)
	}
	n, ok := toInt64(v.Mul(v, new(big.Rat).SetInt64(m)))
	if !ok {
		return 0, fmt.Errorf("size %q is not a whole number of bytes in range", s)
	}
	return n, nil
}

// ParseRate parses a rate in bytes per second: a number with a byte unit
// and an optional "/s" ("1MiB/s", "500KB/s", "1000B/s") or a bit unit bit,
// kbit, mbit, gbit (powers of 1000, optional "/s": "8Mbit" is 1000000
// bytes/s). A unit is required, so that a bare Toxiproxy-style number (KB/s
// there) is not silently read as bytes; "bps" forms are refused as
// ambiguous. Bits are rounded down to whole bytes; the result is at least 1.
func ParseRate(s string) (int64, error) {
	v, unit, err := splitNumber(s)
	if err != nil {
		return 0, err
	}
	unit = strings.TrimSuffix(unit, "/s")
	var m int64
	var isBits bool
	switch {
	case unit == "":
		return 0, errors.New("missing unit (e.g. 64KiB/s, 1MB/s, 8Mbit)")
	case strings.HasSuffix(unit, "ps"):
		return 0, fmt.Errorf("ambiguous unit %q (bits or bytes?): write e.g. 8Mbit or 1MB/s", unit)
	case bitUnits[unit] != 0:
		m, isBits = bitUnits[unit], true
	case byteUnits[unit] != 0:
		m = byteUnits[unit]
	default:
		return 0, fmt.Errorf("unknown rate unit %q (use B/s, KB/s, KiB/s, MB/s, MiB/s, GB/s, GiB/s or bit, kbit, mbit, gbit)", unit)
	}
	v.Mul(v, new(big.Rat).SetInt64(m))
	if isBits {
		v.Quo(v, big.NewRat(8, 1))
	}
	// Round down: a limit must not be exceeded.
	q := new(big.Int).Quo(v.Num(), v.Denom())
	if !q.IsInt64() {
		return 0, fmt.Errorf("rate %q out of range", s)
	}
	if q.Int64() < 1 {
		return 0, fmt.Errorf("rate %q is less than 1 byte/s", s)
	}
	return q.Int64(), nil
}
