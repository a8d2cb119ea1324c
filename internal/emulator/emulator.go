// Package emulator is a small SQL Server stand-in that speaks enough TDS for
// real clients (go-mssqldb, tedious, FreeTDS) to connect, log in and run a
// few statements. It exists so that tdsproxy can be tested end to end on a
// machine with no SQL Server: it negotiates encryption exactly as MS-TDS
// §2.2.6.5 says (PRELOGIN, TLS inside PRELOGIN packets, login-only TLS, TDS
// 8.0 strict) with the TLS versions, cipher suites and certificate it is
// configured with.
//
// Statements it understands (case-insensitive; surrounding whitespace and a
// trailing ';' ignored):
//
//	SELECT 1                 one INT column, one row
//	SELECT @@VERSION         one NVARCHAR row naming the emulator
//	SELECT @@SPID            the session id
//	SELECT large             Config.LargeRows rows of Config.LargeRowBytes bytes
//	SELECT large(N, M)       N rows of M bytes (M ≤ 8000), streamed
//	SET ... / USE ...        session setup: accepted, no effect
//
// Anything else gets error 2812 (class 16) and the connection stays up.
// They are accepted as SQL batches and through sp_executesql RPCs (what
// tedious's execSql and go-mssqldb's parameterised queries send); other RPCs
// get error 2812 too.
package emulator

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// Defaults for zero Config fields.
const (
	DefaultListen        = "127.0.0.1:0"
	DefaultServerName    = "TDSPROXY-EMU"
	DefaultLargeRows     = 1000
	DefaultLargeRowBytes = 8000
	DefaultLoginTimeout  = 30 * time.Second
)

// Config configures a Server. The zero value is a server with encryption
// OFF (SQL Server's default: TLS for the login packet only), TLS 1.2..1.3,
// a generated certificate and no credential check.
type Config struct {
	// Listen is the TCP address to listen on; "" means "127.0.0.1:0".
	Listen string
	// Encrypt is the server's encryption setting, as SQL Server reports it
	// in PRELOGIN: tds.EncryptOff (zero: no "force encryption"),
	// tds.EncryptOn, tds.EncryptReq (both: force encryption) or
	// tds.EncryptNotSup (no TLS at all). TDS 8.0 strict connections are
	// accepted whatever this says.
	Encrypt tds.Encryption
	// TLSMin and TLSMax bound the TLS versions (tls.VersionTLS10..13).
	// TLSMin 0 means TLS 1.2. TLSMax 0 means what SQL Server 2022 does:
	// TLS 1.3 only for TDS 8.0 (strict), at most TLS 1.2 inside PRELOGIN
	// (TDS 7.x). An explicit TLSMax applies to both; TLS 1.3 inside
	// PRELOGIN is beyond SQL Server and some clients cannot do it (FreeTDS
	// with GnuTLS leaves its Finished in its packet buffer).
	TLSMin, TLSMax uint16
	// CipherSuites restricts the TLS 1.0-1.2 cipher suites (Go cannot
	// restrict TLS 1.3 suites); nil means Go's defaults.
	CipherSuites []uint16
	// Certificate is the server certificate; nil means a generated
	// self-signed RSA-2048/SHA-256 certificate for "localhost", 127.0.0.1
	// and ::1 (see Server.CertificatePEM).
	Certificate *tls.Certificate
	// User and Password are the only accepted credentials; both empty
	// means any login is accepted. A mismatch gets error 18456.
	User, Password string
	// LargeRows and LargeRowBytes shape the result of `SELECT large`;
	// 0 means DefaultLargeRows and DefaultLargeRowBytes. LargeRowBytes is
	// at most 8000 (one varbinary(8000) column).
	LargeRows, LargeRowBytes int
	// ServerName is the server name in messages and @@VERSION; "" means
	// DefaultServerName.
	ServerName string
	// LoginTimeout bounds the time from accept to the end of login, so a
	// silent or slow peer cannot hold a handler forever; 0 means
	// DefaultLoginTimeout. After login there is no timeout.
	LoginTimeout time.Duration
	// Logger receives connection events; nil means zap.NewNop().
	Logger *zap.Logger

	// DHE says when TLS_DHE_RSA is negotiated, with the DHE engine
	// (tlsbridge/dhe; crypto/tls has no DHE), in TDS 7.x and strict:
	// DHEOff (zero), DHEPrefer or DHEOnly. With DHE the TLS versions are
	// capped at 1.2 and Config.CipherSuites does not apply; the engine
	// offers its six DHE_RSA suites.
	DHE DHEMode
	// DHEGroup names the DH group (dhe.Groups()); "" means ffdhe2048.
	DHEGroup string
	// DHEZ, DHEY and DHEFail are the engine's knobs (docs/dhe.md): how
	// the shared secret becomes the pre-master secret (ZStrip as RFC 5246
	// §8.1.2; ZPad as unpatched Windows), how the server's public value is
	// encoded, and how the server fails when the client's Finished does
	// not decrypt (FailAlert, FailFIN, FailRST).
	DHEZ    dhe.ZEncoding
	DHEY    dhe.YEncoding
	DHEFail dhe.FailMode
	// DHERejectShortY mishandles a client public value shorter than p
	// (dhe.Config.RejectShortPublic), as unpatched Windows does.
	DHERejectShortY bool
	// DHEKeyLog, when set, receives the DHE master secrets in NSS key log
	// format.
	DHEKeyLog io.Writer
}

