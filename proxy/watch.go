package proxy

import (
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// The watcher parses a copy of what passes while a connection negotiates and
// turns it into phase events and record fields. It never changes or holds
// back bytes: the session forwards every chunk after the watcher has seen
// it. Anything it cannot parse becomes a ParseIssue and, if it cannot go on,
// the watcher stops and the session falls back to a plain relay.
//
// The watcher is not safe for concurrent use; the session serialises calls.

// Limits on what the watcher buffers per direction. A TDS packet is at most
// 32 KiB (MS-TDS §2.2.3.1.3) and a TLS record at most
// tlsbridge.MaxRecordLen, so a unit never needs more than that; a
// reassembled negotiation message is capped separately.
const (
	// DefaultMaxNegotiationBuffer is the default cap on what the watcher
	// buffers per direction to reassemble one negotiation message.
	DefaultMaxNegotiationBuffer = 256 << 10
	// watchBudget bounds how many bytes per direction the watcher will look
	// at before giving up; a real negotiation is a few KiB.
	watchBudget = 4 << 20
)

// errGiveUp stops the watcher: the rest of the connection is relayed blind.
var errGiveUp = errors.New("stop watching")

type watcher struct {
	rec    *Record
	maxMsg int // cap on a reassembled negotiation message, per direction
	start  time.Time
	now    func() time.Time

	dirs [2]dirWatch
	// tls follows the TLS handshake in both directions: records, handshake
	// messages, and when each direction turns encrypted.
	tls *tlsbridge.Follower

	// state is how far the TDS negotiation has come; done is true once
	// the watcher has stopped (at the end of negotiation, or giving up).
	state negState
	done  bool

	clientEnc  tds.Encryption
	scope      tds.TLSScope
	scopeKnown bool

	suite       uint16
	version     uint16
	tls13       bool
	hsDone      [2]bool // each direction has sent its Finished
	clientHello *tlsbridge.ClientHello
	serverHello *tlsbridge.ServerHello

	// events collects the phase events of the current feed call.
	events []Event
}

// negState is where a connection's TDS negotiation stands (MS-TDS §3.2.5,
// the client's states from Sent Initial PRELOGIN Packet to Logged In). It
// only moves forward. In TDS 8.0 strict the PRELOGIN exchange travels inside
// TLS and is inferred from encrypted records; a client that sends LOGIN7
// first (tds7-login) goes from negStart to negLoginSent.
type negState uint8

const (
	negStart            negState = iota // nothing seen yet
	negPreloginSent                     // the client's PRELOGIN
	negPreloginAnswered                 // the server's PRELOGIN response
	negLoginSent                        // LOGIN7
	negLoginAnswered                    // the login response: negotiation is over
)

type dirWatch struct {
	dir    Direction
	offset int64 // bytes of this direction seen so far
	// pend is what waits for the rest of its unit, in own (during feed, it
	// may be the caller's chunk: keepRest).
	pend []byte
	own  []byte
	// TDS message reassembly.
	msgType    tds.PacketType
	msg        []byte
	msgPackets int
	// Wrapped TLS (TDS 7.x): the handshake travels inside PRELOGIN packets
	// (MS-TDS §2.2.6.5).
	wrapped  bool
	rawNoted bool // a raw handshake record on TDS 7.x was noted
}

func newWatcher(rec *Record, now func() time.Time, maxMsg int) *watcher {
	w := &watcher{rec: rec, start: rec.Start, now: now, maxMsg: maxMsg, tls: tlsbridge.NewFollower(maxMsg)}
	w.dirs[ClientToServer] = dirWatch{dir: ClientToServer}
	w.dirs[ServerToClient] = dirWatch{dir: ServerToClient}
	// A feed completes up to four phases (the server's last TLS 1.3
	// flight: ServerHello, its Finished, then the login response with it).
	w.events = make([]Event, 0, 4)
	if cap(rec.Phases) < len(Phases) {
		// Room for every phase at once, not grown one append at a time.
		rec.Phases = append(make([]PhaseMark, 0, len(Phases)), rec.Phases...)
	}
	return w
}

// feed hands the watcher the next chunk seen in direction dir and returns the
// phase events it completed. b is not retained.
func (w *watcher) feed(dir Direction, b []byte) []Event {
	// The previous events' hello pointers go: they pin handshake bytes.
	clear(w.events)
	w.events = w.events[:0]
	if w.done || len(b) == 0 {
		return nil
	}
	d := &w.dirs[dir]
	if d.offset == 0 && dir == ClientToServer && w.rec.Protocol == "" {
		w.detectProtocol(b[0])
		if w.done {
			return w.events
		}
	}
	if len(d.pend) > 0 {
		d.pend = append(d.pend, b...)
	} else {
		// Nothing pending: parse b where it is. Nothing keeps a slice of
		// what drain parses (a TDS message and the TLS streams keep
		// copies), and keepRest copies what is left, so a chunk of whole
		// units is never copied (issue 17: allocations per login).
		d.pend = b
	}
	err := w.drain(d)
	if !w.done {
		d.keepRest()
	}
	d.offset += int64(len(b))
	if err == nil && d.offset > watchBudget {
		err = fmt.Errorf("%w: negotiation not finished after %d bytes", errGiveUp, d.offset)
	}
	if err != nil {
		w.stop(d, err)
	}
	return w.events
}

// detectProtocol tells TDS 7.x from TDS 8.0 strict by the first byte, as SQL
// Server does (MS-TDS §3.3.5.1).
func (w *watcher) detectProtocol(first byte) {
	switch {
	case first == byte(tds.PacketPrelogin):
		w.rec.Protocol = ProtocolTDS7
	case first == byte(tlsbridge.ContentHandshake):
		w.rec.Protocol = ProtocolStrict
	case first == byte(tds.PacketLogin7):
		w.rec.Protocol = ProtocolTDS7Login
	default:
		w.rec.Protocol = ProtocolNotTDS
		w.issue(ClientToServer, "first byte", fmt.Errorf("0x%02X is neither a PRELOGIN packet (0x12) nor a TLS handshake record (0x16)", first))
		w.stopWatching("the client does not speak TDS")
	}
}

// drain consumes every complete unit (TDS packet or raw TLS record) in d.pend.
func (w *watcher) drain(d *dirWatch) error {
	for !w.done && len(d.pend) > 0 {
		var n int
		var err error
		first := d.pend[0]
		if w.rec.Protocol == ProtocolStrict && !tlsbridge.IsRecordStart(first) {
			// TDS 8.0 carries everything inside TLS (MS-TDS §3.3.5.1).
			return fmt.Errorf("%w: byte 0x%02X where a TLS record was due on a TDS 8.0 strict connection", errGiveUp, first)
		}
		if tlsbridge.IsRecordStart(first) {
			if first == byte(tlsbridge.ContentHandshake) && w.rec.Protocol == ProtocolTDS7 && !d.wrapped && !w.hsDone[d.dir] && !d.rawNoted {
				d.rawNoted = true
				w.note(fmt.Sprintf("raw TLS handshake record %s on a TDS 7.x connection, where the handshake travels inside PRELOGIN packets (MS-TDS §2.2.6.5)", d.dir))
			}
			n, err = w.rawRecord(d)
		} else {
			n, err = w.tdsPacket(d)
		}
		if err != nil {
			return err
		}
		if n == 0 || w.done {
			break // need more bytes, or stopped watching (pend is gone)
		}
		d.pend = d.pend[n:]
	}
	return nil
}

// keepRest moves what drain left of d.pend (a slice of the caller's chunk,
// or of d.own) into d.own, which the watcher owns. An array grown past two
// records for one large unit is not kept for the next ones.
func (d *dirWatch) keepRest() {
	if len(d.pend) == 0 {
		d.pend = d.own[:0]
		return
	}
	if cap(d.own) > 2*tlsbridge.MaxRecordLen {
		d.own = nil
	}
	// copy moves overlapping bytes correctly when d.pend lies in d.own.
	d.own = append(d.own[:0], d.pend...)
	d.pend = d.own
}

func (w *watcher) rawRecord(d *dirWatch) (int, error) {
	if len(d.pend) < tlsbridge.RecordHeaderLen {
		return 0, nil
	}
	h, err := tlsbridge.ParseRecordHeader(d.pend)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errGiveUp, err)
	}
	n := tlsbridge.RecordHeaderLen + h.Length
	if len(d.pend) < n {
		return 0, nil
	}
	if err := w.tlsBytes(d, d.pend[:n]); err != nil {
		return 0, err
	}
	return n, nil
}

