package tlsbridge

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	// UpstreamDHE, when set, bridges a client that offers only DHE
	// suites with the DHE engine on both legs (bridge_dhe_upstream.go).
	UpstreamDHE *UpstreamDHE
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

	// Times is when each login step happened on the client leg.
	Times StepTimes

	Session tds.SessionSummary
}

// StepTimes are the wall-clock times of a bridged login's steps as the
// bridge saw them on the client leg (docs/report.md, "Login timing, step
// by step"); a zero time means the step was not reached or not observed.
// crypto/tls has no per-message hook, so the TLS stamps are the closest
// exact observables on the client leg's conn.
type StepTimes struct {
	// PreloginRequest: the client's PRELOGIN (MS-TDS §2.2.6.5) has been
	// read whole; PreloginResponse: the upstream's answer has been
	// written to the client.
	PreloginRequest, PreloginResponse time.Time
	// ClientHello: the client's ClientHello has been read whole (crypto/tls
	// calls GetConfigForClient, or the DHE path has peeked it).
	ClientHello time.Time
	// ServerHello: the client leg's first handshake record write (the
	// flight that starts with ServerHello) has returned.
	ServerHello time.Time
	// ClientFinished: the last read from the client during a handshake
	// that succeeded (the flight that ends with the client's Finished,
	// RFC 5246 §7.4.9, RFC 8446 §4.4.4); ServerFinished: the last write
	// to it during that handshake (the flight that ends with the server's
	// Finished; in TLS 1.3 the same flight as ServerHello).
	ClientFinished, ServerFinished time.Time
	// Login7: the last byte of the client's LOGIN7 (MS-TDS §2.2.6.4),
	// decrypted, has been read; LoginResponse: the first bytes of the
	// server's login response (a LOGINACK, MS-TDS §2.2.7.14, or an
	// ERROR) have been written to the client: the first server bytes
	// read after Login7.
	Login7, LoginResponse time.Time
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
	// TDS, when set, sees the decrypted TDS streams (TDS faults in bridge
	// mode, docs/bridge.md).
	TDS TDSHook
	// PreloginAnswer, when set, is called once the upstream's plaintext
	// PRELOGIN answer (TDS 7.x, MS-TDS §2.2.6.5) has been read, before it is
	// written to the client: a delayed-accept prelogin_delay holds it
	// there, as passthrough holds the server's bytes. An error ends the
	// connection (the caller has closed it). Not called in TDS 8.0 strict,
	// where PRELOGIN travels inside TLS. requestRead is when the client's
	// PRELOGIN was read (StepTimes.PreloginRequest).
	PreloginAnswer func(requestRead time.Time) error
}

// TDSHook lets the caller act on a bridged connection's decrypted TDS
// streams as it acts on plaintext TDS in passthrough: the decoded LOGIN7
// first, then every chunk of each direction.
type TDSHook interface {
	// Login is called once, from the client-to-server relay, when the
	// client's LOGIN7 (MS-TDS §2.2.6.4) has been decoded and before its
	// last bytes go upstream. An error ends that direction (the hook has
	// closed the connection).
	Login(l tds.SessionLogin) error
	// Wrap returns the writer the relay writes one direction's decrypted
	// bytes to instead of dst (toServer: the client's bytes). It is
	// called once per direction when the relay starts; an error from the
	// writer ends that direction.
	Wrap(toServer bool, dst io.Writer) io.Writer
}

// ServeWith is Serve with per-connection options.
func (b *Bridge) ServeWith(ctx context.Context, client, upstream net.Conn, o ServeOptions) (*BridgeReport, error) {
	rep := &BridgeReport{HelloMode: b.cfg.Hello, Insecure: b.cfg.UpstreamInsecure}
	pol := b.cfg.Policy
	if o.Policy != nil {
		pol = o.Policy
	}
	s := &bridgeSession{b: b, rep: rep, client: client, upstream: upstream, established: o.Established, policy: pol,
		dec: &tds.SessionDecoder{Queries: b.cfg.Queries}, hook: o.TDS, preloginAnswer: o.PreloginAnswer}
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
	preloginAnswer   func(time.Time) error
	policy           *ServerPolicy

	decMu sync.Mutex
	dec   *tds.SessionDecoder

	// hook sees the decrypted streams; loginSeen: hook.Login was called
	// (only the client's reader touches it).
	hook      TDSHook
	loginSeen bool

	// loginIn: Times.Login7 is stamped (set by the client's reader, read
	// by the server's, which stamps Times.LoginResponse after it).
	loginIn atomic.Bool
}