// Stats counts what a Server has seen since it started.
type Stats struct {
	Connections    uint64 // accepted TCP connections
	TLSHandshakes  uint64 // completed TLS handshakes
	TLSFailures    uint64 // failed TLS handshakes
	LoginsOK       uint64
	LoginsFailed   uint64 // credential mismatches (error 18456)
	Batches        uint64 // SQL batches and RPCs answered
	ProtocolErrors uint64 // connections closed because of bad input
	DHEHandshakes  uint64 // completed handshakes with a DHE_RSA suite (Config.DHE)
	// DHELeadingZero counts DHE handshakes, completed or not, whose shared
	// secret started with a zero byte: those where a peer that encodes Z
	// the other way computes another master secret (docs/dhe.md).
	DHELeadingZero uint64
}

type counters struct {
	connections, tlsHandshakes, tlsFailures, loginsOK, loginsFailed, batches, protocolErrors, dheHandshakes, dheLeadingZero atomic.Uint64
}

// Server is a running (or ready to run) SQL Server emulator.
type Server struct {
	cfg     Config
	log     *zap.Logger
	cert    tls.Certificate
	tlsCfg  *tls.Config // TDS 7.x: TLS inside PRELOGIN
	strict  *tls.Config // TDS 8.0: TLS first, ALPN tds/8.0
	dhe7    *dhe.Config // TDS 7.x with Config.DHE; nil when off
	dhe8    *dhe.Config // strict with Config.DHE; nil when off
	version tds.ProductVersion
	stats   counters
	nextID  atomic.Uint64

	mu      sync.Mutex
	ln      net.Listener
	conns   map[net.Conn]struct{}
	closed  bool
	started bool
	wg      sync.WaitGroup
}

// ErrClosed is returned by Start on a closed Server.
var ErrClosed = errors.New("emulator: server closed")

// New validates cfg and returns a Server that is not yet listening.
// Errors name the offending Config field.
func New(cfg Config) (*Server, error) {
	if err := cfg.resolve(); err != nil {
		return nil, err
	}
	// SQL Server 2022 negotiates TLS 1.3 only with TDS 8.0 ("TDS 8.0 and
	// TLS 1.3 support", SQL Server docs).
	max7, max8 := cfg.TLSMax, cfg.TLSMax
	if cfg.TLSMax == 0 {
		max7, max8 = max(tls.VersionTLS12, cfg.TLSMin), tls.VersionTLS13
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}

	s := &Server{cfg: cfg, log: log, version: emulatedVersion, conns: make(map[net.Conn]struct{})}
	if cfg.Certificate != nil {
		if len(cfg.Certificate.Certificate) == 0 || cfg.Certificate.PrivateKey == nil {
			return nil, errors.New("emulator: Config.Certificate has no certificate or no private key")
		}
		s.cert = *cfg.Certificate
	} else {
		c, err := generatedCert()
		if err != nil {
			return nil, err
		}
		s.cert = c
	}
	s.tlsCfg = &tls.Config{
		Certificates: []tls.Certificate{s.cert},
		MinVersion:   cfg.TLSMin,
		MaxVersion:   max7,
		CipherSuites: append([]uint16(nil), cfg.CipherSuites...),
	}
	s.strict = s.tlsCfg.Clone()
	s.strict.MaxVersion = max8
	// TDS 8.0 (MS-TDS §3.3.5.1): the client offers ALPN "tds/8.0".
	s.strict.NextProtos = []string{"tds/8.0"}
	if err := s.dheConfigs(max7, max8); err != nil {
		return nil, err
	}
	return s, nil
}

