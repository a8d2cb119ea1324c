package dhe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// MaxClientHello bounds the bytes ReadClientHello reads.
const MaxClientHello = 64 << 10

// ErrNotClientHello means the bytes read are not a TLS handshake record
// carrying a ClientHello that parses.
var ErrNotClientHello = errors.New("dhe: not a TLS ClientHello")

// ReadClientHello reads TLS handshake records from r until they hold a
// whole ClientHello (a handshake message may span records, RFC 5246
// §6.2.1) and returns it with every byte read, so that the caller can
// decide who answers (OffersDHE) and replay the bytes to it (ReplayConn).
// I/O errors are returned as they are; anything else wraps
// ErrNotClientHello.
func ReadClientHello(r io.Reader) (*tlsbridge.ClientHello, []byte, error) {
	var raw, msg []byte
	for len(raw) < MaxClientHello {
		var hdr [recordHeaderLen]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, raw, err
		}
		n := int(binary.BigEndian.Uint16(hdr[3:]))
		if hdr[0] != recordHandshake || n == 0 || n > maxPlaintext {
			return nil, raw, fmt.Errorf("%w: record type 0x%02X, %d bytes", ErrNotClientHello, hdr[0], n)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, raw, err
		}
		raw = append(append(raw, hdr[:]...), body...)
		msg = append(msg, body...)
		if len(msg) < 4 {
			continue
		}
		// The 24-bit length is added to the 4-byte header: parentheses
		// matter, + and | have the same precedence in Go.
		want := 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
		if len(msg) >= want {
			h, err := tlsbridge.ParseClientHello(msg[:want])
			if err != nil {
				return nil, raw, fmt.Errorf("%w: %w", ErrNotClientHello, err)
			}
			return h, raw, nil
		}
	}
	return nil, raw, fmt.Errorf("%w: larger than %d bytes", ErrNotClientHello, MaxClientHello)
}

// OffersDHE reports whether the ClientHello offers one of the engine's
// suites.
func OffersDHE(h *tlsbridge.ClientHello) bool {
	for _, id := range h.CipherSuites {
		if IsDHESuite(id) {
			return true
		}
	}
	return false
}

// ReplayConn returns a conn that reads prefix (bytes already read from c,
// such as ReadClientHello's) before reading c again. Its NetConn method
// returns c, so a Conn on it can still reach the TCP conn (FailRST).
func ReplayConn(c net.Conn, prefix []byte) net.Conn {
	return &replayConn{Conn: c, prefix: prefix}
}

type replayConn struct {
	net.Conn
	prefix []byte
}

func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

func (c *replayConn) NetConn() net.Conn { return c.Conn }

// IdentifyGroup names the group of a ServerKeyExchange's p and g: a
// built-in group's name, or "custom". A passive observer (the proxy's
// record) can use it.
func IdentifyGroup(p, g []byte) string {
	grp, err := checkServerGroup(p, g, 1)
	if err != nil {
		return "custom"
	}
	return grp.Name
}
