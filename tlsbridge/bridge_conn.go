package tlsbridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	utls "github.com/refraction-networking/utls"

	"github.com/tdsproxy/tdsproxy/tds"
)

// BridgeConfig configures bridge mode: tdsproxy ends the client's TLS and
// opens its own to the upstream, so the TDS session in between is
// plaintext to it (docs/bridge.md).
type BridgeConfig struct {
	// Certs gives the certificate the client sees; required.
	Certs *CertSource
	// UpstreamHost is the upstream's host name or IP address: the name
	// its certificate is verified against and the mirrored server_name.
	UpstreamHost string
	// UpstreamRoots verifies the upstream certificate; nil means the
	// system roots.
	UpstreamRoots *x509.CertPool
	// UpstreamInsecure skips verifying the upstream (every report says so).
	UpstreamInsecure bool
	// Hello is the upstream ClientHello; "" means HelloMirror.
	Hello HelloMode
	// KeyLog receives the secrets of both legs in NSS key log format.
	KeyLog io.Writer
	// Policy configures the client-facing TLS server (scenarios); nil
	// allows TLS 1.0-1.3, Go's suites and a SHA-256 certificate.
	Policy *ServerPolicy
	// HandshakeTimeout bounds everything up to the end of the TLS
	// handshakes (and LOGIN7 in login-only mode); 0 means no bound.
	HandshakeTimeout time.Duration
	// MaxMessage caps a PRELOGIN or login-only LOGIN7 message; 0 means
	// tds.DefaultMaxMessage.
	MaxMessage int
	// Queries says what the report keeps of query text.
	Queries tds.QueryMode
}

// TLSLeg is what one leg negotiated.
type TLSLeg struct {
	Version     uint16
	CipherSuite uint16
	ALPN        string
	Cert        *CertSummary // the certificate the server of that leg showed
}

// BridgeReport is what Serve learned about one bridged connection.
type BridgeReport struct {
	Protocol       string // "tds7", "tds8-strict", "not-tds"
	Scope          string // none, login-only, session, terminated ("" for strict)
	ClientPrelogin *tds.Prelogin
	ServerPrelogin *tds.Prelogin

	ClientHello   *ClientHello // as the client sent it
	UpstreamHello *ClientHello // as the bridge sent it upstream
	Dropped       []string     // what the mirror left out
	Client        *TLSLeg
	Upstream      *TLSLeg
	HelloMode     HelloMode
	Insecure      bool // the upstream certificate was not verified

	// Failure says what ended the connection early, and DecidedBy which
	// stack decided it: "client-leg TLS (crypto/tls)", "upstream server",
	// "bridge (Schannel's certificate rule)", "client", "bridge".
	Failure   string
	DecidedBy string
	// DHE is the client leg's DHE handshake (ServerPolicy.DHE), as far as
	// it got; DHEFailed: it failed at the client's Finished.
	DHE       *DHEState
	DHEFailed bool
	Alert     *Alert // the alert the client was sent, if any
	Reset     bool   // the client was closed with a TCP reset

	// CloseBy is who closed first after negotiation: "client", "server"
	// or "bridge"; CloseKind "fin", "rst" or "error".
	CloseBy, CloseKind string

	Session tds.SessionSummary
}

// Bridge serves bridged connections. It is safe for concurrent use.
type Bridge struct {
	cfg BridgeConfig
}

// NewBridge checks cfg and returns a Bridge.
func NewBridge(cfg BridgeConfig) (*Bridge, error) {
	if cfg.Certs == nil {
		return nil, errors.New("bridge: no certificate source")
	}
	if cfg.Hello == "" {
		cfg.Hello = HelloMirror
	}
	if _, err := ParseHelloMode(string(cfg.Hello)); err != nil {
		return nil, err
	}
	return &Bridge{cfg: cfg}, nil
}

// ErrNotTDS means the client's first byte is neither a PRELOGIN packet nor
// a TLS handshake record.
var ErrNotTDS = errors.New("bridge: the client does not speak TDS")

