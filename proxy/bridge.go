package proxy

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tdsproxy/tdsproxy/record"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// BridgeConfig turns a proxy into a TLS-terminating bridge (docs/bridge.md):
// the proxy ends the client's TLS and opens its own to the upstream, so it
// sees, records and can fault the decrypted session. Field names follow the
// flags (--bridge-cert, --upstream-ca, ...) and the config file's bridge:
// keys.
type BridgeConfig struct {
	// Cert and Key: a given certificate and key shown to every client.
	Cert string `json:"cert,omitempty" mapstructure:"cert"`
	Key  string `json:"key,omitempty" mapstructure:"key"`
	// CA and CAKey: a CA that signs a leaf per upstream host, copying the
	// upstream certificate's subject and SANs.
	CA    string `json:"ca,omitempty" mapstructure:"ca"`
	CAKey string `json:"ca_key,omitempty" mapstructure:"ca_key"`
	// CAOut, with neither of the above, is where the CA generated once is
	// kept (its key beside it, CAOut+".key", mode 0600); "" means
	// tlsbridge.DefaultCAOut().
	CAOut string `json:"ca_out,omitempty" mapstructure:"ca_out"`
	// UpstreamCA adds a CA to the system roots for the upstream's
	// certificate; UpstreamInsecure skips verifying it.
	UpstreamCA       string `json:"upstream_ca,omitempty" mapstructure:"upstream_ca"`
	UpstreamInsecure bool   `json:"upstream_insecure,omitempty" mapstructure:"upstream_insecure"`
	// UpstreamHello is mirror (the default) or go.
	UpstreamHello string `json:"upstream_hello,omitempty" mapstructure:"upstream_hello"`
	// Keylog is an NSS key log file for both legs (mode 0600).
	Keylog string `json:"keylog,omitempty" mapstructure:"keylog"`
	// RecordQueries is none (the default), fingerprint or text.
	RecordQueries string `json:"record_queries,omitempty" mapstructure:"record_queries"`
}

// Validate checks the bridge options without touching files.
func (c *BridgeConfig) Validate() error {
	if c == nil {
		return nil
	}
	if err := (tlsbridge.BridgeCertConfig{CertFile: c.Cert, KeyFile: c.Key, CAFile: c.CA, CAKeyFile: c.CAKey, CAOut: c.CAOut}).Validate(); err != nil {
		return err
	}
	if c.UpstreamCA != "" && c.UpstreamInsecure {
		return errors.New("bridge: --upstream-ca and --upstream-insecure exclude each other")
	}
	if _, err := tlsbridge.ParseHelloMode(c.UpstreamHello); err != nil {
		return err
	}
	if _, err := tds.ParseQueryMode(c.RecordQueries); err != nil {
		return err
	}
	return nil
}

// BridgePolicer is implemented by a ConnDecider whose rules configure the
// client-facing TLS server of a bridged connection (protocol-mismatch,
// cipher-mismatch, weak-cert-hash): with a bridge the real TLS stack then
// decides instead of a close at the ClientHello. nil means no policy.
type BridgePolicer interface {
	BridgePolicy() *tlsbridge.ServerPolicy
}

// bridgeState is a proxy's built bridge.
type bridgeState struct {
	b      *tlsbridge.Bridge
	keylog *tlsbridge.KeyLog
	certs  *tlsbridge.CertSource
	mode   tds.QueryMode
	cfg    *BridgeConfig
}