// checkLogin calls the hook's Login once the decoder has the client's
// LOGIN7.
func (s *bridgeSession) checkLogin() error {
	if s.hook == nil || s.loginSeen {
		return nil
	}
	s.decMu.Lock()
	var l *tds.SessionLogin
	if sum := s.dec.Summary(); sum.Login != nil {
		l = sum.Login
	}
	s.decMu.Unlock()
	if l == nil {
		return nil
	}
	s.loginSeen = true
	return s.hook.Login(*l)
}

// loginDecoded reports whether the decoder has the client's LOGIN7.
func (s *bridgeSession) loginDecoded() bool {
	s.decMu.Lock()
	defer s.decMu.Unlock()
	return s.dec.Summary().Login != nil
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
	scope, passthrough, err := s.prelogin(client)
	if err != nil {
		return err
	}
	if passthrough {
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
	return s.loginOnly(ctls, cfc, utc, ufc)
}

// prelogin forwards the client's PRELOGIN and the upstream's answer and
// returns the TLS scope the two ENCRYPTION values give (tds.ScopeOf).
// passthrough means the rest goes through undecoded and unencrypted by
// the bridge: the client sent something else than PRELOGIN, a PRELOGIN
// did not parse, or the scope has no TLS.
func (s *bridgeSession) prelogin(client net.Conn) (scope tds.TLSScope, passthrough bool, err error) {
	cmsg, craw, err := readMessageRaw(client, s.maxMessage())
	if err != nil {
		s.rep.DecidedBy = "client"
		return 0, false, fmt.Errorf("bridge: client PRELOGIN: %w", err)
	}
	if cmsg.Type == tds.PacketPrelogin {
		s.rep.Times.PreloginRequest = time.Now()
	}
	if _, err := s.upstream.Write(craw); err != nil {
		s.rep.DecidedBy = "upstream server"
		return 0, false, fmt.Errorf("bridge: forwarding PRELOGIN: %w", err)
	}
	if cmsg.Type != tds.PacketPrelogin {
		s.rep.Scope = "none"
		s.feed(true, craw)
		return 0, true, nil
	}
	cpl, cerr := tds.ParsePrelogin(cmsg.Payload)
	s.rep.ClientPrelogin = cpl
	smsg, sraw, err := readMessageRaw(s.upstream, s.maxMessage())
	if err != nil {
		s.rep.DecidedBy = "upstream server"
		if len(sraw) > 0 {
			s.client.Write(sraw)
		}
		return 0, false, fmt.Errorf("bridge: upstream PRELOGIN answer: %w", err)
	}
	if s.preloginAnswer != nil {
		if err := s.preloginAnswer(s.rep.Times.PreloginRequest); err != nil {
			return 0, false, err
		}
	}
	if _, err := client.Write(sraw); err != nil {
		s.rep.DecidedBy = "client"
		return 0, false, fmt.Errorf("bridge: forwarding the PRELOGIN answer: %w", err)
	}
	s.rep.Times.PreloginResponse = time.Now()
	spl, serr := tds.ParsePrelogin(smsg.Payload)
	s.rep.ServerPrelogin = spl
	if cerr != nil || serr != nil {
		// Both legs agree on whatever the bytes say; not knowing what that
		// is, the bridge can only pass the rest through undecoded.
		s.rep.Scope = "unknown"
		return 0, true, nil
	}
	ce, _ := cpl.Encryption()
	se, _ := spl.Encryption()
	scope = tds.ScopeOf(ce, se)
	s.rep.Scope = scope.String()
	return scope, scope == tds.ScopeNone || scope == tds.ScopeTerminated, nil
}

// loginOnly relays a login-only connection: the first LOGIN7 packet inside
// TLS on both legs, all else in plaintext (MS-TDS §2.2.6.5, "LOGIN7
// only").
func (s *bridgeSession) loginOnly(ctls clientLeg, cfc *FramedConn, utc upstreamConn, ufc *FramedConn) error {
	login, err := ReadLoginOnly(ctls, cfc, s.maxMessage())
	if err != nil {
		s.rep.DecidedBy = "client"
		return fmt.Errorf("bridge: client LOGIN7: %w", err)
	}
	s.rep.Times.Login7 = time.Now()
	s.loginIn.Store(true)
	s.decMu.Lock()
	s.dec.Message(true, login.Type, login.Payload)
	s.decMu.Unlock()
	if err := s.checkLogin(); err != nil {
		clear(login.Payload)
		return err
	}
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

// LegString is "TLS 1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", for logs.
func (l *TLSLeg) String() string {
	if l == nil {
		return ""
	}
	return strings.TrimSpace(VersionName(l.Version) + " " + CipherSuiteName(l.CipherSuite))
}
