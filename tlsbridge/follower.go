package tlsbridge

// A Follower watches both directions of one TLS handshake as a passive
// observer and applies what only the pair can know: a ServerHello decides
// for both directions whether the rest is TLS 1.3 (encrypted from the next
// record on, RFC 8446 §2) or, for a HelloRetryRequest, TLS 1.3 still in
// plaintext (RFC 8446 §4.1.4). A proxy feeds it each direction's TLS bytes
// (raw, or unwrapped from TDS PRELOGIN packets) in any chunks.
//
// The switch happens at the exact record boundary: Feed hands the Streams
// one record at a time, so records that follow a ServerHello in the same
// chunk are already read with the new keys' rules. A Follower is not safe
// for concurrent use.
type Follower struct {
	// The Streams live in the Follower: one allocation for the three.
	streams [2]Stream

	version uint16 // negotiated version, from the ServerHello
	suite   uint16 // negotiated cipher suite
	tls13   bool

	events []Event
}

// NewFollower returns a Follower whose Streams each buffer at most
// maxBuffered bytes between calls (0: DefaultMaxBuffered).
func NewFollower(maxBuffered int) *Follower {
	// A record completes at most a few events in a handshake; room for
	// them at once rather than grown per Feed.
	f := &Follower{events: make([]Event, 0, 4)}
	for d := range f.streams {
		f.streams[d] = Stream{dir: Direction(d), MaxBuffered: maxBuffered}
	}
	return f
}

// Stream returns the Stream that follows direction d.
func (f *Follower) Stream(d Direction) *Stream { return &f.streams[d] }

// Version is the version the ServerHello selected (0 before it).
func (f *Follower) Version() uint16 { return f.version }

// CipherSuite is the suite the ServerHello selected (0 before it).
func (f *Follower) CipherSuite() uint16 { return f.suite }

// TLS13 reports whether the ServerHello selected TLS 1.3.
func (f *Follower) TLS13() bool { return f.tls13 }

// MidRecord reports whether direction d stopped inside a record: a TDS 7.x
// peer may split one record across PRELOGIN packets, so the next packet of
// that direction continues it whatever its first bytes look like.
func (f *Follower) MidRecord(d Direction) bool { return f.streams[d].midRecord() }

// Feed consumes the next bytes of direction d and returns the events they
// completed, in order. A ServerHello event carries the parsed message in
// Event.ServerHello, or the parse error in Event.Err; the Follower has
// already applied it to both Streams. The returned slice is reused by the
// next call; the values it points to are not. On error the events before it
// come back with it, and direction d's Stream has stopped.
func (f *Follower) Feed(d Direction, b []byte) ([]Event, error) {
	clear(f.events)
	f.events = f.events[:0]
	s := &f.streams[d]
	for len(b) > 0 {
		n := min(len(b), s.toRecordEnd())
		evs, err := s.Feed(b[:n])
		b = b[n:]
		for i := range evs {
			ev := evs[i]
			if d == ServerToClient && ev.Kind == EventHandshake && ev.Handshake.Type == HandshakeServerHello {
				f.serverHello(&ev)
			}
			f.events = append(f.events, ev)
		}
		if err != nil {
			return f.events, err
		}
	}
	return f.events, nil
}

// serverHello parses a ServerHello event and switches both Streams.
func (f *Follower) serverHello(ev *Event) {
	sh, err := ParseServerHello(ev.Handshake.Raw)
	if err != nil {
		ev.Err = err
		return
	}
	ev.ServerHello = sh
	if sh.IsHelloRetryRequest() {
		// TLS 1.3, but no keys yet: the second ClientHello is plaintext.
		for i := range f.streams {
			f.streams[i].SetTLS13()
		}
		return
	}
	f.suite, f.version = sh.CipherSuite, sh.Version()
	if f.version >= VersionTLS13 {
		f.tls13 = true
		for i := range f.streams {
			f.streams[i].SetEncrypted()
		}
	}
}

// midRecord reports whether the Stream stopped inside a record header or
// body.
func (s *Stream) midRecord() bool {
	return s.hdrN > 0 && (s.hdrN < RecordHeaderLen || s.curLeft > 0)
}

// toRecordEnd is how many bytes complete the current record as far as the
// Stream can tell: the rest of the header, or the rest of the body.
func (s *Stream) toRecordEnd() int {
	switch {
	case s.err != nil:
		return 1 << 30 // Feed returns the error at once
	case s.hdrN < RecordHeaderLen:
		return RecordHeaderLen - s.hdrN
	case s.curLeft > 0:
		return s.curLeft
	}
	return RecordHeaderLen
}

// IsRecordStart reports whether b can begin a TLS record that a handshake
// sends: ChangeCipherSpec, alert, handshake or application data (RFC 8446
// §5.1). No TDS packet type is in 0x14..0x17 (MS-TDS §2.2.3.1.1), which is
// how a reader at a unit boundary tells a raw record from a TDS packet.
func IsRecordStart(b byte) bool {
	return ContentType(b) >= ContentChangeCipherSpec && ContentType(b) <= ContentApplicationData
}

// LooksLikeRecord reports whether p starts with a TLS record rather than a
// PRELOGIN option table or a TDS token stream: a record type, then major
// version 3. A PRELOGIN starts with token 0x00 (VERSION) and a login reply
// with a token (0xE3, 0xAA, 0xAD...), so neither matches.
func LooksLikeRecord(p []byte) bool {
	return len(p) >= 2 && IsRecordStart(p[0]) && p[1] == 3
}
