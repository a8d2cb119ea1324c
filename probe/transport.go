package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// mode is how TLS reaches the server.
type mode uint8

const (
	// modeTDS7: PRELOGIN with ENCRYPT_ON, then the handshake records as the
	// payload of PRELOGIN packets (MS-TDS §2.2.6.5).
	modeTDS7 mode = iota
	// modeStrict: TDS 8.0, TLS first with ALPN "tds/8.0" (MS-TDS §3.3.5.1).
	modeStrict
)

func (m mode) String() string {
	if m == modeStrict {
		return "strict (TDS 8.0)"
	}
	return "inside PRELOGIN (TDS 7.x)"
}

// answerKind is how a server answered a ClientHello.
type answerKind uint8

const (
	answerServerHello answerKind = iota + 1
	answerAlert
	answerClosed  // FIN without an alert: Schannel's silence
	answerReset   // RST without an alert: the client's 10054
	answerTimeout // nothing within the timeout
	answerNoTLS   // TDS 7.x: the PRELOGIN reply refused encryption
	answerNotTLS  // bytes that are not TLS records
	answerError   // anything else (dial failure)
)

// answer is what one crafted ClientHello got back.
type answer struct {
	Kind        answerKind
	Alert       tlsbridge.Alert
	ServerHello *tlsbridge.ServerHello
	// Chain is the server's certificate chain (TLS 1.0-1.2 only, where the
	// Certificate message is plaintext: RFC 5246 §7.4.2).
	Chain [][]byte
	SKE   *tlsbridge.ServerKeyExchange
	// Done: the server's whole first flight arrived (ServerHelloDone in
	// TLS 1.0-1.2, the ServerHello itself in TLS 1.3); a ServerHello
	// followed by an alert (e.g. no usable signature scheme) is not done.
	Done bool
	// Later is an alert that came after the ServerHello.
	Later *tlsbridge.Alert
	Err   error
}

// accepted reports a ServerHello (not a HelloRetryRequest counted apart:
// both mean the server is willing).
func (a answer) accepted() bool { return a.Kind == answerServerHello }

// String describes the answer in a few words for reports and verdicts.
func (a answer) String() string {
	switch a.Kind {
	case answerServerHello:
		s := "ServerHello " + tlsbridge.VersionName(a.ServerHello.Version()) + " " + tlsbridge.CipherSuiteName(a.ServerHello.CipherSuite)
		if a.ServerHello.IsHelloRetryRequest() {
			s = "HelloRetryRequest " + tlsbridge.CipherSuiteName(a.ServerHello.CipherSuite)
		}
		if a.Later != nil {
			s += ", then alert " + a.Later.String()
		}
		return s
	case answerAlert:
		return "alert " + a.Alert.String()
	case answerClosed:
		return "closed without an alert (FIN)"
	case answerReset:
		return "reset without an alert (RST, the client's 10054)"
	case answerTimeout:
		return "no answer within the timeout"
	case answerNoTLS:
		return "PRELOGIN refused encryption"
	case answerNotTLS:
		return "an answer that is not TLS"
	}
	if a.Err != nil {
		return "error: " + a.Err.Error()
	}
	return "no answer"
}

// silent reports a close without an alert, Schannel's way of refusing.
func (a answer) silent() bool { return a.Kind == answerClosed || a.Kind == answerReset }

// conn dials the target under the concurrency limit and runs f; the
// connection is always closed before conn returns, so a probe never
// leaves one open on the target.
func (p *prober) conn(ctx context.Context, f func(c net.Conn) error) error {
	return p.connTimed(ctx, func(c net.Conn, _ time.Duration) error { return f(c) })
}

// connTimed is conn that also passes f how long the TCP connect took
// (without the wait for a slot under the concurrency limit).
func (p *prober) connTimed(ctx context.Context, f func(c net.Conn, connect time.Duration) error) error {
	return p.connFor(ctx, p.timeout, f)
}

