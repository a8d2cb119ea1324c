package record

import "time"

// Finding is one thing wrong with a finished connection, as package
// diagnose names it: a 10054 scenario or a connection-level pattern
// (client-cancelled, server-refused-encryption, login-failed,
// upstream-unreachable, negotiation-timeout, slow-login, injected-fault),
// with the evidence (which record fields show it) and the fix.
type Finding struct {
	Finding  string `json:"finding"`
	Evidence string `json:"evidence"`
	Fix      string `json:"fix"`
	// Injected is true when a fault rule of this tdsproxy caused it (Rule
	// names the rule); false for a natural failure.
	Injected bool   `json:"injected,omitempty"`
	Rule     string `json:"rule,omitempty"`
	// Step names the slow step of a slow-login finding.
	Step string `json:"step,omitempty"`
	// Number is the SQL Server error number of a login-failed finding.
	Number int32 `json:"number,omitempty"`
}

// Step is one step of a login, SQL Network Analyzer style: the time from
// the previous message being passed on to the message that ends this step
// being passed on, and which side the connection was waiting for.
type Step struct {
	// Step is the phase that ends the step (tcp.accept, prelogin.request,
	// ..., login.response).
	Step string `json:"step"`
	// Awaited is the side that owed the bytes ending the step: "client" or
	// "server".
	Awaited string `json:"awaited"`
	// Duration is the step's length, Held included.
	Duration time.Duration `json:"duration_ns"`
	// Held is the part of Duration an injected fault held the bytes that
	// ended the step.
	Held time.Duration `json:"held_ns,omitempty"`
	// Inferred is true when the step's end was inferred from encrypted TLS
	// records (passthrough) rather than read.
	Inferred bool `json:"inferred,omitempty"`
}
