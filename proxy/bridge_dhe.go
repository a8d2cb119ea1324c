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
		Server: DHEServerLeg(dhe.VersionTLS10, nil, dhe.ZStrip, dhe.FailAlert, "DHE engine, "+dhe.DefaultGroup+", Z stripped", "alert"),
	}
}

// DHEServerLeg is the bridge's client-facing DHE engine (docs/bridge.md),
// from minVersion (0: the engine's default, TLS 1.2) to TLS 1.2, with the
// given group (nil: the engine's default), Z
// encoding and failure mode; desc and failText describe it in records.
// It is the one place the engine is built as the bridge's server: the DHE
// scenarios (package faults) ask for the failing Windows server with it.
func DHEServerLeg(minVersion uint16, group *dhe.Group, z dhe.ZEncoding, fail dhe.FailMode, desc, failText string) *tlsbridge.DHELeg {
	return &tlsbridge.DHELeg{
		Suites: dhe.CipherSuites(),
		Desc:   desc,
		Fail:   failText,
		Server: func(t net.Conn, cert tls.Certificate, strict bool, keyLog io.Writer) tlsbridge.DHEConn {
			cfg := &dhe.Config{Certificates: []tls.Certificate{cert}, MinVersion: minVersion, MaxVersion: dhe.VersionTLS12,
				Group: group, Z: z, Fail: fail, KeyLogWriter: keyLog}
			if strict {
				cfg.NextProtos = []string{"tds/8.0"}
			}
			return &dheBridgeConn{Conn: dhe.Server(t, cfg)}
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
