package tlsbridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ContentType is the first byte of a TLS record (RFC 8446 §5.1, RFC 5246 §6.2.1).
type ContentType uint8

// Record content types.
const (
	ContentChangeCipherSpec ContentType = 20
	ContentAlert            ContentType = 21
	ContentHandshake        ContentType = 22
	ContentApplicationData  ContentType = 23
	ContentHeartbeat        ContentType = 24 // RFC 6520
)

// String returns the RFC name ("handshake"), or "content_type(N)".
func (t ContentType) String() string {
	switch t {
	case ContentChangeCipherSpec:
		return "change_cipher_spec"
	case ContentAlert:
		return "alert"
	case ContentHandshake:
		return "handshake"
	case ContentApplicationData:
		return "application_data"
	case ContentHeartbeat:
		return "heartbeat"
	}
	return fmt.Sprintf("content_type(%d)", uint8(t))
}

// Record layer sizes.
const (
	// RecordHeaderLen is the size of a record header: type, legacy version, length.
	RecordHeaderLen = 5
	// MaxRecordLen is the largest record body any TLS version allows:
	// TLSCiphertext may exceed 2^14 by 2048 bytes (RFC 5246 §6.2.3; TLS 1.3
	// allows only 256, RFC 8446 §5.2, but a passive parser accepts the larger bound).
	MaxRecordLen = 1<<14 + 2048
	// DefaultMaxBuffered is the default cap on the bytes a Stream holds
	// between calls to Feed.
	DefaultMaxBuffered = 64 << 10
)

// Sentinel errors of the record layer. Errors returned by this package wrap
// them; test with errors.Is.
var (
	// ErrRecordTooLong: a record header announces more than MaxRecordLen bytes.
	ErrRecordTooLong = errors.New("tlsbridge: record length exceeds 2^14+2048")
	// ErrNotTLS: the bytes cannot be a TLS record header (unknown content
	// type, or a version whose major byte is not 3). An SSL 2.0-style
	// ClientHello (first byte 0x80) is reported this way too.
	ErrNotTLS = errors.New("tlsbridge: not a TLS record")
	// ErrBufferLimit: following the stream would need more than the
	// Stream's MaxBuffered bytes.
	ErrBufferLimit = errors.New("tlsbridge: buffered handshake data exceeds limit")
)

// RecordHeader is a parsed TLS record header.
type RecordHeader struct {
	Type    ContentType
	Version uint16 // legacy_record_version; says little (RFC 8446 §5.1)
	Length  int    // length of the record body that follows the header
}

// ParseRecordHeader parses the first RecordHeaderLen bytes of b.
// It fails with io.ErrUnexpectedEOF (wrapped) if b is shorter, ErrNotTLS
// for an unknown content type or version, and ErrRecordTooLong.
func ParseRecordHeader(b []byte) (RecordHeader, error) {
	if len(b) < RecordHeaderLen {
		return RecordHeader{}, fmt.Errorf("tlsbridge: record header: %d of %d bytes: %w", len(b), RecordHeaderLen, io.ErrUnexpectedEOF)
	}
	h := RecordHeader{
		Type:    ContentType(b[0]),
		Version: binary.BigEndian.Uint16(b[1:3]),
		Length:  int(binary.BigEndian.Uint16(b[3:5])),
	}
	if h.Type < ContentChangeCipherSpec || h.Type > ContentHeartbeat {
		return h, fmt.Errorf("tlsbridge: record header % x: content type %d: %w", b[:RecordHeaderLen], b[0], ErrNotTLS)
	}
	if h.Version>>8 != 3 {
		return h, fmt.Errorf("tlsbridge: record header % x: version 0x%04x: %w", b[:RecordHeaderLen], h.Version, ErrNotTLS)
	}
	if h.Length > MaxRecordLen {
		return h, fmt.Errorf("tlsbridge: %s record of %d bytes: %w", h.Type, h.Length, ErrRecordTooLong)
	}
	return h, nil
}

// Direction says which peer sent the bytes a Stream follows.
type Direction uint8

// Directions.
const (
	ClientToServer Direction = iota
	ServerToClient
)

