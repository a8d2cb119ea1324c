package tds

import (
	"errors"
	"fmt"
	"io"
)

// DefaultMaxMessage is the reassembly cap a Reader uses when MaxMessage is 0.
// Negotiation messages (PRELOGIN, TLS flights, LOGIN7) are a few KiB; 1 MiB
// leaves room for large batches while bounding what a hostile peer can make
// us buffer.
const DefaultMaxMessage = 1 << 20

// Message is a reassembled TDS message: one or more packets, the last with EOM.
type Message struct {
	Type PacketType
	// Status is the status of the first packet (RESETCONNECTION bits live there).
	Status Status
	// Payload is the concatenated payload of every packet, headers removed.
	Payload []byte
	// Packets counts the packets the message arrived in.
	Packets int
}

// Reader reads TDS packets and messages from an underlying stream.
// The zero value is not usable; call NewReader.
type Reader struct {
	r   io.Reader
	hdr [HeaderLen]byte
	// MaxMessage caps the payload a single ReadMessage reassembles;
	// 0 means DefaultMaxMessage.
	MaxMessage int
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

func (r *Reader) maxMessage() int {
	if r.MaxMessage > 0 {
		return r.MaxMessage
	}
	return DefaultMaxMessage
}

// ReadPacket reads one packet and returns its header and payload. The payload
// is appended to buf (which may be nil) so callers can reuse storage.
// io.EOF is returned only when the stream ends cleanly before a header;
// a stream that ends inside a packet gives io.ErrUnexpectedEOF.
func (r *Reader) ReadPacket(buf []byte) (Header, []byte, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return Header{}, buf, err
	}
	h, err := ParseHeader(r.hdr[:])
	if err != nil {
		return h, buf, err
	}
	start := len(buf)
	n := h.PayloadLen()
	buf = growLen(buf, n)
	if _, err := io.ReadFull(r.r, buf[start:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return h, buf[:start], fmt.Errorf("tds: reading %d-byte payload of %s packet: %w", n, h.Type, err)
	}
	return h, buf, nil
}

// ReadMessage reads packets until one has EOM set and returns the message.
// A message whose packets change type midway is an error, as is one whose
// payload would exceed MaxMessage (ErrMessageLimit).
func (r *Reader) ReadMessage() (Message, error) {
	var m Message
	for {
		h, payload, err := r.ReadPacket(m.Payload)
		if err != nil {
			if m.Packets > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return m, err
		}
		if m.Packets == 0 {
			m.Type, m.Status = h.Type, h.Status
		} else if h.Type != m.Type {
			return m, fmt.Errorf("tds: packet %d of a %s message has type %s", m.Packets+1, m.Type, h.Type)
		}
		m.Packets++
		m.Payload = payload
		if len(m.Payload) > r.maxMessage() {
			return m, fmt.Errorf("%w: %d bytes > %d", ErrMessageLimit, len(m.Payload), r.maxMessage())
		}
		if h.Status.EOM() {
			return m, nil
		}
	}
}

// growLen extends b by n bytes, reallocating if needed.
func growLen(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*len(b)+n)
	copy(nb, b)
	return nb
}

// Writer splits messages into packets of at most PacketSize bytes.
// The zero value writes DefaultPacketSize packets with SPID 0.
type Writer struct {
	W io.Writer
	// PacketSize is the largest packet, header included; 0 means
	// DefaultPacketSize. Values outside 512..32768 are clamped.
	PacketSize int
	SPID       uint16
	nextID     uint8
}

// NewWriter returns a Writer on w with the default packet size.
func NewWriter(w io.Writer) *Writer { return &Writer{W: w} }

func (w *Writer) packetSize() int {
	switch {
	case w.PacketSize == 0:
		return DefaultPacketSize
	case w.PacketSize < 512:
		return 512
	case w.PacketSize > MaxPacketLen:
		return MaxPacketLen
	}
	return w.PacketSize
}

// AppendMessage appends payload to dst as one message of type t, split into
// packets; status bits in first are set on the first packet only, EOM on the
// last. It is the allocation-free core of WriteMessage.
func (w *Writer) AppendMessage(dst []byte, t PacketType, first Status, payload []byte) []byte {
	max := w.packetSize() - HeaderLen
	for i := 0; ; i++ {
		n := min(len(payload), max)
		st := Status(0)
		if i == 0 {
			st = first &^ StatusEOM
		}
		if n == len(payload) {
			st |= StatusEOM
		}
		w.nextID++
		h := Header{Type: t, Status: st, Length: uint16(HeaderLen + n), SPID: w.SPID, PacketID: w.nextID}
		dst = h.AppendTo(dst)
		dst = append(dst, payload[:n]...)
		payload = payload[n:]
		if len(payload) == 0 {
			return dst
		}
	}
}

// WriteMessage writes payload as one message of type t in a single Write call,
// so a message is never interleaved with another writer's bytes.
func (w *Writer) WriteMessage(t PacketType, payload []byte) error {
	_, err := w.W.Write(w.AppendMessage(nil, t, 0, payload))
	return err
}
