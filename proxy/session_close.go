package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// How a session ends: injected closes (RST, FIN, TLS alert), the FIN
// close's drain, limits (max_connections, negotiation_timeout), the end of
// a stream or a failed write, and the one recorded close (setClose).

// inject closes the connection as a verdict asks: the client sees the close
// in the configured style, exactly where the emulated peer would close.
func (s *session) inject(v Verdict) {
	style := v.Style
	if style == "" {
		style = StyleRST
	}
	kind := CloseRST
	switch style {
	case StyleFIN:
		kind = CloseFIN
	case StyleAlert:
		kind = CloseAlert
	}
	s.setClose(SideProxy, kind, strings.TrimSuffix("fault "+v.Rule+": "+v.Detail, ": "))
	srv := s.markClosed()
	s.mu.Lock()
	wrapped := s.rec.TLS != nil && s.rec.TLS.Wrapped || s.rec.Protocol == ProtocolTDS7
	s.mu.Unlock()
	s.cancel()
	switch style {
	case StyleAlert:
		_ = s.client.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = s.client.Write(alertBytes(v.Alert, wrapped))
		s.finClient()
	case StyleFIN:
		s.finClient()
	default:
		resetConn(s.client)
	}
	if srv != nil {
		srv.Close()
	}
	s.wake()
}

// Bounds of a FIN close's drain (drainClient).
const (
	finLinger    = 2 * time.Second
	finDrainCap  = 1 << 20
	finDrainRead = 32 << 10
)

// finClient begins a FIN close of the client: the FIN goes out now
// (shutdown(SHUT_WR)); the client's reader then drains what the client
// still sends and closes the socket (drainClient).
//
// Closing a socket outright while the client's bytes sit unread in its
// receive queue (the PRELOGIN every client sends first, the rest of an
// upload) makes the kernel send RST instead of FIN (RFC 1122 4.2.2.13,
// RFC 2525 2.17): the client would read "connection reset" (10054) where
// the record says fin.
func (s *session) finClient() {
	s.finAt.Store(time.Now().UnixNano())
	s.finWait.Store(true)
	// Bounds the reader's wait whatever it is doing (a hold, the relay).
	_ = s.client.SetReadDeadline(time.Now().Add(finLinger))
	s.closeWrite(s.client)
	// A parked client direction must run to drain (and a parked server
	// direction to see its close).
	s.wake()
}