func (w *watcher) tdsPacket(d *dirWatch) (int, error) {
	if len(d.pend) < tds.HeaderLen {
		return 0, nil
	}
	h, err := tds.ParseHeader(d.pend)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errGiveUp, err)
	}
	if len(d.pend) < int(h.Length) {
		return 0, nil
	}
	payload := d.pend[tds.HeaderLen:h.Length]
	if (h.Type == tds.PacketPrelogin || h.Type == tds.PacketReply) && d.msgPackets == 0 && w.state >= negPreloginSent &&
		(w.tls.MidRecord(tlsDir(d.dir)) || tlsbridge.LooksLikeRecord(payload)) {
		// TLS handshake bytes carried in PRELOGIN packets (TDS 7.x); a
		// record may span packets, so a packet that continues one is TLS
		// whatever its first bytes look like.
		d.wrapped = true
		tlsOf(w.rec).Wrapped = true
		return int(h.Length), w.tlsBytes(d, payload)
	}
	if d.msgPackets > 0 && h.Type != d.msgType {
		return 0, fmt.Errorf("%w: %s packet inside a %s message", errGiveUp, h.Type, d.msgType)
	}
	d.msgType = h.Type
	d.msgPackets++
	if len(d.msg)+len(payload) > w.maxMsg {
		// A large message (a big SQL batch, bulk data) means negotiation is
		// over or this is not what we think; stop rather than buffer it.
		return 0, fmt.Errorf("%w: %s message larger than %d bytes (max_negotiation_buffer)", errGiveUp, h.Type, w.maxMsg)
	}
	d.msg = append(d.msg, payload...)
	if h.Status.EOM() {
		msg := d.msg
		d.msg, d.msgPackets = d.msg[:0], 0
		if err := w.tdsMessage(d, h.Type, msg); err != nil {
			return 0, err
		}
	}
	return int(h.Length), nil
}

