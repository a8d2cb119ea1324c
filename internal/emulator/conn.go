package emulator

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// emulatedVersion is the SQL Server version the emulator claims in PRELOGIN
// and LOGINACK: SQL Server 2022 RTM.
var emulatedVersion = tds.ProductVersion{Major: 16, Minor: 0, Build: 1000, SubBuild: 0}

const (
	// maxNegotiationMessage caps PRELOGIN and LOGIN7 reassembly; both are
	// a few hundred bytes from real clients.
	maxNegotiationMessage = 64 << 10
	// maxRequestMessage caps a SQL batch or RPC.
	maxRequestMessage = 4 << 20
	// maxLargeRows bounds `SELECT large(N, M)` so a typo cannot stream
	// for hours.
	maxLargeRows = 10_000_000
	// maxEncryptedPacketSize is what SQL Server grants at most on an
	// encrypted session, whatever the client asks (go-mssqldb tds.go
	// notes that a bigger request gets an ENVCHANGE to 16383).
	maxEncryptedPacketSize = 16383
	// firstSPID is where SQL Server starts numbering user sessions.
	firstSPID = 51
)

// errProtocol marks a connection closed because the peer sent something
// that is not the TDS the emulator expects.
var errProtocol = errors.New("protocol error")

func protocolErrorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errProtocol, fmt.Sprintf(format, a...))
}

// session is one client connection.
type session struct {
	s    *Server
	raw  net.Conn
	log  *zap.Logger
	spid uint16

	// rw is the current TDS transport: the raw conn, a tls.Conn, or the
	// FramedConn left after a login-only handshake.
	rw         io.ReadWriter
	packetSize int
	encrypted  bool // the session after login is inside TLS
}

// serve runs one connection from accept to close.
func (s *Server) serve(raw net.Conn) {
	defer s.untrack(raw)
	defer raw.Close()
	id := s.nextID.Add(1)
	ss := &session{
		s:          s,
		raw:        raw,
		spid:       uint16(firstSPID + (id-1)%30000),
		packetSize: tds.DefaultPacketSize,
		log:        s.log.With(zap.Uint64("conn", id), zap.Stringer("remote", raw.RemoteAddr())),
	}
	err := ss.run()
	switch {
	case err == nil:
		ss.log.Debug("connection closed")
	case errors.Is(err, errProtocol):
		s.stats.protocolErrors.Add(1)
		ss.log.Warn("closing connection: bad input", zap.Error(err))
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		ss.log.Debug("connection closed by peer or server", zap.Error(err))
	default:
		ss.log.Info("connection ended", zap.Error(err))
	}
}

func (ss *session) run() error {
	if err := ss.raw.SetDeadline(time.Now().Add(ss.s.cfg.LoginTimeout)); err != nil {
		return err
	}
	// The first byte tells TDS 7.x (a PRELOGIN packet, 0x12) from TDS 8.0
	// (a TLS handshake record, 0x16), MS-TDS §3.3.5.1.
	var first [1]byte
	if _, err := io.ReadFull(ss.raw, first[:]); err != nil {
		return err
	}
	pc := &prefixConn{Conn: ss.raw, prefix: first[:]}
	switch first[0] {
	case byte(tds.PacketPrelogin):
		return ss.runTDS7(pc)
	case 0x16:
		return ss.runStrict(pc)
	}
	return protocolErrorf("first byte 0x%02X is neither a PRELOGIN packet nor a TLS handshake", first[0])
}

