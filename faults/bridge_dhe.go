package faults

import (
	"crypto/tls"
	"errors"
	"io"
	"net"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// dheLeg is the real form of the DHE scenarios in bridge mode: the client
// leg is the DHE engine (tlsbridge/dhe, docs/dhe.md) configured as the
// failing Windows server. It prefers DHE (a client that offers a
// TLS_DHE_RSA suite meets it; any other, crypto/tls) and pads the shared
// secret Z to the length of p as unpatched Schannel does, so a client that
// strips Z (OpenSSL, GnuTLS, JSSE) fails at its Finished whenever Z starts
// with a zero byte: at the natural rate in ffdhe2048 (1 in 256), or nearly
// always with rate=always, which picks the lz2049 group (JSSE refuses its
// 2049 bits). Another rate is the natural one: the engine cannot fail a
// chosen share of handshakes, the shared secret decides. The rule's close
// style is how the server closes: rst (10054), fin (Microsoft's trace of
// the bug) or alert (bad_record_mac).
func dheLeg(r *dheRule, style proxy.CloseStyle) *tlsbridge.DHELeg {
	name := dhe.DefaultGroup
	if r.Rate.p >= 1 {
		name = "lz2049"
	}
	group, err := dhe.GroupByName(name)
	if err != nil {
		return nil
	}
	fail, failText := dhe.FailRST, "rst"
	switch style {
	case proxy.StyleFIN:
		fail, failText = dhe.FailFIN, "fin"
	case proxy.StyleAlert:
		fail, failText = dhe.FailAlert, "alert"
	}
	return &tlsbridge.DHELeg{
		Suites: dhe.CipherSuites(),
		Desc:   "DHE engine, " + name + ", Z padded, " + failText,
		Fail:   failText,
		Server: func(t net.Conn, cert tls.Certificate, strict bool, keyLog io.Writer) tlsbridge.DHEConn {
			cfg := &dhe.Config{Certificates: []tls.Certificate{cert}, Group: group, Z: dhe.ZPad, Fail: fail, KeyLogWriter: keyLog}
			if strict {
				cfg.NextProtos = []string{"tds/8.0"}
			}
			return &dheLegConn{Conn: dhe.Server(t, cfg)}
		},
	}
}

// dheLegConn adapts a dhe.Conn to tlsbridge.DHEConn.
type dheLegConn struct {
	*dhe.Conn
	err error
}

func (c *dheLegConn) Handshake() error {
	c.err = c.Conn.Handshake()
	return c.err
}

func (c *dheLegConn) State() tlsbridge.DHEState {
	st := c.ConnectionState()
	return tlsbridge.DHEState{Version: st.Version, CipherSuite: st.CipherSuite, ALPN: st.NegotiatedProtocol,
		Group: st.Group, PrimeBits: st.PrimeBits, ZLeadingZero: st.ZLeadingZero,
		FinishedFailed: errors.Is(c.err, dhe.ErrBadFinished)}
}