// connFor is connTimed with its own bound on the connection.
func (p *prober) connFor(ctx context.Context, timeout time.Duration, f func(c net.Conn, connect time.Duration) error) error {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.sem }()
	dctx, cancel := context.WithTimeout(ctx, p.timeout) // the connect alone
	defer cancel()
	start := time.Now()
	c, err := p.dial(dctx, "tcp", p.cfg.Target)
	if err != nil {
		return &dialError{err}
	}
	connect := time.Since(start)
	defer c.Close()
	// A cancelled probe must not wait for a full timeout on a read.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	return f(c, connect)
}

// dialError marks a failure to connect at all.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// preloginRequest builds a client PRELOGIN (MS-TDS §2.2.6.5): VERSION
// first (SQL Server closes otherwise), ENCRYPTION, INSTOPT, THREADID, MARS
// off, and FEDAUTHREQUIRED so the server says whether it wants it.
func (p *prober) preloginRequest(enc tds.Encryption) []byte {
	pl := &tds.Prelogin{}
	pl.Set(tds.PreloginVersion, []byte{0, 0, 0, 0, 0, 0})
	pl.Set(tds.PreloginEncryption, []byte{byte(enc)})
	pl.Set(tds.PreloginInstance, append([]byte(p.cfg.Instance), 0))
	// THREADID is informational (the client's thread, little-endian); its
	// bytes are CR LF CR LF so that a line-oriented text server (HTTP)
	// sees the end of a line and answers at once instead of waiting for
	// one, and the probe can say what it is.
	pl.Set(tds.PreloginThreadID, []byte("\r\n\r\n"))
	pl.Set(tds.PreloginMARS, []byte{0})
	pl.Set(tds.PreloginFedAuthRequired, []byte{1})
	return pl.Marshal()
}

// notTDSError says the peer answered, but not with TDS.
type notTDSError struct{ what string }

func (e *notTDSError) Error() string { return "not TDS: " + e.what }

// exchangePrelogin sends a PRELOGIN and reads the reply on rw.
func (p *prober) exchangePrelogin(rw io.ReadWriter, enc tds.Encryption) (*tds.Prelogin, error) {
	w := tds.Writer{W: rw}
	if err := w.WriteMessage(tds.PacketPrelogin, p.preloginRequest(enc)); err != nil {
		return nil, fmt.Errorf("sending PRELOGIN: %w", err)
	}
	var hdr [tds.HeaderLen]byte
	n, err := io.ReadFull(rw, hdr[:])
	if err != nil {
		if n > 0 {
			return nil, &notTDSError{describeBytes(hdr[:n], rw)}
		}
		return nil, fmt.Errorf("reading the PRELOGIN reply: %w", err)
	}
	h, herr := tds.ParseHeader(hdr[:])
	if herr != nil || (h.Type != tds.PacketReply && h.Type != tds.PacketPrelogin) {
		return nil, &notTDSError{describeBytes(hdr[:], rw)}
	}
	payload := make([]byte, h.PayloadLen())
	if _, err := io.ReadFull(rw, payload); err != nil {
		return nil, fmt.Errorf("reading the PRELOGIN reply: %w", err)
	}
	// A PRELOGIN reply is one packet in practice; read on to EOM anyway.
	if !h.Status.EOM() {
		tr := tds.NewReader(rw)
		tr.MaxMessage = 64 << 10
		m, err := tr.ReadMessage()
		if err != nil {
			return nil, fmt.Errorf("reading the PRELOGIN reply: %w", err)
		}
		payload = append(payload, m.Payload...)
	}
	pl, err := tds.ParsePrelogin(payload)
	if err != nil {
		return nil, &notTDSError{"the reply is a TDS packet but not a PRELOGIN response: " + err.Error()}
	}
	if _, ok := pl.Version(); !ok {
		return nil, &notTDSError{"the PRELOGIN response has no VERSION"}
	}
	return pl, nil
}