// runTDS7 negotiates a TDS 7.x connection: PRELOGIN, then TLS wrapped in
// PRELOGIN packets as the ENCRYPTION exchange decides, then LOGIN7.
func (ss *session) runTDS7(pc net.Conn) error {
	p, err := ss.readPrelogin(pc)
	if err != nil {
		return err
	}
	client, ok := p.Encryption()
	if !ok {
		// No ENCRYPTION option: read as OFF, the weakest value that still
		// allows TLS (MS-TDS leaves this case open).
		client = tds.EncryptOff
	}
	reply, scope := tds.NegotiateEncryption(client, ss.s.cfg.Encrypt)
	ss.log.Debug("prelogin", zap.Stringer("client_encrypt", client), zap.Stringer("reply", reply), zap.Stringer("scope", scope))
	if err := ss.writePreloginReply(pc, reply); err != nil {
		return err
	}

	switch scope {
	case tds.ScopeTerminated:
		// MS-TDS §2.2.6.5: the connection is terminated. The reply went
		// out first, so the client can tell why.
		ss.log.Info("encryption mismatch: closing after PRELOGIN", zap.Stringer("client_encrypt", client), zap.Stringer("server_encrypt", ss.s.cfg.Encrypt))
		return nil
	case tds.ScopeNone:
		ss.rw = pc
		return ss.loginAndServe(nil)
	}

	fc := tlsbridge.NewFramedConn(pc, tlsbridge.RoleServer, tds.DefaultPacketSize)
	tc, err := ss.tlsServer(fc, false)
	if err != nil {
		return err
	}
	if err := ss.handshake(tc, fc); err != nil {
		return err
	}
	if scope == tds.ScopeSession {
		ss.rw, ss.encrypted = tc, true
		return ss.loginAndServe(nil)
	}
	// Login only: the first LOGIN7 packet arrives in TLS, everything
	// after it in plaintext on the same connection.
	login, err := tlsbridge.ReadLoginOnly(tc, fc, maxNegotiationMessage)
	if err != nil {
		return fmt.Errorf("reading login-only LOGIN7: %w", err)
	}
	ss.rw = fc
	return ss.loginAndServe(&login)
}

// runStrict negotiates TDS 8.0: TLS on the TCP connection first, then
// PRELOGIN and LOGIN7 inside it.
func (ss *session) runStrict(pc net.Conn) error {
	tc, err := ss.tlsServer(pc, true)
	if err != nil {
		return err
	}
	if err := ss.handshake(tc, nil); err != nil {
		return err
	}
	p, err := ss.readPrelogin(tc)
	if err != nil {
		return err
	}
	client, _ := p.Encryption()
	// TLS already covers the connection; the reply only informs. Answer as
	// for a strict client whatever was sent (tedious sends NOT_SUP here).
	reply, _ := tds.NegotiateEncryption(tds.EncryptStrict, ss.s.cfg.Encrypt)
	ss.log.Debug("strict prelogin", zap.Stringer("client_encrypt", client), zap.Stringer("reply", reply))
	if err := ss.writePreloginReply(tc, reply); err != nil {
		return err
	}
	ss.rw, ss.encrypted = tc, true
	return ss.loginAndServe(nil)
}

// handshake runs the server side of TLS. fc, when not nil, is the framing
// conn under tc: after the handshake it is switched to raw records, and
// after a failure the pending alert is flushed to the client.
func (ss *session) handshake(tc tlsServerConn, fc *tlsbridge.FramedConn) error {
	err := tc.Handshake()
	if dc, ok := tc.(*dhe.Conn); ok && dc.ConnectionState().ZLeadingZero {
		ss.s.stats.dheLeadingZero.Add(1)
	}
	if err != nil {
		ss.s.stats.tlsFailures.Add(1)
		if fc != nil {
			// crypto/tls queued an alert in the framing buffer; send it
			// so the client sees "remote error: tls: ...".
			_ = fc.SetWriteDeadline(time.Now().Add(time.Second))
			_ = fc.Flush()
		}
		ss.log.Info("TLS handshake failed", zap.Error(err))
		return fmt.Errorf("TLS handshake: %w", err)
	}
	if fc != nil {
		if err := fc.SwitchToRaw(); err != nil {
			return err
		}
	}
	ss.s.stats.tlsHandshakes.Add(1)
	st := summarize(tc)
	fields := []zap.Field{zap.String("version", st.version), zap.String("cipher_suite", st.suite), zap.String("alpn", st.alpn)}
	if st.dhe {
		ss.s.stats.dheHandshakes.Add(1)
		fields = append(fields, zap.String("dhe_group", st.group), zap.Int("dhe_prime_bits", st.primeBits))
	}
	ss.log.Debug("TLS handshake done", fields...)
	return nil
}