// String returns "client->server" or "server->client".
func (d Direction) String() string {
	switch d {
	case ClientToServer:
		return "client->server"
	case ServerToClient:
		return "server->client"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// EventHandshake: a complete plaintext handshake message (Event.Handshake).
	EventHandshake EventKind = iota + 1
	// EventChangeCipherSpec: a plaintext ChangeCipherSpec record.
	EventChangeCipherSpec
	// EventAlert: a plaintext alert (Event.Alert).
	EventAlert
	// EventEncrypted: a record whose content is not visible: application
	// data, or a handshake/alert/heartbeat record sent after this
	// direction's ChangeCipherSpec (TLS 1.2: the Finished message) or after
	// SetEncrypted (TLS 1.3). Event.RecordType is the outer content type.
	EventEncrypted
	// EventRecord: any other complete plaintext record (a heartbeat).
	EventRecord
)

// String returns a short lower-case name of the kind.
func (k EventKind) String() string {
	switch k {
	case EventHandshake:
		return "handshake"
	case EventChangeCipherSpec:
		return "change_cipher_spec"
	case EventAlert:
		return "alert"
	case EventEncrypted:
		return "encrypted"
	case EventRecord:
		return "record"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is something a Stream recognised. Events are reported once the last
// byte of the record that completes them has been fed.
type Event struct {
	Kind       EventKind
	RecordType ContentType // content type of the record that completed the event
	RecordLen  int         // body length of that record
	// Offset is the position in this direction's byte stream of the first
	// header byte of that record; Offset+RecordHeaderLen+RecordLen is the
	// position just past it. A proxy can use it to cut the stream at a
	// record boundary.
	Offset int64
	// Handshake is set for EventHandshake. A message that spans several
	// records is reported with the record that completes it; several
	// messages in one record share the record fields.
	Handshake *HandshakeMessage
	// Alert is set for EventAlert.
	Alert *Alert
	// ServerHello is set by a Follower on the EventHandshake of a
	// ServerHello it parsed; Err is set instead when that parse failed.
	ServerHello *ServerHello
	Err         error
}

// Stream follows the TLS records one peer sends, for a proxy that relays
// them unchanged. It is fed raw bytes in arbitrary chunks, reassembles
// records and handshake messages, and tracks when the direction turns
// encrypted. One Stream per direction; a Stream is not safe for concurrent
// use.
//
// Memory: application data and encrypted records are counted, never
// copied. Only plaintext handshake, alert and ChangeCipherSpec bodies are
// buffered, bounded by MaxBuffered.
//
// After Feed returns an error the Stream has lost the record framing; every
// later call returns the same error.
type Stream struct {
	// MaxBuffered caps the bytes held between calls to Feed: a partly
	// received plaintext record plus a partly reassembled handshake
	// message. Zero means DefaultMaxBuffered. Set it before the first Feed.
	MaxBuffered int

	dir    Direction
	offset int64 // bytes fed so far

	hdr  [RecordHeaderLen]byte
	hdrN int

	cur       RecordHeader // the record being received, once hdrN == RecordHeaderLen
	curStart  int64
	curLeft   int  // body bytes of cur still to come
	curOpaque bool // cur's body is not interpreted (encrypted, application data, heartbeat)

	body []byte // plaintext alert / ChangeCipherSpec body of cur
	hs   []byte // handshake bytes not yet forming a complete message

	ccs       bool // this direction sent ChangeCipherSpec
	tls13     bool // ChangeCipherSpec is the RFC 8446 §D.4 dummy: it starts nothing
	encrypted bool // SetEncrypted was called

	err    error
	events []Event
}

// NewStream returns a Stream for one direction of a connection.
func NewStream(dir Direction) *Stream { return &Stream{dir: dir} }

// Direction reports the direction the Stream was created for.
func (s *Stream) Direction() Direction { return s.dir }

// Offset reports how many bytes have been fed so far.
func (s *Stream) Offset() int64 { return s.offset }

// Buffered reports how many bytes the Stream holds between calls.
func (s *Stream) Buffered() int {
	n := len(s.body) + len(s.hs)
	if s.hdrN < RecordHeaderLen {
		n += s.hdrN
	}
	return n
}

// Encrypted reports whether this direction's handshake records are now
// encrypted (after its ChangeCipherSpec in TLS 1.2, or SetEncrypted).
func (s *Stream) Encrypted() bool { return s.encrypted || (s.ccs && !s.tls13) }

// SetEncrypted tells the Stream that this direction's records are
// encrypted from now on. A Stream cannot tell TLS 1.3 from TLS 1.2 by
// itself: in TLS 1.3 encryption starts right after the ServerHello, with
// no ChangeCipherSpec needed (RFC 8446 §2). Call it on both directions once
// a ServerHello that selects TLS 1.3 has been seen (not for a
// HelloRetryRequest: see SetTLS13). A partly reassembled handshake
// message is dropped, since a handshake message cannot span a key change
// (RFC 8446 §5.1).
func (s *Stream) SetEncrypted() {
	s.encrypted = true
	s.tls13 = true
	s.hs = s.hs[:0]
}

// SetTLS13 tells the Stream that the connection is negotiating TLS 1.3
// but is not encrypted yet: the caller saw a HelloRetryRequest. In TLS 1.3
// a ChangeCipherSpec is the middlebox-compatibility dummy of RFC 8446 §D.4
// and may come before the second ClientHello or right after the
// HelloRetryRequest; without this call the Stream would take it for the
// TLS 1.2 switch to encryption and report the plaintext hello that follows
// as encrypted. It undoes what an earlier dummy ChangeCipherSpec switched on.
func (s *Stream) SetTLS13() { s.tls13 = true }

func (s *Stream) maxBuffered() int {
	if s.MaxBuffered > 0 {
		return s.MaxBuffered
	}
	return DefaultMaxBuffered
}

// Feed consumes the next bytes of the direction's stream and returns the
// events completed by them. The caller keeps ownership of b: Feed copies
// what it must keep. The returned slice is reused by the next call to
// Feed; the *HandshakeMessage and *Alert values it points to are not, and
// their byte slices are the caller's to keep.
//
// On error, Feed returns the events completed before the error together
// with the error, and the Stream stops: later calls return the same error.
func (s *Stream) Feed(b []byte) ([]Event, error) {
	s.events = s.events[:0]
	if s.err != nil {
		return nil, s.err
	}
	for len(b) > 0 {
		if s.hdrN < RecordHeaderLen {
			n := copy(s.hdr[s.hdrN:], b)
			s.hdrN += n
			s.offset += int64(n)
			b = b[n:]
			if s.hdrN < RecordHeaderLen {
				break
			}
			if err := s.startRecord(); err != nil {
				return s.events, s.fail(err)
			}
			if s.curLeft == 0 {
				if err := s.finishRecord(); err != nil {
					return s.events, s.fail(err)
				}
			}
			continue
		}
		n := min(len(b), s.curLeft)
		chunk := b[:n]
		b = b[n:]
		s.offset += int64(n)
		s.curLeft -= n
		if !s.curOpaque {
			if s.cur.Type == ContentHandshake {
				s.hs = append(s.hs, chunk...)
			} else {
				s.body = append(s.body, chunk...)
			}
		}
		if s.curLeft == 0 {
			if err := s.finishRecord(); err != nil {
				return s.events, s.fail(err)
			}
		}
	}
	return s.events, nil
}

func (s *Stream) fail(err error) error {
	s.err = fmt.Errorf("tlsbridge: %s stream at offset %d: %w", s.dir, s.offset, err)
	s.body, s.hs = nil, nil
	return s.err
}

// startRecord parses the header in s.hdr and decides how the body is handled.
func (s *Stream) startRecord() error {
	h, err := ParseRecordHeader(s.hdr[:])
	if err != nil {
		return err
	}
	s.cur = h
	s.curStart = s.offset - RecordHeaderLen
	s.curLeft = h.Length
	s.curOpaque = s.opaque(h)
	if !s.curOpaque && len(s.hs)+h.Length > s.maxBuffered() {
		return fmt.Errorf("%s record of %d bytes after %d buffered, limit %d: %w",
			h.Type, h.Length, len(s.hs), s.maxBuffered(), ErrBufferLimit)
	}
	return nil
}

// opaque reports whether the body of a record with header h cannot be read.
func (s *Stream) opaque(h RecordHeader) bool {
	enc := s.Encrypted()
	switch h.Type {
	case ContentApplicationData:
		return true
	case ContentHeartbeat:
		// A plaintext heartbeat is only counted: nothing in it matters here.
		return true
	case ContentChangeCipherSpec:
		// A plaintext ChangeCipherSpec is exactly one byte; a protected one
		// (TLS 1.2 renegotiation) carries a MAC or AEAD tag as well.
		return enc && h.Length != 1
	case ContentAlert:
		// Two bytes cannot be a protected alert: every TLS 1.2 cipher suite
		// adds a MAC or tag, and TLS 1.3 protects alerts inside
		// application_data records (RFC 8446 §5.2). So a two-byte alert
		// after ChangeCipherSpec is a plaintext one, e.g. from a peer that
		// failed before it could switch keys.
		return enc && h.Length != 2
	}
	return enc // handshake
}

// finishRecord turns the record just completed into events.
func (s *Stream) finishRecord() error {
	h := s.cur
	s.hdrN = 0
	ev := Event{RecordType: h.Type, RecordLen: h.Length, Offset: s.curStart}
	if s.curOpaque {
		ev.Kind = EventEncrypted
		if h.Type == ContentHeartbeat && !s.Encrypted() {
			ev.Kind = EventRecord
		}
		s.events = append(s.events, ev)
		return nil
	}
	body := s.body
	s.body = s.body[:0]
	switch h.Type {
	case ContentChangeCipherSpec:
		// RFC 5246 §7.1: one byte of value 1.
		if len(body) != 1 || body[0] != 1 {
			return fmt.Errorf("change_cipher_spec record % x: %w", body, ErrMalformed)
		}
		if len(s.hs) != 0 {
			return fmt.Errorf("change_cipher_spec inside a %d-byte partial handshake message: %w", len(s.hs), ErrMalformed)
		}
		s.ccs = true
		ev.Kind = EventChangeCipherSpec
		s.events = append(s.events, ev)
	case ContentAlert:
		// RFC 8446 §5.1 forbids several alerts in one record; RFC 5246 did
		// not, so accept any whole number of two-byte alerts.
		if len(body) == 0 || len(body)%2 != 0 {
			return fmt.Errorf("alert record of %d bytes: %w", len(body), ErrMalformed)
		}
		for i := 0; i < len(body); i += 2 {
			e := ev
			e.Kind = EventAlert
			e.Alert = &Alert{Level: body[i], Description: body[i+1]}
			s.events = append(s.events, e)
		}
	case ContentHandshake:
		return s.extractHandshakes(ev)
	}
	return nil
}

// extractHandshakes reports every complete handshake message in s.hs and
// keeps the incomplete tail.
func (s *Stream) extractHandshakes(ev Event) error {
	i := 0
	for len(s.hs)-i >= handshakeHeaderLen {
		n := int(s.hs[i+1])<<16 | int(s.hs[i+2])<<8 | int(s.hs[i+3])
		if handshakeHeaderLen+n > s.maxBuffered() {
			return fmt.Errorf("%s message of %d bytes, limit %d: %w", HandshakeType(s.hs[i]), n, s.maxBuffered(), ErrBufferLimit)
		}
		if len(s.hs)-i < handshakeHeaderLen+n {
			break
		}
		raw := make([]byte, handshakeHeaderLen+n)
		copy(raw, s.hs[i:])
		i += len(raw)
		e := ev
		e.Kind = EventHandshake
		e.Handshake = &HandshakeMessage{Type: HandshakeType(raw[0]), Body: raw[handshakeHeaderLen:], Raw: raw}
		s.events = append(s.events, e)
	}
	s.hs = s.hs[:copy(s.hs, s.hs[i:])]
	return nil
}
