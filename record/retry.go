package record

import "time"

// RetryInfo links a connection to the earlier attempts of the same client
// identity (docs/tds-faults.md, "Retry analysis"): a client that failed
// and came back is attempt 2, 3, ... of one chain.
type RetryInfo struct {
	// Identity is who the client is: its address without the port, plus
	// LOGIN7's host and app when LOGIN7 was visible.
	Identity string `json:"identity"`
	// Chain is the id of the chain's first connection.
	Chain uint64 `json:"chain"`
	// Attempt is this connection's number in the chain, from 1.
	Attempt int `json:"attempt"`
	// Previous is the previous attempt's connection id (0 for attempt 1).
	Previous uint64 `json:"previous,omitempty"`
	// AfterPrevious is the time from the previous attempt's end to this
	// attempt's start: the client's retry interval.
	AfterPrevious time.Duration `json:"after_previous_ns,omitempty"`
	// PreviousEnded is how the previous attempt ended, e.g. "error 40613"
	// or "rst by proxy at login7".
	PreviousEnded string `json:"previous_ended,omitempty"`
	// PreviousRule is the fault rule that caused it, if one did.
	PreviousRule string `json:"previous_rule,omitempty"`
	// Ended is how this attempt ended, in the same words.
	Ended string `json:"ended"`
	// OK is true when this attempt logged in and ended without a failure:
	// the chain is over, with success.
	OK bool `json:"ok"`
}