// setupBridge builds p's bridge: loads or creates the certificate source,
// opens the key log, loads the upstream CA. It logs where a generated CA
// is (clients must trust it) and warns about the key log.
func (p *Proxy) setupBridge() error {
	c := p.cfg.Bridge
	if c == nil {
		return nil
	}
	certs, err := tlsbridge.LoadCertSource(tlsbridge.BridgeCertConfig{CertFile: c.Cert, KeyFile: c.Key, CAFile: c.CA, CAKeyFile: c.CAKey, CAOut: c.CAOut})
	if err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(p.cfg.Upstream)
	bc := tlsbridge.BridgeConfig{Certs: certs, UpstreamHost: host, UpstreamInsecure: c.UpstreamInsecure,
		MaxMessage: p.cfg.maxNegotiationBuffer()}
	bc.Hello, _ = tlsbridge.ParseHelloMode(c.UpstreamHello)
	bc.UpstreamDHE = upstreamDHE() // a DHE-only client: the DHE engine on both legs
	bc.Queries, _ = tds.ParseQueryMode(c.RecordQueries)
	if c.UpstreamCA != "" {
		pem, err := os.ReadFile(c.UpstreamCA)
		if err != nil {
			return fmt.Errorf("bridge: --upstream-ca: %w", err)
		}
		roots, err := x509.SystemCertPool()
		if err != nil || roots == nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("bridge: --upstream-ca %s holds no PEM certificate", c.UpstreamCA)
		}
		bc.UpstreamRoots = roots
	}
	st := &bridgeState{certs: certs, mode: bc.Queries, cfg: c}
	if c.Keylog != "" {
		kl, err := tlsbridge.OpenKeyLog(c.Keylog)
		if err != nil {
			return err
		}
		st.keylog, bc.KeyLog = kl, kl
		p.log.Warn("bridge: writing the TLS secrets of both legs to the key log; anyone with this file can decrypt captured sessions",
			zap.String("proxy", p.cfg.Name), zap.String("keylog", c.Keylog))
	}
	if st.b, err = tlsbridge.NewBridge(bc); err != nil {
		if st.keylog != nil {
			st.keylog.Close()
		}
		return err
	}
	switch {
	case certs.Generated:
		p.log.Info("bridge: generated a CA for the certificates clients see; make clients trust it",
			zap.String("proxy", p.cfg.Name), zap.String("ca", certs.CAPath))
	case certs.CAPath != "":
		p.log.Info("bridge: clients must trust this CA", zap.String("proxy", p.cfg.Name), zap.String("ca", certs.CAPath))
	}
	if c.UpstreamInsecure {
		p.log.Warn("bridge: the upstream certificate is not verified (--upstream-insecure)", zap.String("proxy", p.cfg.Name))
	}
	p.bridge = st
	return nil
}

func (p *Proxy) bridgeState() *bridgeState { return p.bridge }

// closeBridge releases the bridge's key log.
func (p *Proxy) closeBridge() {
	if st := p.bridge; st != nil && st.keylog != nil {
		st.keylog.Close()
	}
}

// BridgeCAPEM returns the CA clients must trust to accept the bridge's
// certificates, or nil (no bridge, or a given pair).
func (p *Proxy) BridgeCAPEM() []byte {
	if st := p.bridgeState(); st != nil {
		return st.certs.CAPEM()
	}
	return nil
}

// runBridge is session.run for a bridged connection: the accept-time
// verdict and the dial as in passthrough, then tlsbridge serves it.
func (s *session) runBridge(st *bridgeState) {
	early, ok := s.connect(s.ctx)
	if !ok {
		s.cancel()
		s.drainClient()
		s.finish()
		return
	}
	s.mu.Lock()
	srv := s.server
	s.mu.Unlock()
	client := &countConn{Conn: s.client, n: &s.bytes[ClientToServer], pre: early}
	server := &countConn{Conn: srv, n: &s.bytes[ServerToClient]}
	var o tlsbridge.ServeOptions
	var hook *bridgeTDSState
	if bp, ok := s.cd.(BridgePolicer); ok && s.cd != nil {
		o.Policy = bp.BridgePolicy()
	}
	if s.cd != nil {
		h := bridgeTDS{s: s, st: &bridgeTDSState{}, client: client}
		hook = h.st
		o.TDS, o.PreloginAnswer = h, h.preloginResponse
	}
	o.Established = func() {
		s.mu.Lock()
		s.stopWatchingLocked()
		s.rec.Phase = PhaseEstablished
		s.rec.Phases = append(s.rec.Phases, PhaseMark{Phase: PhaseEstablished, At: s.p.now().Sub(s.rec.Start), Encrypted: true})
		s.mu.Unlock()
	}
	rep, err := st.b.ServeWith(s.ctx, client, server, o)
	s.mu.Lock()
	s.stopWatchingLocked()
	fillBridgeRecord(&s.rec, rep, st, o.Policy, s.p.now().Sub(s.rec.Start), hook.heldPhases())
	s.mu.Unlock()
	by, kind, reason := bridgeClose(rep, err)
	s.setClose(by, kind, reason)
	s.closeBoth()
	s.finish()
}

// errStageCut ends a bridged direction that a stage cut (the cut has
// closed the connection).
var errStageCut = errors.New("bridge: connection cut by a fault stage")

