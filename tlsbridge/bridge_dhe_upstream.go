package tlsbridge

import (
	"context"
	"crypto/x509"
	"io"
	"net"
	"slices"
)

// UpstreamDHE bridges a client that offers TLS_DHE_RSA suites and nothing
// the upstream leg's utls can complete (a DHE-only client): the upstream
// leg is then the DHE engine (tlsbridge/dhe, which imports this package,
// so its user supplies it) offering the client's DHE suites, and the
// client leg a DHE server (docs/bridge.md, docs/dhe.md).
type UpstreamDHE struct {
	// Suites are the DHE suites the engine implements.
	Suites []uint16
	// Client returns the upstream leg's DHE client on transport.
	Client func(transport net.Conn, o UpstreamDHEOptions) DHEClientConn
	// Server is the client leg when the connection's policy has no
	// DHELeg of its own: a DHE server that works (it strips Z, RFC 5246
	// §8.1.2), not a failing one.
	Server *DHELeg
}

// UpstreamDHEOptions configure the upstream leg's DHE client.
type UpstreamDHEOptions struct {
	// Suites are the client's DHE suites, in its order.
	Suites []uint16
	// ServerName is the upstream's host: the name its certificate is
	// verified against (unless Insecure), against Roots (nil: the system
	// roots).
	ServerName string
	Roots      *x509.CertPool
	Insecure   bool
	// Strict offers ALPN tds/8.0 (MS-TDS §3.3.5.1).
	Strict bool
	KeyLog io.Writer
}

// DHEClientConn is the upstream leg's DHE client conn.
type DHEClientConn interface {
	DHEConn
	// PeerCertificate is the upstream's leaf certificate, after the
	// handshake.
	PeerCertificate() *x509.Certificate
	// CloseWrite ends the upstream leg's sending direction.
	CloseWrite() error
}

// upstreamConn is the upstream leg's TLS conn: utls, or an UpstreamDHE's.
type upstreamConn interface {
	io.Reader
	io.Writer
	CloseWrite() error
}

// offersOnlyDHE reports whether ch offers one of u's suites and no suite
// the mirror keeps (ErrNothingToMirror): the case the engine upstream is
// for. It returns the client's DHE suites, in its order.
func (u *UpstreamDHE) offersOnlyDHE(ch *ClientHello) ([]uint16, bool) {
	if u == nil || u.Client == nil || ch == nil {
		return nil, false
	}
	if slices.ContainsFunc(ch.CipherSuites, func(s uint16) bool { return utlsSuites[s] }) {
		return nil, false
	}
	var suites []uint16
	for _, s := range ch.CipherSuites {
		if slices.Contains(u.Suites, s) {
			suites = append(suites, s)
		}
	}
	return suites, len(suites) > 0
}

// dheUpstream runs the upstream leg with the DHE engine, offering the
// client's DHE suites, and records it as the report's upstream leg.
func (s *bridgeSession) dheUpstream(ctx context.Context, up *captureConn, suites []uint16, strict bool) (DHEClientConn, *x509.Certificate, error) {
	cfg := s.b.cfg
	dc := cfg.UpstreamDHE.Client(up, UpstreamDHEOptions{Suites: suites, ServerName: cfg.UpstreamHost,
		Roots: cfg.UpstreamRoots, Insecure: cfg.UpstreamInsecure, Strict: strict, KeyLog: cfg.KeyLog})
	stop := context.AfterFunc(ctx, func() { dc.Close() })
	err := dc.Handshake()
	stop()
	if raw, _, ok := FirstHandshake(up.written()); ok {
		if ch, err := ParseClientHello(raw); err == nil {
			s.rep.UpstreamHello = ch
		}
	}
	up.stopCapture()
	if err != nil {
		dc.Close()
		return nil, nil, err
	}
	st := dc.State()
	s.rep.Upstream = &TLSLeg{Version: st.Version, CipherSuite: st.CipherSuite, ALPN: st.ALPN}
	leaf := dc.PeerCertificate()
	if leaf != nil {
		if sum, err := SummarizeCertificate(leaf.Raw); err == nil {
			s.rep.Upstream.Cert = &sum
		}
	}
	return dc, leaf, nil
}