// describeBytes says what a non-TDS answer looks like: the first line of a
// text protocol (an HTTP server says "HTTP/1.1 400 Bad Request"), a TLS
// record, or the first bytes in hex.
func describeBytes(b []byte, r io.Reader) string {
	if len(b) > 0 && (b[0] == 0x15 || b[0] == 0x16) {
		return fmt.Sprintf("the server answered with a TLS record (0x%02X): a TLS-only service, not TDS", b[0])
	}
	if printable(b) {
		// Read the rest of the first line, briefly and boundedly.
		if c, ok := r.(net.Conn); ok {
			_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		}
		more := make([]byte, 120)
		n, _ := io.ReadAtLeast(r, more, 1)
		line := append(bytes.Clone(b), more[:n]...)
		if i := bytes.IndexAny(line, "\r\n"); i >= 0 {
			line = line[:i]
		}
		kind := "a text protocol"
		// An HTTP/1.x server answers with a status line; one that takes
		// the bytes for an HTTP/0.9 request sends a bare HTML error page.
		lower := bytes.ToLower(line)
		if bytes.HasPrefix(line, []byte("HTTP/")) || bytes.HasPrefix(lower, []byte("<!doctype html")) || bytes.HasPrefix(lower, []byte("<html")) {
			kind = "an HTTP server"
		}
		return fmt.Sprintf("the server answered %q (%s)", string(line), kind)
	}
	return fmt.Sprintf("the answer starts with % X, which is not a TDS packet header", b)
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\r' && c != '\n' && c != '\t' || c > 0x7E {
			return false
		}
	}
	return len(b) > 0
}

// hello sends one crafted ClientHello in the given mode and reads what
// comes back: up to ServerHelloDone (TLS 1.0-1.2: with the certificate and
// the key exchange parameters), the ServerHello (TLS 1.3), an alert, or
// the close.
func (p *prober) hello(ctx context.Context, m mode, spec helloSpec) answer {
	spec.ServerName = p.host
	if m == modeStrict {
		spec.ALPN = "tds/8.0"
	}
	rec, err := marshalHello(spec)
	if err != nil {
		return answer{Kind: answerError, Err: err}
	}
	var a answer
	err = p.conn(ctx, func(c net.Conn) error {
		var rw io.ReadWriter = c
		if m == modeTDS7 {
			pl, err := p.exchangePrelogin(c, tds.EncryptOn)
			if err != nil {
				return err
			}
			if enc, _ := pl.Encryption(); enc.Base() == tds.EncryptNotSup {
				a = answer{Kind: answerNoTLS}
				return nil
			}
			fc := tlsbridge.NewFramedConn(c, tlsbridge.RoleClient, tds.DefaultPacketSize)
			if _, err := fc.Write(rec); err != nil {
				return err
			}
			if err := fc.Flush(); err != nil {
				return err
			}
			rw = fc
		} else if _, err := c.Write(rec); err != nil {
			return err
		}
		a = readAnswer(rw)
		return nil
	})
	if err != nil {
		return answer{Kind: classify(err), Err: err}
	}
	return a
}

// readAnswer follows the server's records until the answer is known.
func readAnswer(r io.Reader) answer {
	st := tlsbridge.NewStream(tlsbridge.ServerToClient)
	var a answer
	buf := make([]byte, 16<<10)
	for {
		n, rerr := r.Read(buf)
		evs, ferr := st.Feed(buf[:n])
		for _, ev := range evs {
			switch ev.Kind {
			case tlsbridge.EventAlert:
				if a.ServerHello == nil {
					return answer{Kind: answerAlert, Alert: *ev.Alert}
				}
				a.Later = ev.Alert
				return a
			case tlsbridge.EventHandshake:
				hm := ev.Handshake
				switch hm.Type {
				case tlsbridge.HandshakeServerHello:
					sh, err := tlsbridge.ParseServerHello(hm.Raw)
					if err != nil {
						return answer{Kind: answerError, Err: err}
					}
					a = answer{Kind: answerServerHello, ServerHello: sh}
					if sh.Version() >= tlsbridge.VersionTLS13 || sh.IsHelloRetryRequest() {
						a.Done = !sh.IsHelloRetryRequest()
						return a // the rest is encrypted (RFC 8446 §2)
					}
				case tlsbridge.HandshakeCertificate:
					if cm, err := tlsbridge.ParseCertificateMsg(hm.Raw, false); err == nil {
						a.Chain = cm.Chain
					}
				case tlsbridge.HandshakeServerKeyExchange:
					if a.ServerHello != nil {
						if ske, err := tlsbridge.ParseServerKeyExchange(hm.Raw, a.ServerHello.CipherSuite, a.ServerHello.Version()); err == nil {
							a.SKE = ske
						}
					}
				case tlsbridge.HandshakeServerHelloDone:
					a.Done = a.ServerHello != nil
					return a
				}
			case tlsbridge.EventChangeCipherSpec, tlsbridge.EventEncrypted:
				if a.ServerHello != nil {
					return a
				}
			}
		}
		if ferr != nil {
			if a.ServerHello != nil {
				return a
			}
			return answer{Kind: answerNotTLS, Err: fmt.Errorf("not TLS: %w", ferr)}
		}
		if rerr != nil {
			if a.ServerHello != nil {
				return a
			}
			return answer{Kind: classify(rerr), Err: rerr}
		}
	}
}

