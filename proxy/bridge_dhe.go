package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"

	"github.com/tdsproxy/tdsproxy/tlsbridge"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// upstreamDHE is the bridge's DHE engine for a client that offers only
// TLS_DHE_RSA suites (docs/bridge.md): the engine as a client upstream,
// offering the client's DHE suites, and as a server on the client leg.
// Both are ordinary peers: Z stripped (RFC 5246 §8.1.2), the default
// group (ffdhe2048, RFC 7919), TLS 1.0 to 1.2.
func upstreamDHE() *tlsbridge.UpstreamDHE {
	return &tlsbridge.UpstreamDHE{
		Suites: dhe.CipherSuites(),
		Client: func(t net.Conn, o tlsbridge.UpstreamDHEOptions) tlsbridge.DHEClientConn {
			cfg := &dhe.Config{CipherSuites: o.Suites, MinVersion: dhe.VersionTLS10, MaxVersion: dhe.VersionTLS12,
				ServerName: o.ServerName, RootCAs: o.Roots, InsecureSkipVerify: o.Insecure, KeyLogWriter: o.KeyLog}
			if o.Strict {
				cfg.NextProtos = []string{"tds/8.0"}
			}
			return &dheBridgeConn{Conn: dhe.Client(t, cfg)}
		},
		Server: &tlsbridge.DHELeg{
			Suites: dhe.CipherSuites(),
			Desc:   "DHE engine, " + dhe.DefaultGroup + ", Z stripped",
			Fail:   "alert",
			Server: func(t net.Conn, cert tls.Certificate, strict bool, keyLog io.Writer) tlsbridge.DHEConn {
				cfg := &dhe.Config{Certificates: []tls.Certificate{cert}, MinVersion: dhe.VersionTLS10, MaxVersion: dhe.VersionTLS12,
					KeyLogWriter: keyLog}
				if strict {
					cfg.NextProtos = []string{"tds/8.0"}
				}
				return &dheBridgeConn{Conn: dhe.Server(t, cfg)}
			},
		},
	}
}

// dheBridgeConn adapts a dhe.Conn to tlsbridge.DHEConn and
// tlsbridge.DHEClientConn.
type dheBridgeConn struct {
	*dhe.Conn
	err error
}

func (c *dheBridgeConn) Handshake() error {
	c.err = c.Conn.Handshake()
	return c.err
}

func (c *dheBridgeConn) State() tlsbridge.DHEState {
	st := c.ConnectionState()
	return tlsbridge.DHEState{Version: st.Version, CipherSuite: st.CipherSuite, ALPN: st.NegotiatedProtocol,
		Group: st.Group, PrimeBits: st.PrimeBits, ZLeadingZero: st.ZLeadingZero,
		FinishedFailed: errors.Is(c.err, dhe.ErrBadFinished)}
}

func (c *dheBridgeConn) PeerCertificate() *x509.Certificate {
	if p := c.ConnectionState().PeerCertificates; len(p) > 0 {
		return p[0]
	}
	return nil
}

// CloseWrite sends nothing: the engine has no close_notify of its own;
// the relay half-closes the TCP conn under it next.
func (c *dheBridgeConn) CloseWrite() error { return nil }