// errClientLeftHold ends a bridged connection whose client left while a
// fault held its PRELOGIN answer (the close is recorded by holdClient).
var errClientLeftHold = errors.New("bridge: the client left during a held PRELOGIN answer")

// bridgeTDS is a bridged session's tlsbridge.TDSHook: the decrypted
// LOGIN7 goes to the decider as the watcher's PhaseLogin7 does in
// passthrough, and each decrypted direction passes the session's stages
// as forward passes plaintext chunks (docs/bridge.md, "TDS faults").
type bridgeTDS struct {
	s *session
	// st is shared by the hook's two directions: the server's first bytes
	// after LOGIN7 are its login response, PhaseLoginResponse's moment.
	st *bridgeTDSState
	// client is the client leg the bridge reads: what the client sends
	// during a PRELOGIN hold goes back in front of it.
	client *countConn
}

type bridgeTDSState struct {
	loginIn, answered atomic.Bool
	// held is how long a delay verdict held the bytes of each phase
	// (under the session's mu): the record's Held, as passthrough has it.
	held map[Phase]time.Duration
}

// heldPhases is st.held; nil for a session without a decider. Read once
// the bridge has returned (no hook runs any more).
func (st *bridgeTDSState) heldPhases() map[Phase]time.Duration {
	if st == nil {
		return nil
	}
	return st.held
}

// Login records the decrypted LOGIN7, asks the decider about PhaseLogin7
// and applies the verdict: a delay, stages, or a close.
func (h bridgeTDS) Login(l tds.SessionLogin) error {
	s := h.s
	s.mu.Lock()
	s.rec.Login = &LoginInfo{Visible: true, User: l.User, App: l.App, Host: l.Host, Server: l.Server, Database: l.Database,
		Library: l.Library, TDSVersion: fmt.Sprintf("0x%08X", l.TDSVersion)}
	if s.rec.Bridge == nil {
		// The decider reads it as "the session is decrypted here";
		// fillBridgeRecord replaces it when the connection ends.
		s.rec.Bridge = &record.BridgeInfo{}
	}
	v := s.decideLocked([]Event{{Phase: PhaseLogin7, Dir: ClientToServer}})
	s.mu.Unlock()
	if h.st != nil {
		h.st.loginIn.Store(true)
	}
	return h.apply(v, PhaseLogin7, "")
}

// preloginResponse asks the decider about PhasePreloginResponse when the
// upstream's plaintext PRELOGIN answer is about to reach the client, so a
// prelogin_delay (or a close there) acts in bridge mode as in passthrough.
// The client sent last (its PRELOGIN, read at requestRead): a close during
// a hold then says the client was waiting for the server, and how long.
func (h bridgeTDS) preloginResponse(requestRead time.Time) error {
	s := h.s
	s.mu.Lock()
	if !requestRead.IsZero() {
		s.lastRead[ClientToServer] = s.p.now().Add(-time.Since(requestRead))
	}
	v := s.decideLocked([]Event{{Phase: PhasePreloginResponse, Dir: ServerToClient}})
	s.mu.Unlock()
	return h.apply(v, PhasePreloginResponse, PhasePreloginRequest)
}

// loginResponse asks the decider about PhaseLoginResponse when the
// server's first bytes after LOGIN7 are about to reach the client, so a
// login_delay (or a close there) acts in bridge mode as in passthrough.
func (h bridgeTDS) loginResponse() error {
	if h.st == nil || !h.st.loginIn.Load() || !h.st.answered.CompareAndSwap(false, true) {
		return nil
	}
	s := h.s
	s.mu.Lock()
	v := s.decideLocked([]Event{{Phase: PhaseLoginResponse, Dir: ServerToClient}})
	s.mu.Unlock()
	return h.apply(v, PhaseLoginResponse, PhaseLogin7)
}