// Serve bridges client and upstream (both already connected) until the
// session ends, and closes both. The report is always returned, filled as
// far as the connection got; err says why the connection ended early.
func (b *Bridge) Serve(ctx context.Context, client, upstream net.Conn) (*BridgeReport, error) {
	return b.ServeWith(ctx, client, upstream, ServeOptions{})
}

// ServeOptions are per-connection settings of ServeWith.
type ServeOptions struct {
	// Established, when set, is called once when the handshakes (and a
	// login-only LOGIN7) are over and the relay starts.
	Established func()
	// Policy, when set, replaces BridgeConfig.Policy for this connection
	// (a fault rule's scenario).
	Policy *ServerPolicy
}

// ServeWith is Serve with per-connection options.
func (b *Bridge) ServeWith(ctx context.Context, client, upstream net.Conn, o ServeOptions) (*BridgeReport, error) {
	rep := &BridgeReport{HelloMode: b.cfg.Hello, Insecure: b.cfg.UpstreamInsecure}
	pol := b.cfg.Policy
	if o.Policy != nil {
		pol = o.Policy
	}
	s := &bridgeSession{b: b, rep: rep, client: client, upstream: upstream, established: o.Established, policy: pol,
		dec: &tds.SessionDecoder{Queries: b.cfg.Queries}}
	stop := context.AfterFunc(ctx, func() { client.Close(); upstream.Close() })
	defer stop()
	defer func() {
		client.Close()
		upstream.Close()
		rep.Session = s.summary()
	}()
	if d := b.cfg.HandshakeTimeout; d > 0 {
		dl := time.Now().Add(d)
		client.SetDeadline(dl)
		upstream.SetDeadline(dl)
	}
	err := s.run(ctx)
	if err != nil && rep.Failure == "" {
		rep.Failure = err.Error()
	}
	return rep, err
}

type bridgeSession struct {
	b                *Bridge
	rep              *BridgeReport
	client, upstream net.Conn
	established      func()
	policy           *ServerPolicy

	decMu sync.Mutex
	dec   *tds.SessionDecoder
}

func (s *bridgeSession) summary() tds.SessionSummary {
	s.decMu.Lock()
	defer s.decMu.Unlock()
	return s.dec.Summary()
}

func (s *bridgeSession) feed(fromClient bool, b []byte) {
	s.decMu.Lock()
	s.dec.Feed(fromClient, b)
	s.decMu.Unlock()
}

func (s *bridgeSession) maxMessage() int {
	if s.b.cfg.MaxMessage > 0 {
		return s.b.cfg.MaxMessage
	}
	return tds.DefaultMaxMessage
}

func (s *bridgeSession) run(ctx context.Context) error {
	var first [1]byte
	if _, err := io.ReadFull(s.client, first[:]); err != nil {
		s.rep.DecidedBy = "client"
		return fmt.Errorf("bridge: reading the client's first byte: %w", err)
	}
	client := &prefixConn{Conn: s.client, pre: first[:]}
	switch {
	case first[0] == byte(ContentHandshake):
		s.rep.Protocol = "tds8-strict"
		return s.strict(ctx, client)
	case first[0] == byte(tds.PacketPrelogin):
		s.rep.Protocol = "tds7"
		return s.tds7(ctx, client)
	}
	s.rep.Protocol = "not-tds"
	s.rep.DecidedBy = "bridge"
	resetConn(s.client)
	s.rep.Reset = true
	return fmt.Errorf("%w: first byte 0x%02X", ErrNotTDS, first[0])
}

// strict: TDS 8.0 (MS-TDS §3.3.5.1), TLS from the first byte with ALPN
// tds/8.0 on both legs, PRELOGIN and everything after it inside.
func (s *bridgeSession) strict(ctx context.Context, client net.Conn) error {
	ctls, utc, err := s.handshake(ctx, client, s.upstream, true)
	if err != nil {
		return err
	}
	s.clearDeadlines()
	return s.relay(ctls, ctls, utc, utc, closeWriter(ctls), utc)
}

// clientLeg is the client leg's TLS conn: crypto/tls, or a DHELeg's.
type clientLeg interface {
	io.Reader
	io.Writer
}

