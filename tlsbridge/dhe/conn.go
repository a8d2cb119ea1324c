package dhe

import (
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// ConnectionState describes a Conn's handshake, including the key
// agreement as this side did it.
type ConnectionState struct {
	HandshakeComplete    bool
	Version              uint16
	CipherSuite          uint16
	Group                string // a built-in group's name, or "custom"
	PrimeBits            int
	ExtendedMasterSecret bool
	SecureRenegotiation  bool
	NegotiatedProtocol   string
	ServerName           string
	PeerCertificates     []*x509.Certificate
	// The key agreement on this side.
	Z             ZEncoding
	Y             YEncoding
	PreMasterLen  int  // bytes of the pre-master secret this side used
	ZLeadingZero  bool // Z had a leading zero byte: strip and pad differ
	PublicLen     int  // bytes of this side's dh_Y as sent
	PeerPublicLen int  // bytes of the peer's dh_Y as received
	GrindTries    int  // client with Grind or GrindPublic: keys tried
	// PublicLeadingZero: this side's Y starts with a zero byte at the
	// length of p (so YMinimal sent it shorter than p).
	PublicLeadingZero bool
}

// AlertError is a fatal alert sent (Remote false) or received (Remote
// true). Test with errors.As.
type AlertError struct {
	Description uint8
	Remote      bool
}

func (e *AlertError) Error() string {
	side := "local"
	if e.Remote {
		side = "remote"
	}
	return fmt.Sprintf("dhe: %s alert %s(%d)", side, tlsbridge.AlertName(e.Description), e.Description)
}

// Alert descriptions the engine sends (RFC 5246 §7.2, RFC 7301 §3.2).
const (
	alertCloseNotify          uint8 = 0
	alertUnexpectedMessage    uint8 = 10
	alertBadRecordMAC         uint8 = 20
	alertRecordOverflow       uint8 = 22
	alertHandshakeFailure     uint8 = 40
	alertBadCertificate       uint8 = 42
	alertIllegalParameter     uint8 = 47
	alertDecodeError          uint8 = 50
	alertDecryptError         uint8 = 51
	alertProtocolVersion      uint8 = 70
	alertInsufficientSecurity uint8 = 71
	alertInternalError        uint8 = 80
	alertNoRenegotiation      uint8 = 100
	alertNoApplicationProto   uint8 = 120
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNoCommonSuite: the client offers none of the server's DHE suites
	// at a common version (handshake_failure).
	ErrNoCommonSuite = errors.New("dhe: no DHE_RSA cipher suite in common")
	// ErrBadFinished: the peer's Finished could not be decrypted or did
	// not verify, i.e. the two sides hold different master secrets (the
	// leading-zero mismatch when one side strips Z and the other pads).
	ErrBadFinished = errors.New("dhe: peer's Finished failed: the master secrets differ")
)

// maxHandshakeMsg caps a handshake message (a certificate chain is the
// largest the engine reads).
const maxHandshakeMsg = 256 << 10

// Conn is a TLS connection with the DHE engine on one side. It
// implements net.Conn; Read and Write run the handshake first.
type Conn struct {
	conn     net.Conn
	isClient bool
	config   *Config

	hsMu   sync.Mutex
	hsErr  error
	hsDone bool
	state  ConnectionState

	inMu    sync.Mutex
	in      *halfConn
	hsBuf   []byte // handshake bytes not yet consumed
	input   []byte // application data not yet returned
	readErr error  // permanent read error

	outMu   sync.Mutex
	out     *halfConn
	sendBuf []byte // records of the flight being built
	closed  bool

	vers       uint16
	transcript []byte
}

var _ net.Conn = (*Conn)(nil)

// Server returns the server side of a connection on transport (a
// tlsbridge.FramedConn during a TDS 7.x handshake, a TCP conn otherwise).
func Server(transport net.Conn, config *Config) *Conn {
	return &Conn{conn: transport, config: config, in: &halfConn{}, out: &halfConn{}}
}

// Client returns the client side of a connection on transport.
func Client(transport net.Conn, config *Config) *Conn {
	return &Conn{conn: transport, config: config, isClient: true, in: &halfConn{}, out: &halfConn{}}
}

// NetConn returns the transport.
func (c *Conn) NetConn() net.Conn { return c.conn }

// Handshake runs the handshake if it has not run. After a failure every
// call returns the same error.
func (c *Conn) Handshake() error {
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	if c.hsDone || c.hsErr != nil {
		return c.hsErr
	}
	if err := c.config.check(!c.isClient); err != nil {
		c.hsErr = err
		return err
	}
	var err error
	if c.isClient {
		err = (&clientHandshakeState{c: c}).handshake()
	} else {
		err = (&serverHandshakeState{c: c}).handshake()
	}
	if err != nil {
		c.hsErr = err
		return err
	}
	c.hsDone = true
	c.state.HandshakeComplete = true
	return nil
}

// ConnectionState returns what the handshake negotiated and saw so far
// (also after a failed handshake: the key agreement fields say what this
// side computed).
func (c *Conn) ConnectionState() ConnectionState {
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	return c.state
}

// Read reads application data.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	c.inMu.Lock()
	defer c.inMu.Unlock()
	for len(c.input) == 0 {
		if c.readErr != nil {
			return 0, c.readErr
		}
		typ, payload, err := c.readRecord()
		if errors.Is(err, errBadRecordMAC) {
			err = c.sendAlert(alertBadRecordMAC)
		}
		if err != nil {
			c.readErr = err
			continue
		}
		switch typ {
		case recordApplicationData:
			c.input = payload
		case recordHandshake:
			// A HelloRequest or a renegotiating ClientHello: refuse with
			// a warning (RFC 5246 §7.2.2, no_renegotiation).
			c.sendAlertLevel(1, alertNoRenegotiation)
		default:
			c.readErr = c.sendAlert(alertUnexpectedMessage)
		}
	}
	n := copy(b, c.input)
	c.input = c.input[n:]
	return n, nil
}

