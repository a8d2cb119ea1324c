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
	"time"

	utls "github.com/refraction-networking/utls"
)

// handshake runs the client leg's TLS server; once the client's
// ClientHello is in, it runs the upstream leg (utls, mirroring that hello)
// from inside GetConfigForClient, so the upstream's answer shapes the
// client leg (its certificate, its version) and an upstream refusal
// reaches the client as the upstream gave it.
//
// A client that offers DHE meets a DHE server on the client leg: the
// policy's (the DHE scenarios), or, when it offers nothing the mirror
// keeps, BridgeConfig.UpstreamDHE's, with the DHE engine upstream.
func (s *bridgeSession) handshake(ctx context.Context, clientT, upT net.Conn, strict bool) (cl clientLeg, uc upstreamConn, err error) {
	pol := s.policy
	ccap := &captureConn{Conn: clientT, capture: true}
	ucap := &captureConn{Conn: upT, capture: true}
	defer func() { s.stampHandshake(ccap, err == nil) }()
	if (pol != nil && pol.DHE != nil) || s.b.cfg.UpstreamDHE != nil {
		// Peek the ClientHello: a client that offers DHE meets the DHE
		// server, any other crypto/tls, which reads the hello again.
		raw, msg, recVer, err := readHelloRecords(clientT)
		ccap.replay = raw
		if err != nil {
			s.rep.DecidedBy = "client"
			s.rep.Failure = "client TLS handshake: " + err.Error()
			return nil, nil, s.rep.failure()
		}
		s.rep.Times.ClientHello = time.Now()
		if ch, err := ParseClientHello(msg); err == nil {
			if pol != nil && pol.DHE.offers(ch) {
				s.rep.ClientHello = ch
				return s.dheHandshake(ctx, ccap, ucap, msg, recVer, strict, pol.DHE)
			}
			if u := s.b.cfg.UpstreamDHE; u != nil && u.Server.offers(ch) {
				if _, only := u.offersOnlyDHE(ch); only {
					s.rep.ClientHello = ch
					return s.dheHandshake(ctx, ccap, ucap, msg, recVer, strict, u.Server)
				}
			}
		}
	}
	h := &legsHandshake{s: s, ctx: ctx, ccap: ccap, ucap: ucap, pol: pol, strict: strict}
	lo, hi := pol.versionRange()
	h.base = &tls.Config{MinVersion: lo, MaxVersion: hi, KeyLogWriter: s.b.cfg.KeyLog}
	if pol != nil {
		h.base.CipherSuites = pol.CipherSuites
	}
	if strict {
		h.base.NextProtos = []string{"tds/8.0"}
	}
	if pol != nil && !pol.Alert {
		ccap.setDropAlerts(true) // "rst": Schannel closes without an alert
	}
	h.base.GetConfigForClient = h.configForClient
	ctls := tls.Server(ccap, h.base)
	if err := ctls.HandshakeContext(ctx); err != nil {
		if h.utc != nil {
			h.utc.Close()
		}
		return nil, nil, h.failed(err)
	}
	ccap.setDropAlerts(false)
	st := ctls.ConnectionState()
	s.rep.Client = &TLSLeg{Version: st.Version, CipherSuite: st.CipherSuite, ALPN: st.NegotiatedProtocol}
	if h.shown != nil && len(h.shown.Certificate) > 0 {
		if sum, err := SummarizeCertificate(h.shown.Certificate[0]); err == nil {
			s.rep.Client.Cert = &sum
		}
	}
	return ctls, h.utc, nil
}

// stampHandshake sets the report's TLS step times from the client leg's
// conn when the handshake ends (StepTimes says what each is); the
// Finished stamps only for a handshake that succeeded.
func (s *bridgeSession) stampHandshake(ccap *captureConn, ok bool) {
	lastRead, firstHS, lastWrite := ccap.times()
	s.rep.Times.ServerHello = firstHS
	if ok {
		s.rep.Times.ClientFinished, s.rep.Times.ServerFinished = lastRead, lastWrite
	}
}

// legsHandshake is the state of one bridged handshake (not DHE): the
// client leg's crypto/tls server, and the upstream leg it runs from
// GetConfigForClient.
type legsHandshake struct {
	s          *bridgeSession
	ctx        context.Context
	ccap, ucap *captureConn
	pol        *ServerPolicy
	strict     bool
	base       *tls.Config // the client leg's config before the ClientHello

	utc           *utls.UConn      // the upstream leg, once it is up
	upErr         error            // the upstream leg's failure
	clientRefusal string           // why the bridge refused the client itself
	shown         *tls.Certificate // the certificate the client leg shows
}

// configForClient is the client leg's GetConfigForClient: it reads the
// captured ClientHello, refuses it as the policy says, or runs the
// upstream leg and shapes the client leg after it.
func (h *legsHandshake) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	s, pol, cfg := h.s, h.pol, h.s.b.cfg
	if s.rep.Times.ClientHello.IsZero() { // not already peeked
		s.rep.Times.ClientHello = time.Now()
	}
	raw, recVer, ok := FirstHandshake(h.ccap.captured())
	h.ccap.stopCapture()
	if !ok {
		return nil, errors.New("bridge: ClientHello not captured")
	}
	ch, err := ParseClientHello(raw)
	if err != nil {
		return nil, fmt.Errorf("bridge: ClientHello: %w", err)
	}
	s.rep.ClientHello = ch
	if why := CertHashRefusal(ch, hashOf(pol)); why != "" {
		h.clientRefusal = why
		if pol.Alert {
			// Schannel's rule, Schannel's alert: handshake_failure
			// (RFC 5246 §7.2.2), not crypto/tls's internal_error.
			s.sendAlert(h.ccap, AlertHandshakeFailure)
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
		return h.withCert(cert), nil
	}
	return h.upstreamLeg(raw, recVer)
}