// closeWriter is c's CloseWrite (close_notify), or nil when it has none.
func closeWriter(c clientLeg) interface{ CloseWrite() error } {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw
	}
	return nil
}

// tds7: PRELOGIN in plaintext, then TLS inside PRELOGIN packets as the two
// ENCRYPTION values decide (MS-TDS §2.2.6.5).
func (s *bridgeSession) tds7(ctx context.Context, client net.Conn) error {
	cmsg, craw, err := readMessageRaw(client, s.maxMessage())
	if err != nil {
		s.rep.DecidedBy = "client"
		return fmt.Errorf("bridge: client PRELOGIN: %w", err)
	}
	if _, err := s.upstream.Write(craw); err != nil {
		s.rep.DecidedBy = "upstream server"
		return fmt.Errorf("bridge: forwarding PRELOGIN: %w", err)
	}
	if cmsg.Type != tds.PacketPrelogin {
		s.rep.Scope = "none"
		s.feed(true, craw)
		s.clearDeadlines()
		return s.relay(client, client, s.upstream, s.upstream, nil, nil)
	}
	cpl, cerr := tds.ParsePrelogin(cmsg.Payload)
	s.rep.ClientPrelogin = cpl
	smsg, sraw, err := readMessageRaw(s.upstream, s.maxMessage())
	if err != nil {
		s.rep.DecidedBy = "upstream server"
		if len(sraw) > 0 {
			s.client.Write(sraw)
		}
		return fmt.Errorf("bridge: upstream PRELOGIN answer: %w", err)
	}
	if _, err := client.Write(sraw); err != nil {
		s.rep.DecidedBy = "client"
		return fmt.Errorf("bridge: forwarding the PRELOGIN answer: %w", err)
	}
	spl, serr := tds.ParsePrelogin(smsg.Payload)
	s.rep.ServerPrelogin = spl
	if cerr != nil || serr != nil {
		// Both legs agree on whatever the bytes say; not knowing what that
		// is, the bridge can only pass the rest through undecoded.
		s.rep.Scope = "unknown"
		s.clearDeadlines()
		return s.relay(client, client, s.upstream, s.upstream, nil, nil)
	}
	ce, _ := cpl.Encryption()
	se, _ := spl.Encryption()
	scope := tds.ScopeOf(ce, se)
	s.rep.Scope = scope.String()
	switch scope {
	case tds.ScopeNone, tds.ScopeTerminated:
		s.clearDeadlines()
		return s.relay(client, client, s.upstream, s.upstream, nil, nil)
	}
	cfc := NewFramedConn(client, RoleServer, 0)
	ufc := NewFramedConn(s.upstream, RoleClient, 0)
	ctls, utc, err := s.handshake(ctx, cfc, ufc, false)
	if err != nil {
		return err
	}
	if err := cfc.SwitchToRaw(); err != nil {
		return fmt.Errorf("bridge: client leg: %w", err)
	}
	if err := ufc.SwitchToRaw(); err != nil {
		return fmt.Errorf("bridge: upstream leg: %w", err)
	}
	if scope == tds.ScopeSession {
		s.clearDeadlines()
		return s.relay(ctls, ctls, utc, utc, closeWriter(ctls), utc)
	}
	// Login-only: the first LOGIN7 packet inside TLS on both legs, all
	// else in plaintext (MS-TDS §2.2.6.5, "LOGIN7 only").
	login, err := ReadLoginOnly(ctls, cfc, s.maxMessage())
	if err != nil {
		s.rep.DecidedBy = "client"
		return fmt.Errorf("bridge: client LOGIN7: %w", err)
	}
	s.decMu.Lock()
	s.dec.Message(true, login.Type, login.Payload)
	s.decMu.Unlock()
	w := tds.Writer{PacketSize: tds.DefaultPacketSize}
	msg := w.AppendMessage(nil, login.Type, 0, login.Payload)
	clear(login.Payload) // the password, obfuscated, lived here
	if err := WriteLoginOnly(utc, ufc, msg); err != nil {
		clear(msg)
		s.rep.DecidedBy = "upstream server"
		return fmt.Errorf("bridge: upstream LOGIN7: %w", err)
	}
	clear(msg)
	s.clearDeadlines()
	return s.relay(cfc, cfc, ufc, ufc, nil, nil)
}

