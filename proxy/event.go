package proxy

import (
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// Event is a phase the connection just reached. The session hands it to the
// Decider before forwarding the bytes that completed it, so a decision to
// close happens exactly where the real peer would have closed.
type Event struct {
	Phase Phase
	// Dir is the direction whose bytes completed the phase.
	Dir Direction
	// Encrypted is true when the phase was inferred from encrypted records.
	Encrypted bool
	// ClientHello and ServerHello are the parsed hellos once seen (nil
	// before, or when they could not be parsed).
	ClientHello *tlsbridge.ClientHello
	ServerHello *tlsbridge.ServerHello
}