// drainClient ends a FIN close begun by finClient; only the client's reader
// calls it. It reads and discards what the client sends until the client
// closes, finLinger after the FIN or finDrainCap bytes, whichever is first,
// and then closes the socket. If the client was still sending then, the
// close is an RST after the FIN, and the record says so.
func (s *session) drainClient() {
	if !s.finWait.Load() || !s.drained.CompareAndSwap(false, true) {
		return
	}
	c := s.client
	_ = c.SetReadDeadline(time.Unix(0, s.finAt.Load()).Add(finLinger))
	// Proxy.Close cuts the drain short.
	stop := context.AfterFunc(s.p.ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	var total int
	var err error
	for total < finDrainCap {
		var n int
		n, err = c.Read((*bp)[:min(len(*bp), finDrainRead)])
		total += n
		if err != nil {
			break
		}
	}
	clean := errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
	after := time.Since(time.Unix(0, s.finAt.Load())).Round(time.Millisecond)
	if !clean {
		switch unreadBytes(c) {
		case 0:
		case -1: // not known on this system
			s.amendClose(fmt.Sprintf("FIN sent; the client had not closed %v after it, so the close may have ended with an RST", after))
		default:
			s.amendClose(fmt.Sprintf("FIN sent, then RST: the client was still sending %v after it", after))
		}
	}
	c.Close()
}

// sentText says what a limit's close sends, for a record whose kind says
// why it closed (limit, timeout).
func sentText(style CloseStyle) string {
	if style == StyleFIN {
		return "closed with a FIN"
	}
	return "closed with an RST"
}

// amendClose adds to the recorded close's reason.
func (s *session) amendClose(note string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec.Close == nil {
		return
	}
	if s.rec.Close.Reason == "" {
		s.rec.Close.Reason = note
	} else {
		s.rec.Close.Reason += "; " + note
	}
}

// closeConn closes c (with an RST if reset), unless c is the client and a
// FIN close of it is under way: then the client's reader owns the socket.
func (s *session) closeConn(c net.Conn, reset bool) {
	if c == s.client && s.finWait.Load() && !reset {
		return
	}
	if reset {
		resetConn(c)
	} else {
		c.Close()
	}
	s.wake()
}

// cut closes the connection on a stage's request, now or after c.After.
func (s *session) cut(dir Direction, c *Cut) {
	do := func() {
		s.inject(Verdict{Close: true, Style: c.Style, Rule: "stage", Detail: c.Reason})
	}
	if c.After <= 0 {
		do()
		return
	}
	t := time.AfterFunc(c.After, do)
	go func() { <-s.ctx.Done(); t.Stop() }()
}

// negotiationTimedOut closes a connection still negotiating past the
// deadline: a slowloris peer must not hold a connection forever.
func (s *session) negotiationTimedOut() {
	if !s.watching.Load() {
		return
	}
	d := s.p.cfg.negotiationTimeout()
	// The kind says why; the reason also says what went on the wire.
	s.setClose(SideProxy, CloseTimeout, fmt.Sprintf("negotiation not over after %v (negotiation_timeout); %s", d, sentText(s.p.cfg.limitStyle())))
	s.mu.Lock()
	s.w.note("negotiation timeout")
	s.mu.Unlock()
	s.inject(Verdict{Close: true, Style: s.p.cfg.limitStyle(), Rule: "negotiation_timeout"})
}

// refuse closes a connection at accept because of a limit, and records it.
//
// It runs on the accept loop; a FIN close drains the client on its own
// goroutine.
func (s *session) refuse(reason string, style CloseStyle) {
	s.setClose(SideProxy, CloseLimit, reason+"; "+sentText(style))
	s.cancel()
	if style == StyleFIN {
		s.finClient()
		go func() {
			s.drainClient()
			s.finish()
		}()
		return
	}
	resetConn(s.client)
	s.finish()
}

// readEnded handles the end of src's stream in direction dir.
func (s *session) readEnded(dir Direction, err error) {
	src, dst := s.ends(dir)
	kind, ours := classify(err)
	if ours {
		// We closed this conn ourselves (the other direction or Close did).
		return
	}
	if dir == ClientToServer && s.finWait.Load() {
		// The proxy closed first; this is the client's answer to our FIN,
		// and drainClient closes the socket.
		return
	}
	if dir == ClientToServer {
		s.mu.Lock()
		holding := s.held != nil || s.waiting.Load()
		s.mu.Unlock()
		if holding || kind != CloseFIN {
			// The client left while the server's bytes are held (a delay
			// verdict), or reset (latency stages too): end the holds now,
			// so the record says when the client left and the upstream is
			// released at once. A FIN otherwise may be a half-close, with
			// what a stage holds still owed to the client.
			defer s.cancel()
		}
	} else if kind != CloseFIN {
		// The server reset: nothing held for it can be delivered.
		defer s.cancel()
	}
	if kind == CloseFIN && s.peerReset(src) {
		// An end of stream from a socket the peer reset: the reset's error
		// went to a write on this socket (the other direction), and the
		// read then finds the stream shut. The peer sent an RST, not a FIN.
		kind = CloseRST
		err = fmt.Errorf("read %s: %w (the reset's error was taken by a write)", dir, syscall.ECONNRESET)
	}
	if s.watching.Load() {
		s.mu.Lock()
		s.w.ended(dir)
		s.mu.Unlock()
	}
	s.setClose(dir.sender(), kind, reasonOf(kind, err))
	switch kind {
	case CloseFIN:
		// A slow_close stage holds the close back for a while first.
		for _, st := range s.stagesFor(dir) {
			if es, ok := st.(EOFStage); ok {
				es.OnEOF(s.ctx)
			}
		}
		// Half-close: pass the FIN on and let the other direction finish.
		s.closeWrite(dst)
	case CloseRST:
		// Pass the reset on: an RST from SQL Server must reach the client as
		// an RST, or 10054 becomes a mere EOF.
		s.closeConn(dst, true)
		src.Close()
		s.wake()
	default:
		s.closeConn(src, false)
		s.closeConn(dst, false)
	}
}

// writeFailed handles a failed write to dst: its peer is gone, and the
// direction reading from it will learn how.
func (s *session) writeFailed(dir Direction, err error) {
	src, dst := s.ends(dir)
	kind, ours := classify(err)
	if !ours {
		s.setClose(peer(dir.sender()), kind, "write "+dir.String()+": "+err.Error())
	}
	if s.finWait.Load() {
		// The proxy closed first: a write to the client fails on our own
		// FIN, a write to the server on our close of it. The client's
		// reader drains and closes the client.
		if dst != s.client {
			dst.Close()
		}
		s.wake()
		return
	}
	s.closeConn(src, kind == CloseRST)
	dst.Close()
	s.wake()
}

// setClose records the first close only: who closed first is what matters.
func (s *session) setClose(by Side, kind CloseKind, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec.Close != nil {
		return
	}
	ci := &CloseInfo{By: by, Kind: kind, Phase: s.rec.Phase, Reason: reason}
	// Who owed the next bytes: the side that did not send last. Only known
	// while the watcher sees the bytes; after negotiation the relay is blind.
	c, sv := s.lastRead[ClientToServer], s.lastRead[ServerToClient]
	if (s.watching.Load() || s.held != nil) && (!c.IsZero() || !sv.IsZero()) {
		if c.After(sv) {
			ci.Awaiting = SideServer
			ci.Silence = s.p.now().Sub(c)
		} else {
			ci.Awaiting = SideClient
			ci.Silence = s.p.now().Sub(sv)
		}
	}
	s.rec.Close = ci
}

// abort closes the connection now, as the proxy (shutdown, Close, the
// admin API): with an RST when reset, else with a FIN that stays a FIN on
// the wire (finClient). It records kind and reason.
func (s *session) abort(kind CloseKind, reset bool, reason string) {
	s.setClose(SideProxy, kind, reason)
	s.cancel()
	srv := s.markClosed()
	if reset {
		resetConn(s.client)
	} else {
		s.finClient()
	}
	if srv != nil {
		s.closeConn(srv, reset)
	}
	s.wake()
}

// peer is the other party of a side (the client's is the server).
func peer(sd Side) Side {
	if sd == SideClient {
		return SideServer
	}
	return SideClient
}

// classify maps a read or write error to a close kind; ours is true when the
// error only says that we closed the conn ourselves.
func classify(err error) (kind CloseKind, ours bool) {
	switch {
	case errors.Is(err, io.EOF):
		return CloseFIN, false
	case errors.Is(err, net.ErrClosed):
		return "", true
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return CloseRST, false
	case errors.Is(err, os.ErrDeadlineExceeded):
		return CloseTimeout, false
	}
	return CloseError, false
}

func reasonOf(kind CloseKind, err error) string {
	if kind == CloseFIN {
		return ""
	}
	return err.Error()
}

// closeWrite half-closes c, one of the session's sockets, and remembers it.
func (s *session) closeWrite(c net.Conn) {
	s.finSent[s.index(c)].Store(true)
	closeWrite(c)
}

// peerReset reports whether c's peer reset it, when the TCP state can say
// so: only while the proxy has not half-closed c, since a socket whose FIN
// exchange completes (TIME_WAIT) also reads as closed.
func (s *session) peerReset(c net.Conn) bool {
	return !s.finSent[s.index(c)].Load() && tcpReset(c)
}

// closeWrite half-closes c (sends FIN) when it can, else closes it.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	c.Close()
}

// resetConn closes c with an RST: SO_LINGER 0 makes the kernel drop unsent
// data and send RST instead of FIN, which is what a Windows client reports
// as error 10054 (WSAECONNRESET).
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}
