package faults

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// The stage registry: kinds, their options and how a string configuration
// becomes a StageSpec. Options bind by name into the config struct
// (bind.go).

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
	// config returns a zero config (a pointer to Latency, Bandwidth, ...);
	// each option is stored into its field tagged opt:"NAME".
	config func() stageConfig
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
		config: func() stageConfig { return &Latency{} },
	},
	{
		name:    "bandwidth",
		summary: "limits the direction's rate, sending pieces of at most 1/10 s worth (Toxiproxy bandwidth)",
		opts: []optSpec{
			{name: "rate", kind: optRate, required: true, help: "bytes or bits per second, e.g. 64KiB/s, 1MB/s, 8Mbit (a unit is required)"},
		},
		config: func() stageConfig { return &Bandwidth{} },
	},
	{
		name:    "slicer",
		summary: "splits data into small slices with a delay between them, i.e. many small TCP segments (Toxiproxy slicer)",
		opts: []optSpec{
			{name: "average_size", kind: optSize, required: true, help: "mean slice size, 1 to 1GiB, e.g. 16 or 1KiB"},
			{name: "size_variation", kind: optSize, help: "slice sizes are uniform in [average_size-size_variation, average_size+size_variation]; less than average_size (default 0)"},
			{name: "delay", kind: optDuration, help: "least time between consecutive slices, e.g. 10ms (default 0)"},
		},
		config: func() stageConfig { return &Slicer{} },
	},
	{
		name:    "timeout",
		summary: "swallows all data; closes the connection (FIN) once timeout has passed since the first data, never if timeout is 0 (Toxiproxy timeout; alias blackhole)",
		opts: []optSpec{
			{name: "timeout", kind: optDuration, help: "delay before the close, e.g. 30s; 0 holds the connection forever (default 0)"},
		},
		config: func() stageConfig { return &Timeout{} },
	},
	{
		name:    "reset",
		summary: "forwards bytes, then resets the connection (RST, error 10054 on Windows)",
		opts: []optSpec{
			{name: "bytes", kind: optSize, help: "bytes forwarded before the reset; 0 resets at the first data (default 0)"},
		},
		config: func() stageConfig { return &Reset{} },
	},
	{
		name:    "limit_data",
		summary: "forwards at most bytes, then closes the connection (FIN) (Toxiproxy limit_data)",
		opts: []optSpec{
			{name: "bytes", kind: optSize, required: true, help: "most bytes forwarded, e.g. 4KiB"},
		},
		config: func() stageConfig { return &LimitData{} },
	},
	{
		name:    "slow_close",
		summary: "passes data unchanged but holds the end of the direction before passing the close on (Toxiproxy slow_close)",
		opts: []optSpec{
			{name: "delay", kind: optDuration, required: true, help: "how long the close is held, e.g. 5s"},
		},
		config: func() stageConfig { return &SlowClose{} },
	},
}

// kindAliases maps accepted alternative kind names to registry names.
var kindAliases = map[string]string{"blackhole": "timeout"}

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
	cfg := k.config()
	var after int64
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
		if o.name == afterBytesOpt.name {
			after = v
		} else if err := bindInt(cfg, o.name, v); err != nil {
			return StageSpec{}, &OptionError{Kind: k.name, Option: o.name, Value: raw, Err: err}
		}
		fmt.Fprintf(&text, " %s=%s", o.name, raw)
	}
	if err := cfg.validate(); err != nil {
		return StageSpec{}, err
	}
	return StageSpec{kind: k.name, text: text.String(), after: after, cfg: cfg}, nil
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