func (s *bridgeSession) clearDeadlines() {
	s.client.SetDeadline(time.Time{})
	s.upstream.SetDeadline(time.Time{})
	if s.established != nil {
		s.established()
	}
}

// handshake runs the client leg's TLS server; once the client's
// ClientHello is in, it runs the upstream leg (utls, mirroring that hello)
// from inside GetConfigForClient, so the upstream's answer shapes the
// client leg (its certificate, its version) and an upstream refusal
// reaches the client as the upstream gave it.
func (s *bridgeSession) handshake(ctx context.Context, clientT, upT net.Conn, strict bool) (clientLeg, *utls.UConn, error) {
	cfg := s.b.cfg
	pol := s.policy
	ccap := &captureConn{Conn: clientT, capture: true}
	ucap := &captureConn{Conn: upT, capture: true}
	if pol != nil && pol.DHE != nil {
		// Peek the ClientHello: a client that offers DHE meets the DHE
		// server, any other crypto/tls, which reads the hello again.
		raw, msg, recVer, err := readHelloRecords(clientT)
		ccap.replay = raw
		if err != nil {
			s.rep.DecidedBy = "client"
			s.rep.Failure = "client TLS handshake: " + err.Error()
			return nil, nil, s.rep.failure()
		}
		if ch, err := ParseClientHello(msg); err == nil && pol.DHE.offers(ch) {
			s.rep.ClientHello = ch
			return s.dheHandshake(ctx, ccap, ucap, msg, recVer, strict)
		}
	}
	lo, hi := pol.versionRange()
	base := &tls.Config{MinVersion: lo, MaxVersion: hi, KeyLogWriter: cfg.KeyLog}
	if pol != nil {
		base.CipherSuites = pol.CipherSuites
	}
	if strict {
		base.NextProtos = []string{"tds/8.0"}
	}
	if pol != nil && !pol.Alert {
		ccap.setDropAlerts(true) // "rst": Schannel closes without an alert
	}
	var utc *utls.UConn
	var upErr error
	var clientRefusal string
	var shown *tls.Certificate
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		raw, recVer, ok := FirstHandshake(ccap.captured())
		ccap.stopCapture()
		if !ok {
			return nil, errors.New("bridge: ClientHello not captured")
		}
		ch, err := ParseClientHello(raw)
		if err != nil {
			return nil, fmt.Errorf("bridge: ClientHello: %w", err)
		}
		s.rep.ClientHello = ch
		if why := CertHashRefusal(ch, hashOf(pol)); why != "" {
			clientRefusal = why
			if pol.Alert {
				// Schannel's rule, Schannel's alert: handshake_failure
				// (RFC 5246 §7.2.2), not crypto/tls's internal_error.
				s.sendAlert(ccap, AlertHandshakeFailure)
			}
			return nil, errors.New("bridge: " + why)
		}
		if PolicyRefusal(pol, ch) != "" {
			// crypto/tls refuses it for real; it still needs a
			// certificate to get that far.
			cert, err := cfg.Certs.Certificate(cfg.UpstreamHost, nil, hashOf(pol))
			if err != nil {
				return nil, err
			}
			c := base.Clone()
			c.GetConfigForClient = nil
			c.Certificates = []tls.Certificate{*cert}
			return c, nil
		}
		utc, upErr = s.upstreamHandshake(ctx, ucap, raw, recVer, strict)
		if errors.Is(upErr, ErrNothingToMirror) {
			// The upstream never heard of it: the bridge refuses, as a
			// server with no common suite does (RFC 5246 §7.4.1.3).
			clientRefusal, upErr = upErr.Error(), nil
			s.sendAlert(ccap, AlertHandshakeFailure)
			return nil, errors.New(clientRefusal)
		}
		if upErr != nil {
			s.relayUpstreamRefusal(ccap, ucap, strict)
			return nil, upErr
		}
		st := utc.ConnectionState()
		s.rep.Upstream = &TLSLeg{Version: st.Version, CipherSuite: st.CipherSuite, ALPN: st.NegotiatedProtocol}
		var upLeaf *x509.Certificate
		if len(st.PeerCertificates) > 0 {
			upLeaf = st.PeerCertificates[0]
			if sum, err := SummarizeCertificate(upLeaf.Raw); err == nil {
				s.rep.Upstream.Cert = &sum
			}
		}
		cert, err := cfg.Certs.Certificate(cfg.UpstreamHost, upLeaf, hashOf(pol))
		if err != nil {
			return nil, err
		}
		c := base.Clone()
		c.GetConfigForClient = nil
		c.Certificates = []tls.Certificate{*cert}
		shown = cert
		if pol == nil || len(pol.Versions) == 0 {
			// Both legs on the upstream's version: TLS 1.3 inside PRELOGIN
			// is beyond SQL Server and some clients (docs/protocol.md).
			c.MaxVersion = st.Version
			c.MinVersion = min(c.MinVersion, st.Version)
		}
		return c, nil
	}
	ctls := tls.Server(ccap, base)
	err := ctls.HandshakeContext(ctx)
	if err != nil {
		if utc != nil {
			utc.Close()
		}
		switch {
		case upErr != nil:
			s.rep.DecidedBy = "upstream server"
			s.rep.Failure = "upstream TLS handshake: " + upErr.Error()
			if s.rep.Alert != nil {
				closeWrite(s.client) // after the upstream's own alert
			} else {
				resetConn(s.client) // the upstream gave no reason the client could read
				s.rep.Reset = true
			}
			return nil, nil, s.rep.failure()
		case errors.Is(err, ErrNothingToMirror) || strings.Contains(clientRefusal, ErrNothingToMirror.Error()):
			s.rep.DecidedBy = "bridge (mirror)"
			s.rep.Failure = clientRefusal
			closeWrite(s.client) // after the handshake_failure alert
			return nil, nil, s.rep.failure()
		case clientRefusal != "":
			s.rep.DecidedBy = "bridge (Schannel's certificate rule)"
			s.rep.Failure = clientRefusal
		case s.rep.ClientHello == nil:
			s.rep.DecidedBy = "client"
			s.rep.Failure = "client TLS handshake: " + err.Error()
		default:
			s.rep.DecidedBy = "client-leg TLS (crypto/tls)"
			s.rep.Failure = "client TLS handshake: " + err.Error()
		}
		s.closeClientAfterFailure(ccap, pol)
		return nil, nil, s.rep.failure()
	}
	ccap.setDropAlerts(false)
	st := ctls.ConnectionState()
	s.rep.Client = &TLSLeg{Version: st.Version, CipherSuite: st.CipherSuite, ALPN: st.NegotiatedProtocol}
	if shown != nil && len(shown.Certificate) > 0 {
		if sum, err := SummarizeCertificate(shown.Certificate[0]); err == nil {
			s.rep.Client.Cert = &sum
		}
	}
	return ctls, utc, nil
}

