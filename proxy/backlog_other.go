//go:build !unix

package proxy

import (
	"net"

	"go.uber.org/zap"
)

// setBacklog cannot change the accept queue here: on Windows, listen()
// on a socket already listening succeeds without changing its backlog
// (Winsock's listen documentation). A delayed-accept rule with backlog
// still pauses accepts, but new SYNs are answered by the kernel's full-size
// queue instead of going unanswered.
func setBacklog(ln net.Listener, n int, log *zap.Logger) {
	if n > 0 {
		log.Warn("the listen backlog cannot be changed on this system; accepts pause, but the queue keeps its size",
			zap.Stringer("listen", ln.Addr()), zap.Int("backlog", n))
	}
}
