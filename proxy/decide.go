package proxy

import (
	"context"
	"net/netip"
	"time"
)

// Decider is the extension point where fault injection plugs in: the session
// asks it what to do at each phase event, before the bytes that completed the
// phase are forwarded. Package faults implements it; proxy acts on the
// answer. A nil Decider means pure passthrough.
type Decider interface {
	// Connect is called once per accepted connection, before anything is
	// read from it. The returned ConnDecider sees that connection's events;
	// nil means nothing on this connection is ever injected.
	Connect(c ConnInfo) ConnDecider
}

// ConnDecider decides for one connection. Its methods are called from the
// connection's goroutines, one call at a time.
type ConnDecider interface {
	// Decide is called at every phase event (including PhaseAccept).
	Decide(ev *Event, rec *Record) Verdict
}

// ConnInfo is what is known of a connection when it is accepted.
type ConnInfo struct {
	ID     uint64
	Proxy  string
	Client netip.AddrPort
	// Seq is the connection's sequence number on its proxy, from 1; rules
	// such as "the first N" or "every Nth" count with it.
	Seq uint64
	At  time.Time
}

// CloseStyle is how the proxy closes a connection it decides to end.
type CloseStyle string

// Close styles.
const (
	// StyleRST closes with SO_LINGER 0, so the peer gets an RST: what a
	// Windows client reports as error 10054. The default.
	StyleRST CloseStyle = "rst"
	// StyleFIN closes normally.
	StyleFIN CloseStyle = "fin"
	// StyleAlert sends a TLS alert record (Verdict.Alert) to the client
	// first, then closes with FIN.
	StyleAlert CloseStyle = "alert"
)

// Verdict is a Decider's answer. The zero value means "carry on".
type Verdict struct {
	// Delay holds the bytes that completed the phase for this long before
	// forwarding them (or before closing, when Close is set).
	Delay time.Duration
	// Close ends the connection instead of forwarding the bytes.
	Close bool
	Style CloseStyle
	// Alert is the TLS alert description sent when Style is StyleAlert.
	Alert uint8
	// Stages are attached to the connection from now on, per direction:
	// while any stage is attached, that direction is relayed through it
	// instead of splice.
	Stages []DirectedStage
	// Rule, Scenario and Detail describe the decision for the record; a
	// verdict with a Rule is recorded even if it does nothing (e.g. a rule
	// that matched but could not evaluate).
	Rule, Scenario, Detail string
	// Action names what was done, for the record ("close", "delay",
	// "latency", "skip: unparseable ClientHello", ...).
	Action string
}

// Injects reports whether the verdict changes anything.
func (v Verdict) Injects() bool { return v.Close || v.Delay > 0 || len(v.Stages) > 0 }

// DirectedStage is a Stage applied to one direction.
type DirectedStage struct {
	Dir   Direction
	Stage Stage
}

// Stage shapes one direction's bytes while a generic fault is active
// (latency, bandwidth, slicer, blackhole, limit_data...). Stages are
// per-connection values; they may keep state between calls.
type Stage interface {
	// Forward passes chunk on by calling emit zero or more times, with
	// whatever splitting and waiting the fault wants. It returns a non-nil
	// Cut when the connection must be closed after this chunk. It must
	// return promptly when ctx is done. chunk (and every slice of it passed
	// to emit) is only valid during the call: the session reuses the buffer
	// for another connection afterwards.
	Forward(ctx context.Context, chunk []byte, emit func([]byte) error) (*Cut, error)
}

// EOFStage is an optional Stage capability: OnEOF is called when the
// source of the direction ends, before the end is passed on (slow_close).
type EOFStage interface {
	OnEOF(ctx context.Context)
}

// Cut asks the proxy to close the connection.
type Cut struct {
	Style  CloseStyle
	Reason string
	// After, if positive, closes that long from now instead of at once
	// (blackhole with a timeout); data forwarded meanwhile still flows
	// through the stage.
	After time.Duration
}

// AcceptGate is an optional Decider capability: the accept loop asks it
// before every accept. A positive pause makes the loop wait that long
// before accepting; a positive backlog shrinks the listen queue to that
// size (0 restores the system default), so that while accepts pause, new
// SYNs find the queue full and go unanswered (delayed-accept scenario).
type AcceptGate interface {
	BeforeAccept() (pause time.Duration, backlog int)
}

// AcceptGateNotifier is an optional AcceptGate capability: GateChanged
// returns a channel that is closed when BeforeAccept's answer may have
// changed (a rule was set, changed or removed), so that a pause ends the
// moment its rule goes instead of running its course.
type AcceptGateNotifier interface {
	GateChanged() <-chan struct{}
}
