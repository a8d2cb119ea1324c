package faults

// The login-response stages of the TDS faults: tds_error at login and
// redirect (MS-TDS §2.2.7.9, §3.2.5.2). The request and reply stages are in
// tds_stage.go.

import (
	"context"
	"fmt"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

// loginReplace swallows the server's login response and answers with an
// error instead, then closes with FIN: the upstream login completed, so
// the server sees an ordinary disconnect, and the client reads the error
// before the end (a refused login ends the connection, MS-TDS §3.2.5.2).
type loginReplace struct {
	f    framer
	msg  tds.ServerMessage
	spid uint16
	done bool
}

func (s *loginReplace) Forward(_ context.Context, chunk []byte, emit func([]byte) error) (*proxy.Cut, error) {
	if s.done {
		return nil, nil // the connection is being closed
	}
	return s.f.forward(chunk, emit, func(u []byte) (*proxy.Cut, bool, error) {
		h, _ := tds.ParseHeader(u)
		s.spid = h.SPID
		if !h.Status.EOM() {
			return nil, false, nil
		}
		s.done = true
		if err := emit(tds.ErrorReply(s.msg, 0, s.spid)); err != nil {
			return nil, true, err
		}
		return &proxy.Cut{Style: proxy.StyleFIN, Reason: fmt.Sprintf("tds_error %d at login", s.msg.Number)}, true, nil
	})
}

// loginRedirect adds a ROUTING ENVCHANGE before the final DONE of a
// successful login response (§2.2.7.9): the client then reconnects to
// the routed address. A failed login passes as it is.
type loginRedirect struct {
	f    framer
	to   tds.Routing
	msg  []byte
	hdr  tds.Header
	size int
	done bool
}

func (s *loginRedirect) Forward(_ context.Context, chunk []byte, emit func([]byte) error) (*proxy.Cut, error) {
	if s.done {
		return nil, emit(chunk)
	}
	return s.f.forward(chunk, emit, func(u []byte) (*proxy.Cut, bool, error) {
		h, _ := tds.ParseHeader(u)
		if s.size == 0 {
			s.hdr = h
		}
		s.size = max(s.size, int(h.Length))
		s.msg = append(s.msg, u[tds.HeaderLen:]...)
		if !h.Status.EOM() {
			return nil, false, nil
		}
		s.done = true
		out := s.msg
		if resp, err := tds.ParseLoginResponse(s.msg); err == nil && resp.Ack != nil {
			if p, ok := tds.InsertBeforeFinalDone(s.msg, tds.AppendRoutingEnvChange(nil, s.to)); ok {
				out = p
			}
		}
		w := tds.Writer{PacketSize: s.size, SPID: s.hdr.SPID}
		if err := emit(w.AppendMessage(nil, tds.PacketReply, s.hdr.Status, out)); err != nil {
			return nil, true, err
		}
		// After the login the stage passes everything: what came behind
		// the response in this chunk goes on as it is.
		rest := s.f.pend
		s.f.pend = nil
		return nil, true, emit(rest)
	})
}
