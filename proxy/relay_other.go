//go:build !linux

package proxy

import "net"

// relayBursts is Linux-only (relay_linux.go); elsewhere the relay is
// io.Copy.
func (s *session) relayBursts(Direction, net.Conn, net.Conn) (ok, parked bool) { return false, false }

// Parking idle directions is Linux-only (park_linux.go): elsewhere an idle
// direction keeps its goroutine, and there is nothing to wake or forget.
func (s *session) wake()          {}
func (s *session) forgetParking() {}

// dirReader exists on Linux only.
type dirReader struct{}

// readChunk reads into a pooled buffer; the buffer is held while the read
// waits (Linux waits without one).
func (s *session) readChunk(_ Direction, src net.Conn) (bp *[]byte, n int, err error, relay bool) {
	bp = bufPool.Get().(*[]byte)
	n, err = src.Read(*bp)
	return bp, n, err, false
}

// unreadBytes is how many received bytes wait unread on c: unknown (-1)
// here, so a drained FIN close that ends on its time or byte bound notes a
// possible RST (session.drainClient).
func unreadBytes(net.Conn) int { return -1 }

// tcpReset cannot tell here whether an end of stream was an RST whose
// error a write took first (Linux reads the TCP state, relay_linux.go).
func tcpReset(net.Conn) bool { return false }

// writeTo writes a negotiation chunk (raw on Linux only).
func (s *session) writeTo(_ Direction, dst net.Conn, b []byte) (int, error) { return dst.Write(b) }