// Write writes application data.
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if err := c.writeRecordLocked(recordApplicationData, b); err != nil {
		return 0, err
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Close sends close_notify after a completed handshake and closes the
// transport.
func (c *Conn) Close() error {
	c.outMu.Lock()
	if !c.closed && c.out.active() {
		_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_ = c.writeRecordLocked(recordAlert, []byte{1, alertCloseNotify})
		_ = c.flushLocked()
	}
	c.closed = true
	c.outMu.Unlock()
	return c.conn.Close()
}

// LocalAddr returns the transport's local address.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the transport's remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// SetDeadline sets the transport's deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// SetReadDeadline sets the transport's read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the transport's write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// setVersion settles the protocol version; later plaintext records carry it.
func (c *Conn) setVersion(v uint16) {
	c.vers = v
	c.outMu.Lock()
	c.out.version = v
	c.outMu.Unlock()
}

// readRecord reads one record, exactly, from the transport and opens it.
// Alerts become errors: close_notify is io.EOF, a fatal alert an
// *AlertError; warnings are skipped.
func (c *Conn) readRecord() (uint8, []byte, error) {
	for {
		var hdr [recordHeaderLen]byte
		if _, err := io.ReadFull(c.conn, hdr[:]); err != nil {
			return 0, nil, err // io.EOF at a record boundary: the peer closed (a FIN)
		}
		typ := hdr[0]
		n := int(binary.BigEndian.Uint16(hdr[3:]))
		if typ < recordChangeCipherSpec || typ > recordApplicationData || hdr[1] != 3 {
			return 0, nil, c.sendAlert(alertDecodeError)
		}
		if n > maxCiphertext {
			return 0, nil, c.sendAlert(alertRecordOverflow)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(c.conn, body); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
		payload, err := c.in.open(typ, body)
		if err != nil {
			return 0, nil, errBadRecordMAC
		}
		if len(payload) > maxPlaintext {
			return 0, nil, c.sendAlert(alertRecordOverflow)
		}
		if typ != recordAlert {
			return typ, payload, nil
		}
		if len(payload) != 2 {
			return 0, nil, c.sendAlert(alertDecodeError)
		}
		if payload[1] == alertCloseNotify {
			return 0, nil, io.EOF
		}
		if payload[0] == 2 {
			return 0, nil, &AlertError{Description: payload[1], Remote: true}
		}
		// A warning: read on.
	}
}

// readHandshake returns the next handshake message (header included) and
// appends it to the transcript.
func (c *Conn) readHandshake() (uint8, []byte, error) {
	c.inMu.Lock()
	defer c.inMu.Unlock()
	for {
		if len(c.hsBuf) >= 4 {
			n := int(c.hsBuf[1])<<16 | int(c.hsBuf[2])<<8 | int(c.hsBuf[3])
			if n > maxHandshakeMsg {
				return 0, nil, c.sendAlert(alertDecodeError)
			}
			if len(c.hsBuf) >= 4+n {
				msg := append([]byte(nil), c.hsBuf[:4+n]...)
				c.hsBuf = c.hsBuf[4+n:]
				if msg[0] != typeHelloRequest {
					c.transcript = append(c.transcript, msg...)
				}
				return msg[0], msg, nil
			}
		}
		typ, payload, err := c.readRecord()
		if err != nil {
			return 0, nil, err
		}
		if typ != recordHandshake || len(payload) == 0 {
			return 0, nil, c.sendAlert(alertUnexpectedMessage)
		}
		c.hsBuf = append(c.hsBuf, payload...)
	}
}

// readChangeCipherSpec reads the peer's ChangeCipherSpec and switches the
// read side to next.
func (c *Conn) readChangeCipherSpec(next *halfConn) error {
	c.inMu.Lock()
	defer c.inMu.Unlock()
	if len(c.hsBuf) != 0 {
		// A CCS must not interleave with a handshake message (RFC 5246 §7.1).
		return c.sendAlert(alertUnexpectedMessage)
	}
	typ, payload, err := c.readRecord()
	if err != nil {
		return err
	}
	if typ != recordChangeCipherSpec || len(payload) != 1 || payload[0] != 1 {
		return c.sendAlert(alertUnexpectedMessage)
	}
	c.in = next
	return nil
}

// writeHandshake queues a handshake message in the flight and adds it to
// the transcript.
func (c *Conn) writeHandshake(msg []byte) error {
	c.transcript = append(c.transcript, msg...)
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.writeRecordLocked(recordHandshake, msg)
}

// writeChangeCipherSpec queues ChangeCipherSpec and switches the write
// side to next.
func (c *Conn) writeChangeCipherSpec(next *halfConn) error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if err := c.writeRecordLocked(recordChangeCipherSpec, []byte{1}); err != nil {
		return err
	}
	c.out = next
	return nil
}

// flush sends the queued flight in one write.
func (c *Conn) flush() error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.flushLocked()
}