// resolve checks cfg and fills in the defaults of its zero fields.
func (cfg *Config) resolve() error {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	switch cfg.Encrypt {
	case tds.EncryptOff, tds.EncryptOn, tds.EncryptNotSup, tds.EncryptReq:
	default:
		return fmt.Errorf("emulator: Config.Encrypt: %s is not a server setting (want OFF, ON, NOT_SUP or REQ)", cfg.Encrypt)
	}
	if cfg.TLSMin == 0 {
		cfg.TLSMin = tls.VersionTLS12
	}
	for _, v := range []struct {
		name string
		v    uint16
	}{{"TLSMin", cfg.TLSMin}, {"TLSMax", cfg.TLSMax}} {
		if v.v != 0 && (v.v < tls.VersionTLS10 || v.v > tls.VersionTLS13) {
			return fmt.Errorf("emulator: Config.%s: 0x%04X is not TLS 1.0..1.3", v.name, v.v)
		}
	}
	if cfg.TLSMax != 0 && cfg.TLSMin > cfg.TLSMax {
		return fmt.Errorf("emulator: Config.TLSMin (%s) is above Config.TLSMax (%s)", tls.VersionName(cfg.TLSMin), tls.VersionName(cfg.TLSMax))
	}
	if err := checkCipherSuites(cfg.CipherSuites); err != nil {
		return err
	}
	if cfg.User == "" && cfg.Password != "" {
		return errors.New("emulator: Config.User is empty but Config.Password is set")
	}
	if cfg.LargeRows == 0 {
		cfg.LargeRows = DefaultLargeRows
	}
	if cfg.LargeRowBytes == 0 {
		cfg.LargeRowBytes = DefaultLargeRowBytes
	}
	if cfg.LargeRows < 0 || cfg.LargeRows > maxLargeRows {
		return fmt.Errorf("emulator: Config.LargeRows: %d is outside 0..%d", cfg.LargeRows, maxLargeRows)
	}
	if cfg.LargeRowBytes < 1 || cfg.LargeRowBytes > tds.MaxVarLen {
		return fmt.Errorf("emulator: Config.LargeRowBytes: %d is outside 1..%d", cfg.LargeRowBytes, tds.MaxVarLen)
	}
	if cfg.ServerName == "" {
		cfg.ServerName = DefaultServerName
	}
	if cfg.LoginTimeout < 0 {
		return fmt.Errorf("emulator: Config.LoginTimeout: %v is negative", cfg.LoginTimeout)
	}
	if cfg.LoginTimeout == 0 {
		cfg.LoginTimeout = DefaultLoginTimeout
	}
	return nil
}

// checkCipherSuites rejects suite IDs Go does not implement: they would be
// silently ignored, and a test would not restrict what it thinks it does.
func checkCipherSuites(ids []uint16) error {
	known := make(map[uint16]bool)
	for _, cs := range tls.CipherSuites() {
		known[cs.ID] = true
	}
	for _, cs := range tls.InsecureCipherSuites() {
		known[cs.ID] = true
	}
	for _, id := range ids {
		if !known[id] {
			return fmt.Errorf("emulator: Config.CipherSuites: 0x%04X is not a cipher suite Go implements", id)
		}
	}
	return nil
}

// Start listens on Config.Listen and serves connections in the background
// until Close.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.started {
		return errors.New("emulator: server already started")
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("emulator: listening on %s: %w", s.cfg.Listen, err)
	}
	s.ln, s.started = ln, true
	s.log.Info("emulator listening", zap.String("addr", ln.Addr().String()),
		zap.Stringer("encrypt", s.cfg.Encrypt),
		zap.String("tls_min", tls.VersionName(s.tlsCfg.MinVersion)),
		zap.String("tls_max_tds7", tls.VersionName(s.tlsCfg.MaxVersion)),
		zap.String("tls_max_strict", tls.VersionName(s.strict.MaxVersion)),
		zap.Stringer("dhe", s.cfg.DHE))
	s.wg.Add(1)
	go s.acceptLoop(ln)
	return nil
}

// Addr returns the address the server listens on (host:port), or "" before
// Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// TLSVersions returns the TLS versions the server accepts: the lowest, the
// highest inside PRELOGIN (TDS 7.x) and the highest for TDS 8.0 strict.
func (s *Server) TLSVersions() (min, max7, max8 uint16) {
	return s.tlsCfg.MinVersion, s.tlsCfg.MaxVersion, s.strict.MaxVersion
}

// CertificatePEM returns the server's certificate chain in PEM, for a
// client to trust (go-mssqldb certificate=, tedious ca, FreeTDS ca file).
func (s *Server) CertificatePEM() []byte { return certPEM(&s.cert) }

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Connections:    s.stats.connections.Load(),
		TLSHandshakes:  s.stats.tlsHandshakes.Load(),
		TLSFailures:    s.stats.tlsFailures.Load(),
		LoginsOK:       s.stats.loginsOK.Load(),
		LoginsFailed:   s.stats.loginsFailed.Load(),
		Batches:        s.stats.batches.Load(),
		ProtocolErrors: s.stats.protocolErrors.Load(),
		DHEHandshakes:  s.stats.dheHandshakes.Load(),
		DHELeadingZero: s.stats.dheLeadingZero.Load(),
	}
}

// Close stops the listener, closes every live connection, waits for their
// handlers to return and returns. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as
			// net/http does rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", zap.Error(err), zap.Duration("retry_in", backoff))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !s.track(c) {
			c.Close()
			return
		}
		s.stats.connections.Add(1)
		go s.serve(c)
	}
}

// track registers a live connection; false if the server is closing.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}