// dheHandshake runs the client leg with the policy's DHE server (the
// failing Windows server of the DHE scenarios): the upstream leg first, for
// the certificate to show, then the DHE server, which decides; when it
// fails (a leading-zero mismatch) it closes the client as its
// configuration says, and the upstream leg is closed.
func (s *bridgeSession) dheHandshake(ctx context.Context, ccap, ucap *captureConn, hello []byte, recVer uint16, strict bool) (clientLeg, *utls.UConn, error) {
	cfg, pol := s.b.cfg, s.policy
	utc, err := s.upstreamHandshake(ctx, ucap, hello, recVer, strict)
	if err != nil {
		s.rep.DecidedBy = "upstream server"
		s.rep.Failure = "upstream TLS handshake: " + err.Error()
		if errors.Is(err, ErrNothingToMirror) {
			s.rep.DecidedBy = "bridge (mirror)"
			s.rep.Failure = err.Error()
		}
		resetConn(s.client)
		s.rep.Reset = true
		return nil, nil, s.rep.failure()
	}
	st := utc.ConnectionState()
	s.rep.Upstream = &TLSLeg{Version: st.Version, CipherSuite: st.CipherSuite, ALPN: st.NegotiatedProtocol}
	var upLeaf *x509.Certificate
	if len(st.PeerCertificates) > 0 {
		upLeaf = st.PeerCertificates[0]
		if sum, err := SummarizeCertificate(upLeaf.Raw); err == nil {
			s.rep.Upstream.Cert = &sum
		}
	}
	cert, err := cfg.Certs.Certificate(cfg.UpstreamHost, upLeaf, hashOf(pol))
	if err != nil {
		utc.Close()
		return nil, nil, err
	}
	ccap.stopCapture()
	dc := pol.DHE.Server(ccap, *cert, strict, cfg.KeyLog)
	err = dc.Handshake()
	dst := dc.State()
	s.rep.DHE = &dst
	if err != nil {
		utc.Close()
		s.rep.DecidedBy = "client-leg TLS (" + pol.DHE.Desc + ")"
		s.rep.Failure = "client TLS handshake: " + err.Error()
		s.rep.DHEFailed = dst.FinishedFailed
		if fc, ok := ccap.Conn.(*FramedConn); ok {
			fc.Flush() // a pending alert, if any
		}
		if a, ok := ccap.lastAlert(); ok {
			s.rep.Alert = &a
		}
		// The DHE server closed the client as configured (alert, FIN or
		// RST); closing again changes nothing.
		s.rep.Reset = pol.DHE.Fail == "rst"
		s.client.Close()
		return nil, nil, s.rep.failure()
	}
	s.rep.Client = &TLSLeg{Version: dst.Version, CipherSuite: dst.CipherSuite, ALPN: dst.ALPN}
	if len(cert.Certificate) > 0 {
		if sum, err := SummarizeCertificate(cert.Certificate[0]); err == nil {
			s.rep.Client.Cert = &sum
		}
	}
	return dc, utc, nil
}