// tdsMessage handles one complete plaintext TDS message.
func (w *watcher) tdsMessage(d *dirWatch, t tds.PacketType, msg []byte) error {
	switch {
	case d.dir == ClientToServer && t == tds.PacketPrelogin && w.state == negStart:
		w.state = negPreloginSent
		p, err := tds.ParsePrelogin(msg)
		if err != nil {
			w.issue(d.dir, "PRELOGIN request", err)
		} else {
			for _, o := range p.Oddities() {
				w.note("PRELOGIN request: " + o)
			}
			side := preloginSide(p)
			preloginOf(w.rec).Client = side
			w.clientEnc, _ = p.Encryption()
		}
		w.mark(PhasePreloginRequest, d.dir, false)
	case d.dir == ServerToClient && t == tds.PacketReply && w.state == negPreloginSent:
		w.state = negPreloginAnswered
		p, err := tds.ParsePrelogin(msg)
		if err != nil {
			w.issue(d.dir, "PRELOGIN response", err)
		} else {
			for _, o := range p.Oddities() {
				w.note("PRELOGIN response: " + o)
			}
			preloginOf(w.rec).Server = preloginSide(p)
			if reply, ok := p.Encryption(); ok {
				w.scope = tds.ScopeOf(w.clientEnc, reply)
				w.scopeKnown = true
				preloginOf(w.rec).Scope = w.scope.String()
			}
		}
		w.mark(PhasePreloginResponse, d.dir, false)
		if w.scopeKnown && w.scope == tds.ScopeTerminated {
			w.stopWatching("encryption negotiation says the connection is terminated")
		}
	case d.dir == ClientToServer && t == tds.PacketLogin7 && w.state < negLoginSent:
		w.state = negLoginSent
		l, err := tds.ParseLogin7(msg)
		li := loginOf(w.rec)
		if err != nil {
			w.issue(d.dir, "LOGIN7", err)
		} else {
			fillLogin(li, l)
		}
		w.mark(PhaseLogin7, d.dir, false)
	case d.dir == ServerToClient && t == tds.PacketReply && w.state == negLoginSent:
		return w.loginResponse(d, msg)
	case d.dir == ClientToServer && t == tds.PacketSSPI, d.dir == ClientToServer && t == tds.PacketFedAuthToken:
		// Integrated or federated authentication continues the login; keep
		// watching for the response.
	default:
		if w.state == negLoginAnswered {
			w.stopWatching("negotiation is over")
			return nil
		}
		w.note(fmt.Sprintf("unexpected %s message (%d bytes) %s in phase %s", t, len(msg), d.dir, w.rec.Phase))
	}
	return nil
}