// upstreamLeg runs the upstream handshake with the client's hello and
// returns the client leg's config: the certificate made for the
// upstream's, and, without a version policy, the upstream's version.
func (h *legsHandshake) upstreamLeg(raw []byte, recVer uint16) (*tls.Config, error) {
	s, pol, cfg := h.s, h.pol, h.s.b.cfg
	h.utc, h.upErr = s.upstreamHandshake(h.ctx, h.ucap, raw, recVer, h.strict)
	if errors.Is(h.upErr, ErrNothingToMirror) {
		// The upstream never heard of it: the bridge refuses, as a
		// server with no common suite does (RFC 5246 §7.4.1.3).
		h.clientRefusal, h.upErr = h.upErr.Error(), nil
		s.sendAlert(h.ccap, AlertHandshakeFailure)
		return nil, errors.New(h.clientRefusal)
	}
	if h.upErr != nil {
		s.relayUpstreamRefusal(h.ccap, h.ucap, h.strict)
		return nil, h.upErr
	}
	st := h.utc.ConnectionState()
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
	c := h.withCert(cert)
	h.shown = cert
	if pol == nil || len(pol.Versions) == 0 {
		// Both legs on the upstream's version: TLS 1.3 inside PRELOGIN
		// is beyond SQL Server and some clients (docs/protocol.md).
		c.MaxVersion = st.Version
		c.MinVersion = min(c.MinVersion, st.Version)
	}
	return c, nil
}

// withCert is the client leg's config showing cert.
func (h *legsHandshake) withCert(cert *tls.Certificate) *tls.Config {
	c := h.base.Clone()
	c.GetConfigForClient = nil
	c.Certificates = []tls.Certificate{*cert}
	return c
}

// failed records who decided a failed client-leg handshake, closes the
// client as that party would, and returns the report's failure.
func (h *legsHandshake) failed(err error) error {
	s := h.s
	switch {
	case h.upErr != nil:
		s.rep.DecidedBy = "upstream server"
		s.rep.Failure = "upstream TLS handshake: " + h.upErr.Error()
		if s.rep.Alert != nil {
			closeWrite(s.client) // after the upstream's own alert
		} else {
			resetConn(s.client) // the upstream gave no reason the client could read
			s.rep.Reset = true
		}
		return s.rep.failure()
	case errors.Is(err, ErrNothingToMirror) || strings.Contains(h.clientRefusal, ErrNothingToMirror.Error()):
		s.rep.DecidedBy = "bridge (mirror)"
		s.rep.Failure = h.clientRefusal
		closeWrite(s.client) // after the handshake_failure alert
		return s.rep.failure()
	case h.clientRefusal != "":
		s.rep.DecidedBy = "bridge (Schannel's certificate rule)"
		s.rep.Failure = h.clientRefusal
	case s.rep.ClientHello == nil:
		s.rep.DecidedBy = "client"
		s.rep.Failure = "client TLS handshake: " + err.Error()
	default:
		s.rep.DecidedBy = "client-leg TLS (crypto/tls)"
		s.rep.Failure = "client TLS handshake: " + err.Error()
	}
	s.closeClientAfterFailure(h.ccap, h.pol)
	return s.rep.failure()
}

// dheHandshake runs the client leg with the DHE server leg (the policy's:
// the failing Windows server of the DHE scenarios; or UpstreamDHE's): the
// upstream leg first, for the certificate to show, then the DHE server,
// which decides; when it fails (a leading-zero mismatch) it closes the
// client as its configuration says, and the upstream leg is closed. The
// upstream leg is utls with the mirrored hello, or, when the client offers
// only DHE and BridgeConfig.UpstreamDHE is set, the DHE engine.
func (s *bridgeSession) dheHandshake(ctx context.Context, ccap, ucap *captureConn, hello []byte, recVer uint16, strict bool, leg *DHELeg) (clientLeg, upstreamConn, error) {
	cfg, pol := s.b.cfg, s.policy
	var utc upstreamConn
	var upLeaf *x509.Certificate
	var err error
	if suites, only := cfg.UpstreamDHE.offersOnlyDHE(s.rep.ClientHello); only {
		var dc DHEClientConn
		dc, upLeaf, err = s.dheUpstream(ctx, ucap, suites, strict)
		if err == nil {
			utc = dc
		}
	} else {
		var uc *utls.UConn
		uc, err = s.upstreamHandshake(ctx, ucap, hello, recVer, strict)
		if err == nil {
			utc = uc
			st := uc.ConnectionState()
			s.rep.Upstream = &TLSLeg{Version: st.Version, CipherSuite: st.CipherSuite, ALPN: st.NegotiatedProtocol}
			if len(st.PeerCertificates) > 0 {
				upLeaf = st.PeerCertificates[0]
				if sum, err := SummarizeCertificate(upLeaf.Raw); err == nil {
					s.rep.Upstream.Cert = &sum
				}
			}
		}
	}
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
	cert, err := cfg.Certs.Certificate(cfg.UpstreamHost, upLeaf, hashOf(pol))
	if err != nil {
		closeUpstream(utc)
		return nil, nil, err
	}
	ccap.stopCapture()
	dc := leg.Server(ccap, *cert, strict, cfg.KeyLog)
	err = dc.Handshake()
	dst := dc.State()
	s.rep.DHE = &dst
	if err != nil {
		closeUpstream(utc)
		s.rep.DecidedBy = "client-leg TLS (" + leg.Desc + ")"
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
		s.rep.Reset = leg.Fail == "rst"
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

// closeUpstream closes the upstream leg's TLS conn.
func closeUpstream(c upstreamConn) {
	if cl, ok := c.(io.Closer); ok {
		cl.Close()
	}
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
