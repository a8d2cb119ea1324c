package tlsbridge

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/tdsproxy/tdsproxy/tds"
)

// relay copies the plaintext TDS streams both ways, feeding the decoder,
// until both directions end. cr/cw are the client leg, sr/sw the
// upstream's; ctlsClose/utlsClose, when set, are the TLS conns that get a
// close_notify when their peer's direction ends.
func (s *bridgeSession) relay(cr io.Reader, cw io.Writer, sr io.Reader, sw io.Writer, cTLS, uTLS interface{ CloseWrite() error }) error {
	var wg sync.WaitGroup
	var once sync.Once
	first := func(by string, err error) {
		once.Do(func() {
			s.rep.CloseBy = by
			switch {
			case err == nil || errors.Is(err, io.EOF):
				s.rep.CloseKind = "fin"
			case errors.Is(err, syscall.ECONNRESET):
				s.rep.CloseKind = "rst"
			default:
				s.rep.CloseKind = "error"
			}
		})
	}
	if s.hook != nil {
		sw = s.hook.Wrap(true, sw)
		cw = s.hook.Wrap(false, cw)
	}
	wg.Add(2)
	go func() { // client to server
		defer wg.Done()
		err := s.copyDir(true, sw, cr)
		first("client", err)
		if uTLS != nil {
			uTLS.CloseWrite()
		}
		closeWrite(s.upstream)
	}()
	go func() { // server to client
		defer wg.Done()
		err := s.copyDir(false, cw, sr)
		first("server", err)
		if cTLS != nil {
			cTLS.CloseWrite()
		}
		closeWrite(s.client)
	}()
	wg.Wait()
	return nil
}

// copyDir copies src to dst, feeding the decoder; it returns the read
// error that ended it (nil or io.EOF for a clean end).
func (s *bridgeSession) copyDir(fromClient bool, dst io.Writer, src io.Reader) error {
	buf := make([]byte, 32<<10)
	// Only this direction's goroutine writes its stamp: Login7 from the
	// client's, LoginResponse from the server's.
	// The decoder is asked until the LOGIN7 is in, within the first
	// 2*maxMessage bytes (PRELOGIN inside strict TLS comes first).
	stampLogin := fromClient && !s.loginIn.Load()
	stampResponse := !fromClient
	var seen int
	// held is the start of a LOGIN7 that arrived in more than one read:
	// with a hook, it goes on whole once the hook has seen the login, so
	// the stages the hook attaches see whole packets.
	var held []byte
	for {
		n, err := src.Read(buf)
		if n > 0 {
			s.feed(fromClient, buf[:n])
			if seen += n; stampLogin && seen > 2*s.maxMessage() {
				stampLogin = false
			}
			if stampLogin && s.loginDecoded() {
				s.rep.Times.Login7, stampLogin = time.Now(), false
				s.loginIn.Store(true)
			}
			respond := stampResponse && s.loginIn.Load()
			out := buf[:n]
			if fromClient && s.hook != nil && !s.loginSeen {
				if err := s.checkLogin(); err != nil {
					return err
				}
				held = append(held, out...)
				if !s.loginSeen && err == nil && len(held) < s.maxMessage() && partialLogin7(held) {
					continue
				}
				out, held = held, nil
			}
			if _, werr := dst.Write(out); werr != nil {
				return werr
			}
			if respond {
				// After LOGIN7 the server's first message is its
				// login response (MS-TDS §3.2.5.3).
				s.rep.Times.LoginResponse, stampResponse = time.Now(), false
			}
		}
		if err != nil {
			return err
		}
	}
}

// partialLogin7 reports whether b is the start of a LOGIN7 message
// (MS-TDS §2.2.6.4) whose last packet (EOM, §2.2.3.1.2) has not arrived.
func partialLogin7(b []byte) bool {
	if len(b) == 0 || b[0] != byte(tds.PacketLogin7) {
		return false
	}
	for off := 0; off < len(b); {
		if len(b)-off < tds.HeaderLen {
			return true
		}
		h, err := tds.ParseHeader(b[off:])
		if err != nil || h.Type != tds.PacketLogin7 || int(h.Length) < tds.HeaderLen {
			return false
		}
		if off+int(h.Length) > len(b) {
			return true
		}
		if h.Status.EOM() {
			return false
		}
		off += int(h.Length)
	}
	return true
}

// readMessageRaw reads one TDS message and returns it with its bytes as
// they arrived (headers included), so they can be forwarded unchanged.
func readMessageRaw(r io.Reader, maxMessage int) (tds.Message, []byte, error) {
	var m tds.Message
	var raw []byte
	var hdr [tds.HeaderLen]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if m.Packets > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return m, raw, err
		}
		h, err := tds.ParseHeader(hdr[:])
		if err != nil {
			return m, raw, err
		}
		if m.Packets == 0 {
			m.Type, m.Status = h.Type, h.Status
		} else if h.Type != m.Type {
			return m, raw, fmt.Errorf("tds: packet %d of a %s message has type %s", m.Packets+1, m.Type, h.Type)
		}
		if len(m.Payload)+h.PayloadLen() > maxMessage {
			return m, raw, fmt.Errorf("%w: more than %d bytes", tds.ErrMessageLimit, maxMessage)
		}
		start := len(m.Payload)
		m.Payload = append(m.Payload, make([]byte, h.PayloadLen())...)
		if _, err := io.ReadFull(r, m.Payload[start:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return m, raw, err
		}
		raw = append(raw, hdr[:]...)
		raw = append(raw, m.Payload[start:]...)
		m.Packets++
		if h.Status.EOM() {
			return m, raw, nil
		}
	}
}
