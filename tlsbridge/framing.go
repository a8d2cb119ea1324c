package tlsbridge

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tdsproxy/tdsproxy/tds"
)

// Role says which end of a TDS connection a FramedConn serves. It only
// shapes error messages: both ends wrap TLS handshake records in PRELOGIN
// (0x12) packets (MS-TDS §2.2.6.5, §3.2.5.1).
type Role uint8

// Roles of a FramedConn.
const (
	RoleClient Role = iota + 1
	RoleServer
)

func (r Role) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleServer:
		return "server"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// maxPendingFlight bounds the bytes a FramedConn buffers for one handshake
// flight. Real flights are a few KiB (a certificate chain rarely exceeds
// 16 KiB); anything near this is a bug or an attack.
const maxPendingFlight = 1 << 20

// Errors returned by FramedConn; test with errors.Is.
var (
	// ErrUnexpectedPacket means a packet of a type other than PRELOGIN or
	// REPLY arrived while the handshake was being unwrapped.
	ErrUnexpectedPacket = errors.New("tlsbridge: unexpected TDS packet type during TLS handshake")
	// ErrFlightTooLarge means a handshake flight exceeded the buffering cap.
	ErrFlightTooLarge = errors.New("tlsbridge: TLS handshake flight too large")
)

// FramedConn carries TLS handshake bytes as the payload of TDS PRELOGIN
// (0x12) packets until SwitchToRaw (or, for reads, until the peer's first
// raw TLS record), then passes bytes straight to the raw conn. Hand it to
// tls.Client or tls.Server as their transport (MS-TDS §2.2.6.5: "TLS/SSL
// payload of PRELOGIN packets"; compare go-mssqldb net.go tlsHandshakeConn).
//
// Writes during the handshake are buffered: everything written between two
// reads is one TLS flight and goes out as exactly one TDS message (packets of
// at most the packet size, EOM on the last), because go-mssqldb fails when a
// server flight is split into two EOM messages. The buffer is sent when the
// conn next reads, or on Flush or SwitchToRaw; a client using TLS 1.3 writes
// its Finished last and never reads in the handshake, so it must call
// SwitchToRaw (or Flush) after Handshake returns, as go-mssqldb does with
// FinishPacket.
//
// Read and Write may be called from different goroutines.
type FramedConn struct {
	raw  net.Conn
	role Role

	// Write side, guarded by wmu.
	wmu      sync.Mutex
	w        tds.Writer
	pending  []byte // the flight being collected
	writeRaw bool

	// switched is set by SwitchToRaw; the read side honours it at the next
	// message boundary.
	switched atomic.Bool

	// Read side, guarded by rmu.
	rmu       sync.Mutex
	readRaw   bool
	hdr       [tds.HeaderLen]byte
	left      int  // payload bytes of the current packet not yet returned
	midMsg    bool // the last packet read had no EOM
	peeked    []byte
	bounded   bool // in raw mode, never read past the current TLS record
	recordHdr [RecordHeaderLen]byte
	recLeft   int  // bytes of the current TLS record not yet read from raw
	inRecord  bool // a record header has been read and its record not finished
}

var _ net.Conn = (*FramedConn)(nil)

// NewFramedConn returns a FramedConn in handshake (wrapping) mode on raw.
// packetSize is the largest TDS packet it writes, header included; 0 means
// tds.DefaultPacketSize (4096, the size in force before LOGIN7).
func NewFramedConn(raw net.Conn, role Role, packetSize int) *FramedConn {
	c := &FramedConn{raw: raw, role: role}
	c.w = tds.Writer{W: raw, PacketSize: packetSize}
	return c
}

// Raw returns the underlying connection.
func (c *FramedConn) Raw() net.Conn { return c.raw }

// Role returns the role the conn was created with.
func (c *FramedConn) Role() Role { return c.role }

// Wrapping reports whether writes are still wrapped in TDS packets.
func (c *FramedConn) Wrapping() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return !c.writeRaw
}