func (ss *session) readPrelogin(r io.Reader) (*tds.Prelogin, error) {
	tr := tds.NewReader(r)
	tr.MaxMessage = maxNegotiationMessage
	m, err := tr.ReadMessage()
	if err != nil {
		return nil, wrapRead("PRELOGIN", err)
	}
	if m.Type != tds.PacketPrelogin {
		return nil, protocolErrorf("expected PRELOGIN, got a %s message", m.Type)
	}
	p, err := tds.ParsePrelogin(m.Payload)
	if err != nil {
		return nil, protocolErrorf("PRELOGIN: %v", err)
	}
	return p, nil
}

// writePreloginReply sends the PRELOGIN response (packet type 0x04) with
// the options SQL Server sends: VERSION (major first), ENCRYPTION, INSTOPT
// (0: instance name accepted), an empty THREADID and MARS off. tedious
// skips an empty THREADID, as it must for real servers.
func (ss *session) writePreloginReply(w io.Writer, enc tds.Encryption) error {
	p := &tds.Prelogin{}
	p.Set(tds.PreloginVersion, ss.s.version.Bytes())
	p.Set(tds.PreloginEncryption, []byte{byte(enc)})
	p.Set(tds.PreloginInstance, []byte{0})
	p.Set(tds.PreloginThreadID, nil)
	p.Set(tds.PreloginMARS, []byte{0})
	payload, err := p.Append(nil)
	if err != nil {
		return err
	}
	tw := tds.Writer{W: w, SPID: ss.spid}
	return tw.WriteMessage(tds.PacketReply, payload)
}

// loginAndServe reads LOGIN7 (unless the login-only path already did),
// answers it, and on success serves requests until the connection ends.
func (ss *session) loginAndServe(login *tds.Message) error {
	if login == nil {
		tr := tds.NewReader(ss.rw)
		tr.MaxMessage = maxNegotiationMessage
		m, err := tr.ReadMessage()
		if err != nil {
			return wrapRead("LOGIN7", err)
		}
		login = &m
	}
	if login.Type != tds.PacketLogin7 {
		return protocolErrorf("expected LOGIN7, got a %s message (only SQL Server authentication is emulated)", login.Type)
	}
	l, err := tds.ParseLogin7(login.Payload)
	if err != nil {
		return protocolErrorf("LOGIN7: %v", err)
	}
	log := ss.log.With(zap.String("user", l.UserName), zap.String("app", l.AppName),
		zap.String("library", l.LibraryName), zap.String("host", l.HostName))
	if !ss.credentialsOK(l) {
		ss.s.stats.loginsFailed.Add(1)
		log.Info("login failed: wrong credentials")
		return ss.writeLoginFailure(l.UserName)
	}
	if err := ss.writeLoginAck(l); err != nil {
		return err
	}
	ss.s.stats.loginsOK.Add(1)
	log.Debug("login ok", zap.Int("packet_size", ss.packetSize), zap.Bool("encrypted", ss.encrypted))
	// Logged in: no more login timeout. Clients may sit idle for long.
	if err := ss.raw.SetDeadline(time.Time{}); err != nil {
		return err
	}
	ss.log = log
	return ss.serveRequests()
}

func (ss *session) credentialsOK(l *tds.Login7) bool {
	cfg := &ss.s.cfg
	if cfg.User == "" && cfg.Password == "" {
		return true
	}
	// SQL Server login names compare case-insensitively under the default
	// collation; passwords are exact.
	userOK := strings.EqualFold(l.UserName, cfg.User)
	passOK := subtle.ConstantTimeCompare([]byte(l.Password.Reveal()), []byte(cfg.Password)) == 1
	return userOK && passOK
}

