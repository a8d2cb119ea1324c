package emulator

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// DHEMode says when the emulator negotiates a TLS_DHE_RSA suite with the
// DHE engine (tlsbridge/dhe) instead of crypto/tls, which has no DHE.
type DHEMode uint8

const (
	// DHEOff: crypto/tls only, as SQL Server with DHE removed from its
	// cipher suite policy. The zero value.
	DHEOff DHEMode = iota
	// DHEPrefer: a client whose ClientHello offers a DHE_RSA suite gets
	// DHE (a Windows server that lists DHE first); others get crypto/tls.
	DHEPrefer
	// DHEOnly: every client meets the engine; one that offers no DHE_RSA
	// suite gets handshake_failure.
	DHEOnly
)

var dheModeNames = []string{DHEOff: "off", DHEPrefer: "prefer", DHEOnly: "only"}

func (m DHEMode) String() string {
	if int(m) < len(dheModeNames) {
		return dheModeNames[m]
	}
	return fmt.Sprintf("DHEMode(%d)", m)
}

// ParseDHEMode parses "off", "prefer" or "only".
func ParseDHEMode(s string) (DHEMode, error) {
	for i, n := range dheModeNames {
		if strings.EqualFold(s, n) {
			return DHEMode(i), nil
		}
	}
	return 0, fmt.Errorf("DHE mode %q: want off|prefer|only", s)
}

// tlsServerConn is what a session needs of its server-side TLS: crypto/tls
// or the DHE engine.
type tlsServerConn interface {
	net.Conn
	Handshake() error
}

// tlsSummary describes a finished handshake for logs.
type tlsSummary struct {
	version, suite, alpn, group string
	primeBits                   int
	dhe                         bool
}

func summarize(c tlsServerConn) tlsSummary {
	switch tc := c.(type) {
	case *tls.Conn:
		st := tc.ConnectionState()
		return tlsSummary{version: tls.VersionName(st.Version), suite: tls.CipherSuiteName(st.CipherSuite), alpn: st.NegotiatedProtocol}
	case *dhe.Conn:
		st := tc.ConnectionState()
		return tlsSummary{version: tls.VersionName(st.Version), suite: dhe.CipherSuiteName(st.CipherSuite), alpn: st.NegotiatedProtocol,
			group: st.Group, primeBits: st.PrimeBits, dhe: true}
	}
	return tlsSummary{}
}

// dheConfigs builds the engine's configuration for TDS 7.x and strict from
// the server's, or returns nil configs when DHE is off.
func (s *Server) dheConfigs(max7, max8 uint16) error {
	cfg := s.cfg
	if cfg.DHE == DHEOff {
		return nil
	}
	if cfg.DHE > DHEOnly {
		return fmt.Errorf("emulator: Config.DHE: %v is not off, prefer or only", cfg.DHE)
	}
	group, err := dhe.GroupByName(cmpOr(cfg.DHEGroup, dhe.DefaultGroup))
	if err != nil {
		return fmt.Errorf("emulator: Config.DHEGroup: %w", err)
	}
	if cfg.TLSMin > tls.VersionTLS12 {
		return fmt.Errorf("emulator: Config.DHE %v needs TLS 1.2 or lower, but Config.TLSMin is %s", cfg.DHE, tls.VersionName(cfg.TLSMin))
	}
	base := dhe.Config{
		Certificates: []tls.Certificate{s.cert},
		MinVersion:   cfg.TLSMin,
		Group:        group,
		Z:            cfg.DHEZ,
		Y:            cfg.DHEY,
		Fail:         cfg.DHEFail,

		RejectShortPublic: cfg.DHERejectShortY,
	}
	if cfg.DHEKeyLog != nil {
		// Connections log concurrently; one line per write, whole.
		base.KeyLogWriter = &lockedWriter{w: cfg.DHEKeyLog}
	}
	s.dhe7, s.dhe8 = new(dhe.Config), new(dhe.Config)
	*s.dhe7, *s.dhe8 = base, base
	s.dhe7.MaxVersion = min(max7, tls.VersionTLS12)
	s.dhe8.MaxVersion = min(max8, tls.VersionTLS12)
	s.dhe8.NextProtos = []string{"tds/8.0"}
	return nil
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// tlsServer returns the server-side TLS conn for transport: crypto/tls, or
// the DHE engine when Config.DHE says so for this client. To decide it
// peeks the ClientHello and replays it to whichever answers.
func (ss *session) tlsServer(transport net.Conn, strict bool) (tlsServerConn, error) {
	s := ss.s
	goCfg, dheCfg := s.tlsCfg, s.dhe7
	if strict {
		goCfg, dheCfg = s.strict, s.dhe8
	}
	if dheCfg == nil {
		return tls.Server(transport, goCfg), nil
	}
	hello, peeked, err := dhe.ReadClientHello(transport)
	if err != nil {
		return nil, wrapRead("ClientHello", err)
	}
	replay := dhe.ReplayConn(transport, peeked)
	if s.cfg.DHE == DHEOnly || dhe.OffersDHE(hello) {
		return dhe.Server(replay, dheCfg), nil
	}
	return tls.Server(replay, goCfg), nil
}
