package proxy

// Goroutine stacks that grow once, early. A goroutine starts with a small
// stack, and the runtime doubles it when a call needs more: it allocates
// the new stack and copies the old one, adjusting every frame on it, so a
// stack that grows while the parsers (TDS, TLS, x509) are a dozen calls
// deep costs microseconds per copy. The negotiating goroutines and the one
// that finishes a session each grew about twice per login: 6% of the
// proxy's CPU per login (BENCHMARKS.md, issue 17). growStack, called while
// only a few frames are on the stack, takes the stack to its working size
// in one cheap copy. The relay's goroutines do not call it: they start
// small and stay small for idle memory (session.pipe).

// growFrame is the frame growStack needs: with the runtime's stack guard,
// it takes a goroutine's stack to 8 KiB, the most a negotiation or a
// session's finish was seen to use (a 28 KiB frame saved no more growth
// in the same measurement, a 2 KiB one saved none).
const growFrame = 5 << 10

// growStack grows the calling goroutine's stack now (see above). i only
// keeps the compiler from dropping the frame.
//
//go:noinline
func growStack(i int) byte {
	var pad [growFrame]byte
	pad[i%len(pad)] = byte(i)
	return pad[(i+1)%len(pad)]
}