// writeLoginFailure sends what SQL Server sends for a bad SQL login (error
// 18456, state 1, class 14; the state is always 1 on the wire so as not to
// tell an attacker what was wrong) and DONE with the error bit. The caller
// then closes the connection, as SQL Server does.
func (ss *session) writeLoginFailure(user string) error {
	b := tds.AppendError(nil, tds.ServerMessage{
		Number:     18456,
		State:      1,
		Class:      14,
		Message:    fmt.Sprintf("Login failed for user '%s'.", user),
		ServerName: ss.s.cfg.ServerName,
		Line:       1,
	})
	b = tds.AppendDone(b, tds.TokenDone, tds.DoneError, tds.CurCmdNone, 0)
	tw := tds.Writer{W: ss.rw, SPID: ss.spid}
	return tw.WriteMessage(tds.PacketReply, b)
}

// writeLoginAck sends the login response in the order SQL Server uses:
// ENVCHANGE database, INFO 5701, ENVCHANGE collation, ENVCHANGE language,
// INFO 5703, LOGINACK, ENVCHANGE packet size, DONE (MS-TDS §4.2 example).
// It is written in packets of the pre-login size (4096); the negotiated
// size applies from the next message on.
func (ss *session) writeLoginAck(l *tds.Login7) error {
	size := negotiatePacketSize(l.PacketSize, ss.encrypted)
	name := ss.s.cfg.ServerName
	coll := tds.DefaultCollation()

	b := tds.AppendEnvChange(nil, tds.EnvDatabase, "master", "master")
	b = tds.AppendInfo(b, tds.ServerMessage{Number: 5701, State: 2, Class: 0,
		Message: "Changed database context to 'master'.", ServerName: name, Line: 1})
	b = tds.AppendEnvChangeBytes(b, tds.EnvSQLCollation, coll[:], nil)
	b = tds.AppendEnvChange(b, tds.EnvLanguage, "us_english", "")
	b = tds.AppendInfo(b, tds.ServerMessage{Number: 5703, State: 1, Class: 0,
		Message: "Changed language setting to us_english.", ServerName: name, Line: 1})
	v := ss.s.version
	b = tds.AppendLoginAck(b, tds.LoginAck{
		Interface:   tds.LoginAckInterfaceTSQL,
		TDSVersion:  ackVersion(l.TDSVersion),
		ProgName:    "Microsoft SQL Server",
		ProgVersion: [4]byte{v.Major, v.Minor, byte(v.Build >> 8), byte(v.Build)},
	})
	b = tds.AppendEnvChange(b, tds.EnvPacketSize, strconv.Itoa(size), strconv.Itoa(tds.DefaultPacketSize))
	b = tds.AppendDone(b, tds.TokenDone, tds.DoneFinal, tds.CurCmdNone, 0)
	tw := tds.Writer{W: ss.rw, SPID: ss.spid}
	if err := tw.WriteMessage(tds.PacketReply, b); err != nil {
		return err
	}
	ss.packetSize = size
	return nil
}

// negotiatePacketSize grants what the client asked for when it is valid
// (512..32767, MS-TDS §2.2.6.4), else 4096; encrypted sessions are capped
// at 16383 as SQL Server does.
func negotiatePacketSize(requested uint32, encrypted bool) int {
	size := tds.DefaultPacketSize
	if requested >= 512 && requested <= 32767 {
		size = int(requested)
	}
	if encrypted && size > maxEncryptedPacketSize {
		size = maxEncryptedPacketSize
	}
	return size
}

// ackVersion is the TDS version LOGINACK reports: the client's when it is
// an older 7.x the emulator can speak, else 7.4 (also for TDS 8.0 clients:
// 8.0 changes the transport, not the token stream).
func ackVersion(client uint32) uint32 {
	switch client {
	case tds.VersionTDS72, tds.VersionTDS73A, tds.VersionTDS73B:
		return client
	}
	return tds.VersionTDS74
}

// wrapRead turns a clean EOF into itself and anything that is not an I/O
// error (a bad header, an oversized message) into a protocol error.
func wrapRead(what string, err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.As(err, &ne):
		return fmt.Errorf("reading %s: %w", what, err)
	}
	return protocolErrorf("reading %s: %v", what, err)
}

// prefixConn replays bytes already read from Conn before reading more.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// NetConn returns the wrapped conn, so that the DHE engine can reach the
// TCP conn to abort with an RST (dhe.FailRST).
func (c *prefixConn) NetConn() net.Conn { return c.Conn }