// readHelloRecords reads TLS handshake records from r until they hold a
// whole first handshake message (it may span records, RFC 5246 §6.2.1);
// raw is every byte read, for the reader that answers.
func readHelloRecords(r io.Reader) (raw, msg []byte, recVer uint16, err error) {
	for len(raw) < maxCapture {
		var hdr [RecordHeaderLen]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return raw, nil, 0, err
		}
		raw = append(raw, hdr[:]...)
		h, err := ParseRecordHeader(hdr[:])
		if err != nil || h.Type != ContentHandshake {
			return raw, nil, 0, fmt.Errorf("not a TLS handshake record (0x%02X)", hdr[0])
		}
		body := make([]byte, h.Length)
		if _, err := io.ReadFull(r, body); err != nil {
			return raw, nil, 0, err
		}
		raw = append(raw, body...)
		if m, v, ok := FirstHandshake(raw); ok {
			return raw, m, v, nil
		}
	}
	return raw, nil, 0, fmt.Errorf("no ClientHello in the first %d bytes", maxCapture)
}

func hashOf(p *ServerPolicy) string {
	if p == nil {
		return ""
	}
	return p.CertHash
}

func (r *BridgeReport) failure() error { return errors.New("bridge: " + r.Failure) }

// closeClientAfterFailure ends the client's connection the way the policy
// says: a TCP reset and no alert (the default, as Schannel), or the alert
// crypto/tls has queued.
func (s *bridgeSession) closeClientAfterFailure(c *captureConn, pol *ServerPolicy) {
	if pol == nil || pol.Alert {
		if fc, ok := c.Conn.(*FramedConn); ok {
			fc.Flush()
		}
		if a, ok := c.lastAlert(); ok && s.rep.Alert == nil {
			s.rep.Alert = &a
		}
		closeWrite(s.client)
		return
	}
	resetConn(s.client)
	s.rep.Reset = true
}