// classify maps a read or dial error to an answer kind.
func classify(err error) answerKind {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return answerClosed
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return answerReset
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return answerTimeout
	}
	return answerError
}

// handshake13 completes one handshake with crypto/tls to read what TLS 1.3
// encrypts: the certificate chain (RFC 8446 §4.4.2). Nothing is verified
// here; the chain is examined by the caller.
func (p *prober) handshake13(ctx context.Context, m mode, version uint16) ([][]byte, error) {
	cfg := &tls.Config{
		InsecureSkipVerify: true, // the probe examines the chain itself
		MinVersion:         version,
		MaxVersion:         version,
	}
	if net.ParseIP(p.host) == nil {
		cfg.ServerName = p.host
	}
	var chain [][]byte
	err := p.conn(ctx, func(c net.Conn) error {
		var tc *tls.Conn
		if m == modeStrict {
			cfg.NextProtos = []string{"tds/8.0"}
			tc = tls.Client(c, cfg)
		} else {
			if _, err := p.exchangePrelogin(c, tds.EncryptOn); err != nil {
				return err
			}
			tc = tls.Client(tlsbridge.NewFramedConn(c, tlsbridge.RoleClient, tds.DefaultPacketSize), cfg)
		}
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		for _, crt := range tc.ConnectionState().PeerCertificates {
			chain = append(chain, crt.Raw)
		}
		return nil
	})
	return chain, err
}

// strictPrelogin runs the PRELOGIN exchange inside a TDS 8.0 TLS session,
// for a server that refuses plaintext PRELOGIN.
func (p *prober) strictPrelogin(ctx context.Context) (*tds.Prelogin, error) {
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, NextProtos: []string{"tds/8.0"}}
	if net.ParseIP(p.host) == nil {
		cfg.ServerName = p.host
	}
	var pl *tds.Prelogin
	err := p.conn(ctx, func(c net.Conn) error {
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		var err error
		pl, err = p.exchangePrelogin(tc, tds.EncryptStrict)
		return err
	})
	return pl, err
}

// reason turns a connection-level error into the one line exit 1 prints.
func reason(target string, timeout time.Duration, err error) string {
	var de *dialError
	var nt *notTDSError
	switch {
	case errors.As(err, &nt):
		return target + ": " + nt.Error()
	case errors.As(err, &de):
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return target + ": connection refused (nothing listens on that port)"
		case classify(err) == answerTimeout:
			return target + ": no answer to the TCP connect within " + timeout.String()
		}
		return target + ": cannot connect: " + de.Error()
	}
	switch classify(err) {
	case answerTimeout:
		return target + ": connected, but no answer to PRELOGIN within " + timeout.String() + " (not TDS, or a server that accepts and never answers)"
	case answerClosed:
		return target + ": connected, but the server closed the connection without answering PRELOGIN (not TDS?)"
	case answerReset:
		return target + ": connected, but the server reset the connection without answering PRELOGIN (not TDS?)"
	}
	return target + ": " + strings.TrimSpace(err.Error())
}

// ms rounds a duration to milliseconds with two decimals, for the JSON.
func ms(d time.Duration) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64), 64)
	return f
}