func (w *watcher) loginResponse(d *dirWatch, msg []byte) error {
	resp, err := tds.ParseLoginResponse(msg)
	li := loginOf(w.rec)
	switch {
	case resp != nil && resp.Ack != nil:
		li.Outcome = LoginOK
		li.ServerVersion = fmt.Sprintf("%d.%d.%d.%d", resp.Ack.ProgVersion[0], resp.Ack.ProgVersion[1], resp.Ack.ProgVersion[2], resp.Ack.ProgVersion[3])
	case resp != nil && len(resp.Errors) > 0:
		li.Outcome = LoginFailed
		li.ErrorNumber = resp.Errors[0].Number
		li.ErrorMessage = resp.Errors[0].Message
	case err != nil:
		w.issue(d.dir, "login response", err)
		li.Outcome = LoginUnknown
	default:
		// SSPI or federated authentication continues: wait for the next reply.
		return nil
	}
	w.state = negLoginAnswered
	w.mark(PhaseLoginResponse, d.dir, false)
	if li.Outcome != LoginFailed {
		w.mark(PhaseEstablished, d.dir, false)
	}
	w.stopWatching("negotiation is over")
	return nil
}

// tlsDir is the follower's name for a direction.
func tlsDir(d Direction) tlsbridge.Direction {
	if d == ServerToClient {
		return tlsbridge.ServerToClient
	}
	return tlsbridge.ClientToServer
}