// upstreamHandshake opens the upstream leg with the client's hello
// (mirror) or Go's (go).
func (s *bridgeSession) upstreamHandshake(ctx context.Context, up *captureConn, hello []byte, recVer uint16, strict bool) (*utls.UConn, error) {
	cfg := s.b.cfg
	host := cfg.UpstreamHost
	isIP := net.ParseIP(host) != nil
	// The bridge verifies the upstream itself, against host: a mirrored
	// server_name may carry the name the client gave the proxy, and utls
	// would verify against that.
	ucfg := &utls.Config{
		ServerName:            host,
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: verifyUpstream(host, cfg.UpstreamRoots, cfg.UpstreamInsecure),
		KeyLogWriter:          cfg.KeyLog,
		MinVersion:            utls.VersionTLS10,
		MaxVersion:            utls.VersionTLS13,
	}
	var uc *utls.UConn
	if cfg.Hello == HelloGo {
		if strict {
			ucfg.NextProtos = []string{"tds/8.0"}
		}
		if _, isFramed := up.Conn.(*FramedConn); isFramed {
			ucfg.MaxVersion = utls.VersionTLS12 // TLS 1.3 inside PRELOGIN is beyond SQL Server
		}
		uc = utls.UClient(up, ucfg, utls.HelloGolang)
	} else {
		m, err := MirrorClientHello(hello, recVer, host, isIP)
		if m != nil {
			s.rep.Dropped = m.Dropped
		}
		if err != nil {
			return nil, err
		}
		uc = utls.UClient(up, ucfg, utls.HelloCustom)
		if err := uc.ApplyPreset(m.Spec); err != nil {
			return nil, fmt.Errorf("bridge: mirror: %w", err)
		}
	}
	err := uc.HandshakeContext(ctx)
	if raw, _, ok := FirstHandshake(up.written()); ok {
		if ch, err := ParseClientHello(raw); err == nil {
			s.rep.UpstreamHello = ch
		}
	}
	up.stopCapture()
	if err != nil {
		uc.Close()
		return nil, err
	}
	return uc, nil
}

// relayUpstreamRefusal sends the client the alert the upstream refused the
// mirrored hello with, if it sent a plaintext one; crypto/tls's own alert
// is then suppressed so the client sees the upstream's reason.
func (s *bridgeSession) relayUpstreamRefusal(c, up *captureConn, strict bool) {
	a, ok := findAlert(up.captured())
	if !ok {
		return
	}
	s.sendAlertRecord(c, a)
}

// sendAlert sends the client a fatal alert of the bridge's choosing and
// keeps crypto/tls's own from following it.
func (s *bridgeSession) sendAlert(c *captureConn, desc uint8) {
	s.sendAlertRecord(c, Alert{Level: AlertLevelFatal, Description: desc})
}

func (s *bridgeSession) sendAlertRecord(c *captureConn, a Alert) {
	c.setDropAlerts(true)
	rec := AlertRecord(VersionTLS12, a.Level, a.Description)
	if fc, isFramed := c.Conn.(*FramedConn); isFramed {
		fc.Write(rec)
		fc.Flush()
	} else {
		c.Conn.Write(rec)
	}
	s.rep.Alert = &a
}

// findAlert returns the first plaintext alert in b, a peer's bytes from
// the start of its TLS stream, before any ChangeCipherSpec.
func findAlert(b []byte) (Alert, bool) {
	for len(b) >= RecordHeaderLen {
		h, err := ParseRecordHeader(b)
		if err != nil || len(b) < RecordHeaderLen+h.Length || h.Type == ContentChangeCipherSpec {
			return Alert{}, false
		}
		if h.Type == ContentAlert && h.Length == 2 {
			a, err := ParseAlert(b[RecordHeaderLen : RecordHeaderLen+2])
			return a, err == nil
		}
		b = b[RecordHeaderLen+h.Length:]
	}
	return Alert{}, false
}

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
	for {
		n, err := src.Read(buf)
		if n > 0 {
			s.feed(fromClient, buf[:n])
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			return err
		}
	}
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

// prefixConn returns pre before reading from Conn.
type prefixConn struct {
	net.Conn
	pre []byte
}

// NetConn returns the wrapped conn (the DHE engine finds the TCP conn
// through it to reset).
func (c *prefixConn) NetConn() net.Conn { return c.Conn }

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// maxCapture bounds what a captureConn keeps: a ClientHello and the
// server's first flight fit easily.
const maxCapture = 64 << 10