// apply carries out a verdict taken at phase on the bridged session: wait
// out a delay, attach stages, or close.
//
// The record's phase follows, so that a close recorded meanwhile names
// the right one, as in passthrough: while a delay holds phase's bytes
// the connection is still at before (the phase the peer has seen; empty:
// leave it), and a close acts at phase; a verdict that does neither
// leaves the phase alone. The marks themselves, with the
// bridge's exact times, are added when the connection ends
// (fillBridgeRecord).
func (h bridgeTDS) apply(v Verdict, phase, before Phase) error {
	s := h.s
	held := v.Delay > 0 && !v.Close
	s.mu.Lock()
	switch {
	case v.Close:
		s.rec.Phase = phase
	case held && before != "":
		s.rec.Phase = before
	}
	if held && h.st != nil {
		if h.st.held == nil {
			h.st.held = map[Phase]time.Duration{}
		}
		h.st.held[phase] += v.Delay
	}
	s.mu.Unlock()
	if held {
		defer func() {
			s.mu.Lock()
			if s.rec.Close == nil {
				s.rec.Phase = phase
			}
			s.mu.Unlock()
		}()
	}
	if v.Delay > 0 && !v.Close && phase == PhasePreloginResponse && h.client != nil {
		// The bridge waits in this hook and nothing else reads the client:
		// watch it as passthrough does, so a client that gives up during
		// the hold is seen at once.
		early, ok := s.holdClient(v.Delay)
		if !ok {
			return errClientLeftHold
		}
		h.client.pre = append(early, h.client.pre...)
	} else if v.Delay > 0 {
		t := time.NewTimer(v.Delay)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return s.ctx.Err()
		}
	}
	s.attachStages(v.Stages)
	if v.Close {
		s.inject(v)
		return errStageCut
	}
	return nil
}

// Wrap returns the writer of one decrypted direction.
func (h bridgeTDS) Wrap(toServer bool, dst io.Writer) io.Writer {
	dir := ServerToClient
	if toServer {
		dir = ClientToServer
	}
	return &stageWriter{s: h.s, dir: dir, dst: dst, hook: h}
}

// stageWriter passes a bridged direction's decrypted bytes through the
// session's stages for that direction; with none, it writes them as they
// are.
type stageWriter struct {
	s    *session
	dir  Direction
	dst  io.Writer
	hook bridgeTDS
}

func (w *stageWriter) Write(b []byte) (int, error) {
	if w.dir == ServerToClient {
		if err := w.hook.loginResponse(); err != nil {
			return 0, err
		}
	}
	stages := w.s.stagesFor(w.dir)
	if len(stages) == 0 {
		return w.dst.Write(b)
	}
	cut, err := runStages(w.s.ctx, stages, b, func(p []byte) error {
		_, err := w.dst.Write(p)
		return err
	})
	if err != nil {
		return 0, err
	}
	if cut != nil {
		w.s.cut(w.dir, cut)
		if cut.After <= 0 {
			return 0, errStageCut
		}
	}
	return len(b), nil
}

// bridgeClose says who closed a bridged connection first, and how.
func bridgeClose(rep *tlsbridge.BridgeReport, err error) (Side, CloseKind, string) {
	if rep.Failure != "" || err != nil {
		kind := CloseFIN
		switch {
		case rep.Reset:
			kind = CloseRST
		case rep.Alert != nil:
			kind = CloseAlert
		}
		switch rep.DecidedBy {
		case "client":
			return SideClient, CloseError, rep.Failure
		case "upstream server":
			return SideServer, kind, rep.Failure
		}
		return SideProxy, kind, strings.TrimSpace(rep.DecidedBy + ": " + rep.Failure)
	}
	by := SideClient
	if rep.CloseBy == "server" {
		by = SideServer
	}
	kind := CloseFIN
	switch rep.CloseKind {
	case "rst":
		kind = CloseRST
	case "error":
		kind = CloseError
	}
	return by, kind, ""
}

// sspiNote is recorded when LOGIN7 carries SSPI (integrated Windows
// authentication) through a bridge.
const sspiNote = "LOGIN7 uses SSPI (Windows authentication): a token bound to the TLS channel " +
	"(Extended Protection) cannot pass a TLS-terminating proxy, and a server that enforces it refuses the login (docs/bridge.md)"