// Read returns TLS bytes. In handshake mode it reads TDS packets of type
// PRELOGIN or REPLY (older servers answer with 0x04) and returns their
// payload; before it blocks it sends any buffered flight. At a message
// boundary it goes raw when SwitchToRaw was called, or by itself when the
// next byte is a TLS record type (0x14..0x17): some peers stop wrapping as
// soon as their side of the handshake is done.
func (c *FramedConn) Read(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(b) == 0 {
		return 0, nil
	}
	if c.left == 0 && !c.readRaw {
		if err := c.nextPacket(); err != nil {
			return 0, err
		}
	}
	if c.readRaw {
		return c.readRawLocked(b)
	}
	n, err := c.raw.Read(b[:min(len(b), c.left)])
	c.left -= n
	if err == io.EOF && c.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// nextPacket positions the reader at the payload of the next non-empty
// packet, or switches to raw mode. The caller holds rmu.
func (c *FramedConn) nextPacket() error {
	for c.left == 0 {
		if !c.midMsg && c.switched.Load() {
			c.readRaw = true
			return nil
		}
		if !c.midMsg {
			// Only flush between messages: our flight answers the peer's
			// complete flight, never a part of it.
			if err := c.Flush(); err != nil {
				return err
			}
		}
		// I/O errors from raw are returned as they are: tls.Conn and
		// callers test them with ==io.EOF and net.Error type assertions.
		if _, err := io.ReadFull(c.raw, c.hdr[:1]); err != nil {
			if c.midMsg && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		// A record type where a TDS packet header should start means the
		// peer has stopped wrapping.
		if !c.midMsg && IsRecordStart(c.hdr[0]) {
			c.readRaw = true
			c.peeked = append(c.peeked[:0], c.hdr[0])
			return nil
		}
		if _, err := io.ReadFull(c.raw, c.hdr[1:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		h, err := tds.ParseHeader(c.hdr[:])
		if err != nil {
			return fmt.Errorf("tlsbridge: %s handshake packet: %w", c.role, err)
		}
		if h.Type != tds.PacketPrelogin && h.Type != tds.PacketReply {
			return fmt.Errorf("%w: %s (%s)", ErrUnexpectedPacket, h.Type, h)
		}
		c.left = h.PayloadLen()
		c.midMsg = !h.Status.EOM()
	}
	return nil
}

// readRawLocked reads in raw mode: peeked bytes first, then the raw conn,
// stopping at TLS record ends when bounded. The caller holds rmu.
func (c *FramedConn) readRawLocked(b []byte) (int, error) {
	if !c.bounded {
		if len(c.peeked) > 0 {
			n := copy(b, c.peeked)
			c.peeked = c.peeked[n:]
			return n, nil
		}
		return c.raw.Read(b)
	}
	if !c.inRecord {
		// At a record boundary: read the 5-byte header so we know where
		// the record ends (RFC 8446 §5.1), and hand it out as peeked bytes.
		// peeked can only hold the byte that made Read go raw by itself.
		k := copy(c.recordHdr[:], c.peeked)
		if _, err := io.ReadFull(c.raw, c.recordHdr[k:]); err != nil {
			if k > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		h, err := ParseRecordHeader(c.recordHdr[:])
		if err != nil {
			return 0, err // wraps ErrNotTLS or ErrRecordTooLong
		}
		c.peeked = append(c.peeked[:0], c.recordHdr[:]...)
		c.recLeft = h.Length
		c.inRecord = true
	}
	var n int
	var err error
	if len(c.peeked) > 0 {
		n = copy(b, c.peeked)
		c.peeked = c.peeked[n:]
	} else {
		n, err = c.raw.Read(b[:min(len(b), c.recLeft)])
		c.recLeft -= n
		if err == io.EOF && c.recLeft > 0 {
			err = io.ErrUnexpectedEOF
		}
	}
	if c.recLeft == 0 && len(c.peeked) == 0 {
		c.inRecord = false
	}
	return n, err
}

// SetRecordBounded makes raw-mode reads stop at the end of each TLS record,
// so a tls.Conn reading through this conn never buffers bytes past the
// record it needs. The login-only mode needs this: the bytes after the TLS
// record that carries LOGIN7 are plaintext TDS and must stay on the wire
// (see ReadLoginOnly).
func (c *FramedConn) SetRecordBounded(on bool) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.bounded = on
}

// Write sends b. In handshake mode it appends b to the current flight,
// which goes out on the next Read, Flush or SwitchToRaw; in raw mode it
// writes straight to the raw conn.
func (c *FramedConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.writeRaw {
		return c.raw.Write(b)
	}
	if len(c.pending)+len(b) > maxPendingFlight {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrFlightTooLarge, maxPendingFlight)
	}
	c.pending = append(c.pending, b...)
	return len(b), nil
}

// Flush sends the buffered flight, if any, as one TDS PRELOGIN message in a
// single write to the raw conn.
func (c *FramedConn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.flushLocked()
}

func (c *FramedConn) flushLocked() error {
	if len(c.pending) == 0 {
		return nil
	}
	// Each flight is a message of its own whose packet ids start at 1, as
	// go-mssqldb numbers them; Wireshark's TDS dissector takes a later id
	// for a continuation and then misses the TLS inside.
	w := tds.Writer{PacketSize: c.w.PacketSize, SPID: c.w.SPID}
	msg := w.AppendMessage(nil, tds.PacketPrelogin, 0, c.pending)
	c.pending = c.pending[:0]
	if _, err := c.raw.Write(msg); err != nil {
		return fmt.Errorf("tlsbridge: %s sending handshake flight: %w", c.role, err)
	}
	return nil
}

// SwitchToRaw sends any buffered flight and stops wrapping: later writes go
// straight to the raw conn, and reads go raw once the message being read
// (if any) is finished. Call it when tls.Conn.Handshake returns.
func (c *FramedConn) SwitchToRaw() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.switched.Store(true)
	err := c.flushLocked()
	c.writeRaw = true
	return err
}

// Close closes the raw conn. A buffered flight is dropped: call Flush first
// to deliver, say, a TLS alert.
func (c *FramedConn) Close() error { return c.raw.Close() }

// LocalAddr returns the raw conn's local address.
func (c *FramedConn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// RemoteAddr returns the raw conn's remote address.
func (c *FramedConn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetDeadline sets the raw conn's deadlines.
func (c *FramedConn) SetDeadline(t time.Time) error { return c.raw.SetDeadline(t) }

// SetReadDeadline sets the raw conn's read deadline.
func (c *FramedConn) SetReadDeadline(t time.Time) error { return c.raw.SetReadDeadline(t) }

// SetWriteDeadline sets the raw conn's write deadline.
func (c *FramedConn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }

// ReadLoginOnly reads the LOGIN7 message of a login-only connection (client
// and server both ENCRYPT_OFF, MS-TDS §2.2.6.5 "encryption of the login
// packet only"). go-mssqldb (tds.go connect, buf.go afterFirst) writes only
// the first TDS packet of LOGIN7 through TLS, as one record, and then swaps
// its transport back to the TCP conn: later packets of LOGIN7 and everything
// after it are plaintext TDS. tc must run over fc, and the handshake must be
// done and fc switched to raw. On return the TLS layer is spent; keep using
// fc (not tc, not fc.Raw()) for plaintext TDS. maxMessage caps the payload;
// 0 means tds.DefaultMaxMessage. tc is a *tls.Conn or any TLS conn that
// reads through fc (the DHE engine, tlsbridge/dhe).
func ReadLoginOnly(tc io.Reader, fc *FramedConn, maxMessage int) (tds.Message, error) {
	if maxMessage <= 0 {
		maxMessage = tds.DefaultMaxMessage
	}
	// Stop the TLS layer at the end of the record that carries the packet,
	// so the plaintext after it stays where the plaintext reader finds it.
	fc.SetRecordBounded(true)
	defer fc.SetRecordBounded(false)

	var hdr [tds.HeaderLen]byte
	if _, err := io.ReadFull(tc, hdr[:]); err != nil {
		return tds.Message{}, fmt.Errorf("tlsbridge: reading TLS-protected login packet header: %w", err)
	}
	h, err := tds.ParseHeader(hdr[:])
	if err != nil {
		return tds.Message{}, fmt.Errorf("tlsbridge: TLS-protected login packet: %w", err)
	}
	m := tds.Message{Type: h.Type, Status: h.Status, Packets: 1, Payload: make([]byte, h.PayloadLen())}
	if _, err := io.ReadFull(tc, m.Payload); err != nil {
		return m, fmt.Errorf("tlsbridge: reading TLS-protected login packet payload: %w", err)
	}
	fc.SetRecordBounded(false)
	r := tds.NewReader(fc)
	for st := h.Status; !st.EOM(); {
		ph, payload, err := r.ReadPacket(m.Payload)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return m, fmt.Errorf("tlsbridge: reading plaintext packet %d of login: %w", m.Packets+1, err)
		}
		if ph.Type != m.Type {
			return m, fmt.Errorf("tlsbridge: packet %d of a %s message has type %s", m.Packets+1, m.Type, ph.Type)
		}
		m.Payload, st = payload, ph.Status
		m.Packets++
		if len(m.Payload) > maxMessage {
			return m, fmt.Errorf("%w: %d bytes > %d", tds.ErrMessageLimit, len(m.Payload), maxMessage)
		}
	}
	return m, nil
}

// WriteLoginOnly sends msg, a complete serialized TDS message (normally
// LOGIN7), the way go-mssqldb does in login-only mode: its first packet
// through tc (the TLS conn) and the remaining packets, if any, in plaintext
// on raw. After it, both directions are plaintext TDS on raw.
func WriteLoginOnly(tc io.Writer, raw io.Writer, msg []byte) error {
	h, err := tds.ParseHeader(msg)
	if err != nil {
		return fmt.Errorf("tlsbridge: login message: %w", err)
	}
	first := int(h.Length)
	if first > len(msg) {
		return fmt.Errorf("tlsbridge: login message: first packet claims %d bytes, have %d", first, len(msg))
	}
	if _, err := tc.Write(msg[:first]); err != nil {
		return fmt.Errorf("tlsbridge: writing TLS-protected login packet: %w", err)
	}
	if first == len(msg) {
		return nil
	}
	if _, err := raw.Write(msg[first:]); err != nil {
		return fmt.Errorf("tlsbridge: writing plaintext login packets: %w", err)
	}
	return nil
}