// tlsBytes feeds TLS bytes (raw, or unwrapped from PRELOGIN packets) to the
// follower and acts on its events.
func (w *watcher) tlsBytes(d *dirWatch, b []byte) error {
	evs, err := w.tls.Feed(tlsDir(d.dir), b)
	for i := range evs {
		if herr := w.tlsEvent(d, &evs[i]); herr != nil {
			return herr
		}
		if w.done {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("%w: TLS %s: %w", errGiveUp, d.dir, err)
	}
	return nil
}

func (w *watcher) tlsEvent(d *dirWatch, ev *tlsbridge.Event) error {
	ti := tlsOf(w.rec)
	switch ev.Kind {
	case tlsbridge.EventHandshake:
		return w.handshake(d, ev)
	case tlsbridge.EventAlert:
		if ev.Alert != nil && room(w.rec, len(ti.Alerts)) {
			ti.Alerts = append(ti.Alerts, AlertInfo{
				From:        d.dir.sender(),
				Level:       ev.Alert.LevelName(),
				Description: tlsbridge.AlertName(ev.Alert.Description),
			})
		}
	case tlsbridge.EventEncrypted:
		if !w.hsDone[d.dir] {
			w.hsDone[d.dir] = true
			p := PhaseTLSClientFinished
			if d.dir == ServerToClient {
				p = PhaseTLSServerFinished
			}
			w.mark(p, d.dir, true)
			return nil
		}
		if ev.RecordType == tlsbridge.ContentApplicationData {
			w.appData(d)
		}
	}
	return nil
}

func (w *watcher) handshake(d *dirWatch, ev *tlsbridge.Event) error {
	ti := tlsOf(w.rec)
	m := ev.Handshake
	switch {
	case d.dir == ClientToServer && m.Type == tlsbridge.HandshakeClientHello:
		ch, err := tlsbridge.ParseClientHello(m.Raw)
		if err != nil {
			w.issue(d.dir, "ClientHello", err)
		} else {
			w.clientHello = ch
			ti.ClientHello = clientHelloInfo(ch)
		}
		w.mark(PhaseTLSClientHello, d.dir, false)
	case d.dir == ServerToClient && m.Type == tlsbridge.HandshakeServerHello:
		// The follower has parsed it and switched both directions for
		// TLS 1.3 or a HelloRetryRequest already.
		sh := ev.ServerHello
		if sh == nil {
			w.issue(d.dir, "ServerHello", ev.Err)
			w.mark(PhaseTLSServerHello, d.dir, false)
			return nil
		}
		w.serverHello = sh
		ti.ServerHello = serverHelloInfo(sh)
		if sh.IsHelloRetryRequest() {
			// TLS 1.3 but no keys yet: the next ClientHello is still
			// plaintext (RFC 8446 §4.1.4).
			w.note("server sent a HelloRetryRequest")
			return nil
		}
		w.suite, w.version, w.tls13 = w.tls.CipherSuite(), w.tls.Version(), w.tls.TLS13()
		ti.Version = tlsbridge.VersionName(w.version)
		ti.CipherSuite = tlsbridge.CipherSuiteName(w.suite)
		w.mark(PhaseTLSServerHello, d.dir, false)
	case d.dir == ServerToClient && m.Type == tlsbridge.HandshakeCertificate:
		cm, err := tlsbridge.ParseCertificateMsg(m.Raw, w.tls13)
		if err != nil {
			w.issue(d.dir, "Certificate", err)
			return nil
		}
		for _, der := range cm.Chain {
			if !room(w.rec, len(ti.Certificates)) {
				break
			}
			cs, err := summarizeCertificate(der)
			if err != nil {
				w.issue(d.dir, "certificate", err)
				continue
			}
			ti.Certificates = append(ti.Certificates, certificateInfo(cs))
		}
	case d.dir == ServerToClient && m.Type == tlsbridge.HandshakeServerKeyExchange:
		ske, err := tlsbridge.ParseServerKeyExchange(m.Raw, w.suite, w.version)
		if err != nil {
			w.issue(d.dir, "ServerKeyExchange", err)
			return nil
		}
		ti.KeyExchange = keyExchangeInfo(ske)
	}
	return nil
}

// appData handles an application-data record sent after the direction's
// Finished. Its content is encrypted, so the phases are inferred from who
// speaks: TDS 7.x sends LOGIN7 as the client's first application record
// (raw on TCP), and TDS 8.0 strict sends PRELOGIN then LOGIN7 inside TLS.
// Server records that come before the client has spoken (TLS 1.3 session
// tickets) are not a reply to anything and are skipped.
func (w *watcher) appData(d *dirWatch) {
	strict := w.rec.Protocol == ProtocolStrict
	if d.dir == ClientToServer {
		switch {
		case strict && w.state == negStart:
			w.state = negPreloginSent
			w.mark(PhasePreloginRequest, d.dir, true)
		case (!strict || w.state >= negPreloginAnswered) && w.state < negLoginSent:
			w.state = negLoginSent
			loginOf(w.rec)
			w.mark(PhaseLogin7, d.dir, true)
		}
		return
	}
	switch {
	case strict && w.state == negPreloginSent:
		w.state = negPreloginAnswered
		w.mark(PhasePreloginResponse, d.dir, true)
	case w.state == negLoginSent:
		w.state = negLoginAnswered
		loginOf(w.rec).Outcome = LoginUnknown
		w.mark(PhaseLoginResponse, d.dir, true)
		w.mark(PhaseEstablished, d.dir, true)
		w.stopWatching("negotiation is over (login response encrypted)")
	}
}

func (w *watcher) mark(p Phase, dir Direction, encrypted bool) {
	at := w.now().Sub(w.start)
	w.rec.Phase = p
	// Each phase is listed once, when first reached (a second ClientHello
	// after a HelloRetryRequest, or a hostile flood of them, adds nothing);
	// the event still goes to the decider.
	if !w.rec.Reached(p) {
		w.rec.Phases = append(w.rec.Phases, PhaseMark{Phase: p, At: at, Encrypted: encrypted})
	}
	w.events = append(w.events, Event{Phase: p, Dir: dir, Encrypted: encrypted, ClientHello: w.clientHello, ServerHello: w.serverHello})
}

func (w *watcher) issue(dir Direction, what string, err error) {
	if !room(w.rec, len(w.rec.ParseIssues)) {
		return
	}
	w.rec.ParseIssues = append(w.rec.ParseIssues, ParseIssue{
		Direction: dir.String(), Phase: w.rec.Phase, Offset: w.dirs[dir].offset,
		What: what, Error: err.Error(),
	})
}

func (w *watcher) note(s string) {
	if room(w.rec, len(w.rec.Notes)) {
		w.rec.Notes = append(w.rec.Notes, s)
	}
}

// ended is called when direction dir's stream ends while the watcher still
// looks: a stream that stops inside a packet or record is what a broken or
// hostile peer leaves behind, and the record should say so.
func (w *watcher) ended(dir Direction) {
	if w.done {
		return
	}
	d := &w.dirs[dir]
	switch {
	case len(d.pend) > 0:
		w.issue(dir, "stream", fmt.Errorf("ended inside a TDS packet or TLS record (%d bytes of it received)", len(d.pend)))
	case d.msgPackets > 0:
		w.issue(dir, "stream", fmt.Errorf("ended inside a %s message (%d packets without end of message)", d.msgType, d.msgPackets))
	}
}

func (w *watcher) stop(d *dirWatch, err error) {
	if !errors.Is(err, errGiveUp) {
		err = fmt.Errorf("%w: %w", errGiveUp, err)
	}
	w.issue(d.dir, "stream", err)
	w.stopWatching("parse failed; relaying without parsing")
}

func (w *watcher) stopWatching(why string) {
	if w.done {
		return
	}
	w.done = true
	w.rec.Watching = false
	w.note("stopped watching: " + why)
	// Drop every buffer: an established connection keeps only its record.
	for i := range w.dirs {
		w.dirs[i].pend, w.dirs[i].own, w.dirs[i].msg = nil, nil, nil
	}
	w.tls = nil
	// The parsed hellos keep slices of handshake bytes; the record has
	// what it needs from them, and events already built keep their own
	// pointers.
	w.clientHello, w.serverHello = nil, nil
}

func preloginSide(p *tds.Prelogin) *PreloginSide {
	s := &PreloginSide{}
	if len(p.Options) > 0 {
		s.Options = make([]string, 0, len(p.Options))
	}
	for _, o := range p.Options {
		s.Options = append(s.Options, o.Token.String())
	}
	if raw, ok := p.Get(tds.PreloginVersion); ok {
		s.VersionHex = hex.EncodeToString(raw)
	}
	if v, ok := p.Version(); ok {
		s.Version = v.String()
	}
	if e, ok := p.Encryption(); ok {
		s.Encryption = e.String()
	}
	s.Instance, _ = p.Instance()
	s.ThreadID, _ = p.ThreadID()
	if m, ok := p.MARS(); ok {
		s.MARS = &m
	}
	if t, ok := p.TraceID(); ok {
		s.ConnectionID = t.ConnectionID.String()
		s.ActivityID = t.ActivityID.String()
	}
	if f, ok := p.FedAuthRequired(); ok {
		s.FedAuthRequired = &f
	}
	_, s.Nonce = p.Nonce()
	return s
}

// fillLogin copies LOGIN7's visible fields. The password is deliberately
// not among them.
func fillLogin(li *LoginInfo, l *tds.Login7) {
	li.Visible = true
	li.User = l.UserName
	li.App = l.AppName
	li.Host = l.HostName
	li.Server = l.ServerName
	li.Database = l.Database
	li.Library = l.LibraryName
	li.LibraryVersion = l.ClientProgVersion()
	li.TDSVersion = fmt.Sprintf("0x%08X", l.TDSVersion)
	li.PacketSize = l.PacketSize
}