// fillBridgeRecord copies what the bridge learned into the record.
//
// held is how long delay verdicts held each phase's bytes: the phase's
// Held, as in passthrough, where a mark's At is when its bytes were read
// and At+Held when they went on. The bridge stamps PRELOGIN and login
// responses after writing them (after the hold), LOGIN7 when decoded
// (before it).
func fillBridgeRecord(r *Record, rep *tlsbridge.BridgeReport, st *bridgeState, pol *tlsbridge.ServerPolicy, at time.Duration, held map[Phase]time.Duration) {
	switch rep.Protocol {
	case "tds7":
		r.Protocol = ProtocolTDS7
	case "tds8-strict":
		r.Protocol = ProtocolStrict
	case "not-tds":
		r.Protocol = ProtocolNotTDS
	}
	// A step the bridge stamped (rep.Times) is exact: it saw it on the
	// client leg, in the clear or decrypted. Stamps are wall-clock; at is
	// on the proxy's clock, so each is placed relative to now.
	now := time.Now()
	mark := func(p Phase, enc bool) {
		h := held[p]
		if t := bridgeStamp(rep.Times, p); !t.IsZero() {
			when := at - now.Sub(t)
			if p == PhasePreloginResponse || p == PhaseLoginResponse {
				when -= h // stamped once the held bytes went on
			}
			markPhase(r, p, false, max(0, when), h)
			return
		}
		markPhase(r, p, enc, max(0, at-h), h)
	}
	if rep.ClientPrelogin != nil || rep.ServerPrelogin != nil {
		r.Prelogin = &PreloginInfo{Scope: rep.Scope}
		if rep.ClientPrelogin != nil {
			r.Prelogin.Client = preloginSide(rep.ClientPrelogin)
			mark(PhasePreloginRequest, false)
		}
		if rep.ServerPrelogin != nil {
			r.Prelogin.Server = preloginSide(rep.ServerPrelogin)
			mark(PhasePreloginResponse, false)
		}
	}
	bi := &record.BridgeInfo{
		UpstreamHello: string(rep.HelloMode), Keylog: st.keylog != nil, UpstreamInsecure: rep.Insecure,
		Scope: rep.Scope, DroppedFromMirror: rep.Dropped, DecidedBy: rep.DecidedBy, Failure: rep.Failure,
		RecordQueries: string(st.mode),
	}
	if bi.RecordQueries == "" {
		bi.RecordQueries = string(tds.QueriesNone)
	}
	if pol != nil {
		bi.Scenario = pol.Scenario
	}
	fillBridgeTLS(r, rep, bi, mark)
	fillBridgeSession(r, &rep.Session, bi, mark)
	r.Bridge = bi
}

// bridgeStamp is when the bridge saw phase p on the client leg, or zero.
func bridgeStamp(t tlsbridge.StepTimes, p Phase) time.Time {
	switch p {
	case PhasePreloginRequest:
		return t.PreloginRequest
	case PhasePreloginResponse:
		return t.PreloginResponse
	case PhaseTLSClientHello:
		return t.ClientHello
	case PhaseTLSServerHello:
		return t.ServerHello
	case PhaseTLSClientFinished:
		return t.ClientFinished
	case PhaseTLSServerFinished:
		return t.ServerFinished
	case PhaseLogin7:
		return t.Login7
	case PhaseLoginResponse:
		return t.LoginResponse
	}
	return time.Time{}
}

// markPhase records that the connection reached p at at, once.
func markPhase(r *Record, p Phase, enc bool, at, held time.Duration) {
	if !r.Reached(p) {
		r.Phases = append(r.Phases, PhaseMark{Phase: p, At: at, Encrypted: enc, Held: held})
		r.Phase = p
	}
}

// fillBridgeTLS fills the record's TLS (the client leg, as a passthrough
// record has it) and the bridge's view of both legs.
func fillBridgeTLS(r *Record, rep *tlsbridge.BridgeReport, bi *record.BridgeInfo, mark func(Phase, bool)) {
	if rep.ClientHello != nil {
		r.TLS = &TLSInfo{Wrapped: rep.Protocol == "tds7", ClientHello: clientHelloInfo(rep.ClientHello)}
		bi.ClientJA4 = rep.ClientHello.JA4()
		mark(PhaseTLSClientHello, false)
	}
	if rep.UpstreamHello != nil {
		bi.UpstreamJA4 = rep.UpstreamHello.JA4()
	}
	bi.ClientTLS, bi.UpstreamTLS = bridgeLeg(rep.Client), bridgeLeg(rep.Upstream)
	if rep.Client != nil && r.TLS != nil {
		r.TLS.Version = tlsbridge.VersionName(rep.Client.Version)
		r.TLS.CipherSuite = tlsbridge.CipherSuiteName(rep.Client.CipherSuite)
		if rep.Client.Cert != nil {
			r.TLS.Certificates = []CertificateInfo{certificateInfo(*rep.Client.Cert)}
		}
		mark(PhaseTLSServerHello, false)
		if !rep.Times.ClientFinished.IsZero() {
			mark(PhaseTLSClientFinished, true)
		}
		mark(PhaseTLSServerFinished, true)
	}
	if d := rep.DHE; d != nil && r.TLS != nil {
		// The client leg was the DHE engine (a DHE scenario's failing
		// Windows server): its suite and group, and where it failed.
		r.TLS.Version = tlsbridge.VersionName(d.Version)
		r.TLS.CipherSuite = tlsbridge.CipherSuiteName(d.CipherSuite)
		r.TLS.KeyExchange = &KeyExchangeInfo{Kind: "DHE", DHPrimeBits: d.PrimeBits, DHGroup: d.Group}
		mark(PhaseTLSServerHello, false)
		if rep.DHEFailed {
			mark(PhaseTLSClientFinished, true)
		}
	}
	if rep.Alert != nil && r.TLS != nil {
		r.TLS.Alerts = append(r.TLS.Alerts, AlertInfo{From: SideProxy, Level: rep.Alert.LevelName(), Description: tlsbridge.AlertName(rep.Alert.Description)})
	}
}