// captureConn keeps the first bytes read and written while capturing, and
// can swallow alert records written through it (the "rst" close style).
type captureConn struct {
	net.Conn
	mu         sync.Mutex
	replay     []byte // bytes already read from Conn, returned first
	capture    bool
	rbuf, wbuf []byte
	dropAlerts bool
	alert      []byte // the last alert record swallowed
}

// NetConn returns the wrapped conn (the DHE engine finds the TCP conn
// through it to reset).
func (c *captureConn) NetConn() net.Conn { return c.Conn }

func (c *captureConn) Read(b []byte) (int, error) {
	var n int
	var err error
	if len(c.replay) > 0 {
		n = copy(b, c.replay)
		c.replay = c.replay[n:]
	} else {
		n, err = c.Conn.Read(b)
	}
	c.mu.Lock()
	if c.capture && len(c.rbuf) < maxCapture {
		c.rbuf = append(c.rbuf, b[:min(n, maxCapture-len(c.rbuf))]...)
	}
	c.mu.Unlock()
	return n, err
}

func (c *captureConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.capture && len(c.wbuf) < maxCapture {
		c.wbuf = append(c.wbuf, b[:min(len(b), maxCapture-len(c.wbuf))]...)
	}
	drop := c.dropAlerts && len(b) > 0 && b[0] == byte(ContentAlert)
	if !drop && len(b) > 0 && b[0] == byte(ContentAlert) {
		c.alert = append(c.alert[:0], b...)
	}
	c.mu.Unlock()
	if drop {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func (c *captureConn) captured() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.rbuf...)
}

func (c *captureConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.wbuf...)
}

func (c *captureConn) stopCapture() {
	c.mu.Lock()
	c.capture = false
	c.mu.Unlock()
}

func (c *captureConn) setDropAlerts(on bool) {
	c.mu.Lock()
	c.dropAlerts = on
	c.mu.Unlock()
}

func (c *captureConn) lastAlert() (Alert, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.alert) == RecordHeaderLen+2 {
		a, err := ParseAlert(c.alert[RecordHeaderLen:])
		return a, err == nil
	}
	return Alert{}, false
}

func closeWrite(c net.Conn) {
	if cw, ok := unwrapTCP(c).(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// resetConn closes c with a TCP reset (SO_LINGER 0), the close that becomes
// error 10054 on Windows.
func resetConn(c net.Conn) {
	if tc, ok := unwrapTCP(c).(interface{ SetLinger(int) error }); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func unwrapTCP(c net.Conn) net.Conn {
	for {
		switch x := c.(type) {
		case *prefixConn:
			c = x.Conn
		case *captureConn:
			c = x.Conn
		case *FramedConn:
			c = x.Raw()
		default:
			return c
		}
	}
}

// LegString is "TLS 1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", for logs.
func (l *TLSLeg) String() string {
	if l == nil {
		return ""
	}
	return strings.TrimSpace(VersionName(l.Version) + " " + CipherSuiteName(l.CipherSuite))
}

// verifyUpstream checks the upstream's chain against roots (nil: the
// system roots) and host, a name or an IP address (RFC 5280 §4.2.1.6 via
// crypto/x509); insecure accepts anything.
func verifyUpstream(host string, roots *x509.CertPool, insecure bool) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if insecure {
			return nil
		}
		if len(raw) == 0 {
			return errors.New("bridge: the upstream sent no certificate")
		}
		certs := make([]*x509.Certificate, len(raw))
		for i, der := range raw {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return fmt.Errorf("bridge: upstream certificate %d: %w", i, err)
			}
			certs[i] = c
		}
		opts := x509.VerifyOptions{Roots: roots, DNSName: host, Intermediates: x509.NewCertPool()}
		for _, c := range certs[1:] {
			opts.Intermediates.AddCert(c)
		}
		if _, err := certs[0].Verify(opts); err != nil {
			return fmt.Errorf("bridge: upstream certificate: %w", err)
		}
		return nil
	}
}
