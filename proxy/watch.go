package proxy

import (
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
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
// 32 KiB (MS-TDS §2.2.3.1.3) and a TLS record at most 2^14+2048 bytes of
// ciphertext (RFC 5246 §6.2.3), so a unit never needs more than that; a
// reassembled negotiation message is capped separately.
const (
	maxTLSRecord = 1<<14 + 2048
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

	preloginReq, preloginResp bool
	clientEnc                 tds.Encryption
	scope                     tds.TLSScope
	scopeKnown                bool

	suite       uint16
	version     uint16
	tls13       bool
	hsDone      [2]bool // each direction has sent its Finished
	login7      bool
	loginResp   bool
	strictPre   [2]bool // TDS 8.0: encrypted PRELOGIN request/response seen
	done        bool
	clientHello *tlsbridge.ClientHello
	serverHello *tlsbridge.ServerHello

	// events collects the phase events of the current feed call.
	events []Event
}

type dirWatch struct {
	dir    Direction
	offset int64 // bytes of this direction seen so far
	pend   []byte
	// TDS message reassembly.
	msgType    tds.PacketType
	msg        []byte
	msgPackets int
	tls        *tlsbridge.Stream
	// Wrapped TLS (TDS 7.x): a record may span PRELOGIN packets, so track
	// record boundaries to know whether the next packet continues one.
	wrapped   bool
	recHdr    []byte // partial record header
	recRemain int    // bytes left in the current record
	rawNoted  bool   // a raw handshake record on TDS 7.x was noted
}

// midRecord reports whether the wrapped TLS stream stopped inside a record.
func (d *dirWatch) midRecord() bool { return d.recRemain > 0 || len(d.recHdr) > 0 }

// trackRecords advances the record-boundary tracker over wrapped bytes.
func (d *dirWatch) trackRecords(b []byte) {
	for len(b) > 0 {
		if d.recRemain > 0 {
			n := min(d.recRemain, len(b))
			d.recRemain -= n
			b = b[n:]
			continue
		}
		need := 5 - len(d.recHdr)
		n := min(need, len(b))
		d.recHdr = append(d.recHdr, b[:n]...)
		b = b[n:]
		if len(d.recHdr) == 5 {
			d.recRemain = int(d.recHdr[3])<<8 | int(d.recHdr[4])
			d.recHdr = d.recHdr[:0]
		}
	}
}

func newWatcher(rec *Record, now func() time.Time, maxMsg int) *watcher {
	w := &watcher{rec: rec, start: rec.Start, now: now, maxMsg: maxMsg}
	w.dirs[ClientToServer] = dirWatch{dir: ClientToServer, tls: tlsbridge.NewStream(tlsbridge.ClientToServer)}
	w.dirs[ServerToClient] = dirWatch{dir: ServerToClient, tls: tlsbridge.NewStream(tlsbridge.ServerToClient)}
	for i := range w.dirs {
		w.dirs[i].tls.MaxBuffered = maxMsg
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
	d.pend = append(d.pend, b...)
	err := w.drain(d)
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
		w.rec.Protocol = "tds7"
	case first == recordHandshake:
		w.rec.Protocol = "tds8-strict"
	case first == byte(tds.PacketLogin7):
		w.rec.Protocol = "tds7-login"
	default:
		w.rec.Protocol = "not-tds"
		w.issue(ClientToServer, "first byte", fmt.Errorf("0x%02X is neither a PRELOGIN packet (0x12) nor a TLS handshake record (0x16)", first))
		w.stopWatching("the client does not speak TDS")
	}
}

// TLS record content types (RFC 8446 §5.1); a TDS packet type is never in
// 0x14..0x17, which is how a unit boundary tells the two apart.
const (
	recordCCS       = 0x14
	recordAlert     = 0x15
	recordHandshake = 0x16
	recordAppData   = 0x17
)

func isTLSRecordStart(b byte) bool { return b >= recordCCS && b <= recordAppData }

// looksLikeTLS reports whether a PRELOGIN/reply packet payload carries a TLS
// record rather than a PRELOGIN or token stream: a record type followed by
// major version 3. A PRELOGIN payload starts with token 0x00 (VERSION) and a
// login response with a token (0xE3, 0xAA, 0xAD...), so neither matches.
func looksLikeTLS(p []byte) bool {
	return len(p) >= 2 && isTLSRecordStart(p[0]) && p[1] == 3
}

// drain consumes every complete unit (TDS packet or raw TLS record) in d.pend.
func (w *watcher) drain(d *dirWatch) error {
	for !w.done && len(d.pend) > 0 {
		var n int
		var err error
		first := d.pend[0]
		if w.rec.Protocol == "tds8-strict" && !isTLSRecordStart(first) {
			// TDS 8.0 carries everything inside TLS (MS-TDS §3.3.5.1).
			return fmt.Errorf("%w: byte 0x%02X where a TLS record was due on a TDS 8.0 strict connection", errGiveUp, first)
		}
		if isTLSRecordStart(first) {
			if first == recordHandshake && w.rec.Protocol == "tds7" && !d.wrapped && !w.hsDone[d.dir] && !d.rawNoted {
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
	// Keep what is left in a fresh slice so the backing array does not grow
	// without bound across feeds.
	if len(d.pend) == 0 {
		d.pend = d.pend[:0]
	} else if cap(d.pend) > 2*maxTLSRecord {
		d.pend = append([]byte(nil), d.pend...)
	}
	return nil
}

func (w *watcher) rawRecord(d *dirWatch) (int, error) {
	if len(d.pend) < 5 {
		return 0, nil
	}
	n := int(d.pend[3])<<8 | int(d.pend[4])
	if n > maxTLSRecord {
		return 0, fmt.Errorf("%w: TLS record of %d bytes exceeds %d", errGiveUp, n, maxTLSRecord)
	}
	if len(d.pend) < 5+n {
		return 0, nil
	}
	if err := w.tlsBytes(d, d.pend[:5+n]); err != nil {
		return 0, err
	}
	return 5 + n, nil
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
	if (h.Type == tds.PacketPrelogin || h.Type == tds.PacketReply) && d.msgPackets == 0 && w.preloginReq &&
		(d.midRecord() || looksLikeTLS(payload)) {
		// TLS handshake bytes carried in PRELOGIN packets (TDS 7.x).
		d.wrapped = true
		w.rec.tls().Wrapped = true
		d.trackRecords(payload)
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
	case d.dir == ClientToServer && t == tds.PacketPrelogin && !w.preloginReq:
		w.preloginReq = true
		p, err := tds.ParsePrelogin(msg)
		if err != nil {
			w.issue(d.dir, "PRELOGIN request", err)
		} else {
			for _, o := range preloginOddities(msg, p) {
				w.note("PRELOGIN request: " + o)
			}
			side := preloginSide(p)
			w.rec.prelogin().Client = side
			w.clientEnc, _ = p.Encryption()
		}
		w.mark(PhasePreloginRequest, d.dir, false)
	case d.dir == ServerToClient && t == tds.PacketReply && w.preloginReq && !w.preloginResp:
		w.preloginResp = true
		p, err := tds.ParsePrelogin(msg)
		if err != nil {
			w.issue(d.dir, "PRELOGIN response", err)
		} else {
			for _, o := range preloginOddities(msg, p) {
				w.note("PRELOGIN response: " + o)
			}
			w.rec.prelogin().Server = preloginSide(p)
			if reply, ok := p.Encryption(); ok {
				w.scope = scopeFromReply(w.clientEnc, reply)
				w.scopeKnown = true
				w.rec.prelogin().Scope = w.scope.String()
			}
		}
		w.mark(PhasePreloginResponse, d.dir, false)
		if w.scopeKnown && w.scope == tds.ScopeTerminated {
			w.stopWatching("encryption negotiation says the connection is terminated")
		}
	case d.dir == ClientToServer && t == tds.PacketLogin7 && !w.login7:
		w.login7 = true
		l, err := tds.ParseLogin7(msg)
		li := w.rec.login()
		if err != nil {
			w.issue(d.dir, "LOGIN7", err)
		} else {
			fillLogin(li, l)
		}
		w.mark(PhaseLogin7, d.dir, false)
	case d.dir == ServerToClient && t == tds.PacketReply && w.login7 && !w.loginResp:
		return w.loginResponse(d, msg)
	case d.dir == ClientToServer && t == tds.PacketSSPI, d.dir == ClientToServer && t == tds.PacketFedAuthToken:
		// Integrated or federated authentication continues the login; keep
		// watching for the response.
	default:
		if w.loginResp {
			w.stopWatching("negotiation is over")
			return nil
		}
		w.note(fmt.Sprintf("unexpected %s message (%d bytes) %s in phase %s", t, len(msg), d.dir, w.rec.Phase))
	}
	return nil
}

func (w *watcher) loginResponse(d *dirWatch, msg []byte) error {
	resp, err := tds.ParseLoginResponse(msg)
	li := w.rec.login()
	switch {
	case resp != nil && resp.Ack != nil:
		li.Outcome = "ok"
		li.ServerVersion = fmt.Sprintf("%d.%d.%d.%d", resp.Ack.ProgVersion[0], resp.Ack.ProgVersion[1], resp.Ack.ProgVersion[2], resp.Ack.ProgVersion[3])
	case resp != nil && len(resp.Errors) > 0:
		li.Outcome = "failed"
		li.ErrorNumber = resp.Errors[0].Number
		li.ErrorMessage = resp.Errors[0].Message
	case err != nil:
		w.issue(d.dir, "login response", err)
		li.Outcome = "unknown"
	default:
		// SSPI or federated authentication continues: wait for the next reply.
		return nil
	}
	w.loginResp = true
	w.mark(PhaseLoginResponse, d.dir, false)
	if li.Outcome != "failed" {
		w.mark(PhaseEstablished, d.dir, false)
	}
	w.stopWatching("negotiation is over")
	return nil
}

// tlsBytes feeds TLS bytes (raw, or unwrapped from PRELOGIN packets) to the
// direction's record stream and acts on its events.
func (w *watcher) tlsBytes(d *dirWatch, b []byte) error {
	evs, err := d.tls.Feed(b)
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
	ti := w.rec.tls()
	switch ev.Kind {
	case tlsbridge.EventHandshake:
		return w.handshake(d, ev.Handshake)
	case tlsbridge.EventAlert:
		if ev.Alert != nil && w.rec.room(len(ti.Alerts)) {
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

func (w *watcher) handshake(d *dirWatch, m *tlsbridge.HandshakeMessage) error {
	ti := w.rec.tls()
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
		sh, err := tlsbridge.ParseServerHello(m.Raw)
		if err != nil {
			w.issue(d.dir, "ServerHello", err)
			w.mark(PhaseTLSServerHello, d.dir, false)
			return nil
		}
		w.serverHello = sh
		ti.ServerHello = serverHelloInfo(sh)
		if sh.IsHelloRetryRequest() {
			// A HelloRetryRequest means TLS 1.3 but no keys yet: the next
			// ClientHello is still plaintext (RFC 8446 §4.1.4).
			w.note("server sent a HelloRetryRequest")
			w.dirs[ClientToServer].tls.SetTLS13()
			w.dirs[ServerToClient].tls.SetTLS13()
			return nil
		}
		w.suite, w.version = sh.CipherSuite, sh.Version()
		ti.Version = tlsbridge.VersionName(w.version)
		ti.CipherSuite = tlsbridge.CipherSuiteName(w.suite)
		if w.version >= tls.VersionTLS13 {
			// RFC 8446 §2: everything after ServerHello is encrypted.
			w.tls13 = true
			w.dirs[ClientToServer].tls.SetEncrypted()
			w.dirs[ServerToClient].tls.SetEncrypted()
		}
		w.mark(PhaseTLSServerHello, d.dir, false)
	case d.dir == ServerToClient && m.Type == tlsbridge.HandshakeCertificate:
		cm, err := tlsbridge.ParseCertificateMsg(m.Raw, w.tls13)
		if err != nil {
			w.issue(d.dir, "Certificate", err)
			return nil
		}
		for _, der := range cm.Chain {
			if !w.rec.room(len(ti.Certificates)) {
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
	strict := w.rec.Protocol == "tds8-strict"
	if d.dir == ClientToServer {
		switch {
		case strict && !w.strictPre[ClientToServer]:
			w.strictPre[ClientToServer] = true
			w.mark(PhasePreloginRequest, d.dir, true)
		case (!strict || w.strictPre[ServerToClient]) && !w.login7:
			w.login7 = true
			w.rec.login()
			w.mark(PhaseLogin7, d.dir, true)
		}
		return
	}
	switch {
	case strict && w.strictPre[ClientToServer] && !w.strictPre[ServerToClient]:
		w.strictPre[ServerToClient] = true
		w.mark(PhasePreloginResponse, d.dir, true)
	case w.login7 && !w.loginResp:
		w.loginResp = true
		w.rec.login().Outcome = "unknown"
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
	if !w.rec.room(len(w.rec.ParseIssues)) {
		return
	}
	w.rec.ParseIssues = append(w.rec.ParseIssues, ParseIssue{
		Direction: dir.String(), Phase: w.rec.Phase, Offset: w.dirs[dir].offset,
		What: what, Error: err.Error(),
	})
}

func (w *watcher) note(s string) {
	if w.rec.room(len(w.rec.Notes)) {
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
		w.dirs[i].pend, w.dirs[i].msg, w.dirs[i].recHdr = nil, nil, nil
		w.dirs[i].tls = nil
	}
	// The parsed hellos keep slices of handshake bytes; the record has
	// what it needs from them, and events already built keep their own
	// pointers.
	w.clientHello, w.serverHello = nil, nil
}

// preloginOddities lists what a PRELOGIN does that no SQL Server client or
// server does: VERSION not first (SQL Server closes such a connection), an
// option given twice (only the first is used), option data that overlap.
// ParsePrelogin accepts all of them so that the original bytes are kept;
// the record still says so. payload must have passed ParsePrelogin.
func preloginOddities(payload []byte, p *tds.Prelogin) []string {
	var out []string
	if len(p.Options) > 0 && p.Options[0].Token != tds.PreloginVersion {
		out = append(out, "VERSION is not the first option")
	}
	var seen [256]bool
	type span struct {
		tok        tds.PreloginToken
		start, end int
	}
	spans := make([]span, 0, len(p.Options))
	// Walk the option table again for the offsets (MS-TDS §2.2.6.5); the
	// parse has already checked every entry.
	for i := 0; i+5 <= len(payload) && payload[i] != byte(tds.PreloginTerminator); i += 5 {
		tok := tds.PreloginToken(payload[i])
		if seen[tok] && len(out) < 8 {
			out = append(out, fmt.Sprintf("option %s appears more than once (the first is used)", tok))
		}
		seen[tok] = true
		start := int(payload[i+1])<<8 | int(payload[i+2])
		if n := int(payload[i+3])<<8 | int(payload[i+4]); n > 0 {
			spans = append(spans, span{tok, start, start + n})
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			out = append(out, fmt.Sprintf("data of options %s and %s overlap", spans[i-1].tok, spans[i].tok))
			break
		}
	}
	return out
}

// scopeFromReply derives what TLS covers from the client's request and the
// server's reply (MS-TDS §2.2.6.5; PROTOCOL.md's table seen from the wire).
func scopeFromReply(client, reply tds.Encryption) tds.TLSScope {
	c := client.Base()
	switch reply.Base() {
	case tds.EncryptOff:
		return tds.ScopeLoginOnly
	case tds.EncryptOn:
		return tds.ScopeSession
	case tds.EncryptReq:
		if c == tds.EncryptNotSup {
			return tds.ScopeTerminated
		}
		return tds.ScopeSession
	case tds.EncryptNotSup:
		if c == tds.EncryptOn || c == tds.EncryptReq {
			return tds.ScopeTerminated
		}
		return tds.ScopeNone
	}
	return tds.ScopeTerminated
}

func preloginSide(p *tds.Prelogin) *PreloginSide {
	s := &PreloginSide{}
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

func (r *Record) prelogin() *PreloginInfo {
	if r.Prelogin == nil {
		r.Prelogin = &PreloginInfo{}
	}
	return r.Prelogin
}

func (r *Record) tls() *TLSInfo {
	if r.TLS == nil {
		r.TLS = &TLSInfo{}
	}
	return r.TLS
}

func (r *Record) login() *LoginInfo {
	if r.Login == nil {
		r.Login = &LoginInfo{}
	}
	return r.Login
}