// bridgeLeg is one TLS leg of a bridged connection, as recorded.
func bridgeLeg(l *tlsbridge.TLSLeg) *record.BridgeLeg {
	if l == nil {
		return nil
	}
	out := &record.BridgeLeg{Version: tlsbridge.VersionName(l.Version), CipherSuite: tlsbridge.CipherSuiteName(l.CipherSuite), ALPN: l.ALPN}
	if l.Cert != nil {
		ci := certificateInfo(*l.Cert)
		out.Certificate = &ci
	}
	return out
}

// fillBridgeSession fills the login and what the bridge saw of the TDS
// session.
func fillBridgeSession(r *Record, s *tds.SessionSummary, bi *record.BridgeInfo, mark func(Phase, bool)) {
	if l := s.Login; l != nil {
		li := &LoginInfo{Visible: true, User: l.User, App: l.App, Host: l.Host, Server: l.Server, Database: l.Database,
			Library: l.Library, TDSVersion: fmt.Sprintf("0x%08X", l.TDSVersion)}
		switch s.LoginOutcome {
		case "success":
			li.Outcome = LoginOK
		case "failed":
			li.Outcome = LoginFailed
		default:
			li.Outcome = LoginUnknown
		}
		if s.LoginAck != nil {
			v := s.LoginAck.ProgVersion
			li.ServerVersion = fmt.Sprintf("%d.%d.%d", v[0], v[1], int(v[2])<<8|int(v[3]))
			bi.LoginAckVersion = li.ServerVersion
			bi.LoginAckTDSVersion = fmt.Sprintf("0x%08X", s.LoginAck.TDSVersion)
		}
		if li.Outcome == LoginFailed && len(s.Errors) > 0 {
			li.ErrorNumber, li.ErrorMessage = s.Errors[0].Number, s.Errors[0].Message
		}
		r.Login = li
		mark(PhaseLogin7, true)
		if li.Outcome != LoginUnknown {
			mark(PhaseLoginResponse, true)
		}
		if l.SSPI {
			r.Notes = append(r.Notes, sspiNote)
		}
	}
	for _, e := range s.Errors {
		bi.Errors = append(bi.Errors, record.ServerError{Number: e.Number, State: e.State, Class: e.Class,
			Message: e.Message, Procedure: e.ProcName, Line: e.Line})
	}
	bi.ErrorCount = s.ErrorCount
	bi.Database, bi.Language, bi.PacketSize, bi.Routing = s.Database, s.Language, s.PacketSize, s.Routing
	bi.SQLBatches, bi.RPCs, bi.Procedures, bi.Attentions, bi.Rows = s.SQLBatches, s.RPCs, s.Procedures, s.Attentions, s.Rows
	bi.Queries, bi.DecodeIssues = s.Queries, s.Issues
}

// countConn counts the bytes read from a conn into one of the session's
// byte counters, and returns pre (what a held accept read) first.
type countConn struct {
	net.Conn
	n   interface{ Add(int64) int64 }
	pre []byte
}

func (c *countConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		k := copy(b, c.pre)
		c.pre = c.pre[k:]
		c.n.Add(int64(k))
		return k, nil
	}
	k, err := c.Conn.Read(b)
	c.n.Add(int64(k))
	return k, err
}

// CloseWrite half-closes the underlying TCP conn (the bridge's relay uses it).
func (c *countConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// SetLinger passes a reset close through (tlsbridge resets with it).
func (c *countConn) SetLinger(sec int) error {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		return tc.SetLinger(sec)
	}
	return nil
}