func (c *Conn) writeRecordLocked(typ uint8, data []byte) error {
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), maxPlaintext)
		var err error
		c.sendBuf, err = c.out.seal(c.sendBuf, typ, data[:n], c.config.rand())
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

func (c *Conn) flushLocked() error {
	if len(c.sendBuf) == 0 {
		return nil
	}
	_, err := c.conn.Write(c.sendBuf)
	c.sendBuf = c.sendBuf[:0]
	return err
}

// sendAlert sends a fatal alert and returns it as an error.
func (c *Conn) sendAlert(desc uint8) error {
	c.sendAlertLevel(2, desc)
	return &AlertError{Description: desc}
}

func (c *Conn) sendAlertLevel(level, desc uint8) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.closed {
		return
	}
	c.sendBuf = c.sendBuf[:0]
	if c.writeRecordLocked(recordAlert, []byte{level, desc}) == nil {
		_ = c.flushLocked()
	}
	// A transport that batches writes (tlsbridge.FramedConn in handshake
	// mode) must send the alert now: the connection may close next.
	if f, ok := c.conn.(interface{ Flush() error }); ok {
		_ = f.Flush()
	}
}

// abort ends a failed connection the way Config.Fail says (FIN or RST)
// without an alert.
func (c *Conn) abort(rst bool) {
	c.outMu.Lock()
	c.closed = true
	c.outMu.Unlock()
	if rst {
		setLingerZero(c.conn)
	}
	_ = c.conn.Close()
}

// setLingerZero finds the TCP conn under transport wrappers that expose it
// (tlsbridge.FramedConn.Raw, NetConn) and sets SO_LINGER 0, so Close sends
// an RST.
func setLingerZero(conn net.Conn) {
	for range 8 {
		switch t := conn.(type) {
		case interface{ SetLinger(int) error }:
			_ = t.SetLinger(0)
			return
		case interface{ Raw() net.Conn }:
			conn = t.Raw()
		case interface{ NetConn() net.Conn }:
			conn = t.NetConn()
		default:
			return
		}
	}
}

// failFinished handles a client Finished that failed (server side), the
// moment the leading-zero mismatch shows: by Config.Fail, a fatal alert,
// a FIN or an RST.
func (c *Conn) failFinished(alert uint8, cause error) error {
	switch c.config.Fail {
	case FailFIN:
		c.abort(false)
		return fmt.Errorf("%w (closed with FIN, no alert): %w", ErrBadFinished, cause)
	case FailRST:
		c.abort(true)
		return fmt.Errorf("%w (closed with RST, no alert): %w", ErrBadFinished, cause)
	}
	return fmt.Errorf("%w: %w", ErrBadFinished, c.sendAlert(alert))
}

// logKey writes the NSS key log line for the master secret.
func (c *Conn) logKey(clientRandom, master []byte) {
	if w := c.config.KeyLogWriter; w != nil {
		fmt.Fprintf(w, "CLIENT_RANDOM %x %x\n", clientRandom, master)
	}
}

// setKeyAgreementState copies the key agreement's numbers into the state.
func (c *Conn) setKeyAgreementState(ka *keyAgreement) {
	c.state.Group, c.state.PrimeBits = ka.group.Name, ka.group.Bits()
	c.state.Z, c.state.Y = ka.z, ka.y
	c.state.PreMasterLen, c.state.ZLeadingZero = ka.zLen, ka.zLeadingZero
	c.state.PublicLen, c.state.PeerPublicLen = ka.ourYLen, ka.peerYLen
	c.state.GrindTries, c.state.PublicLeadingZero = ka.grindTries, ka.yLeadingZero
}
