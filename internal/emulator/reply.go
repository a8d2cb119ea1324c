package emulator

import (
	"io"

	"github.com/tdsproxy/tdsproxy/tds"
)

// replyWriter streams one TDS message of type REPLY: token bytes are
// appended as they are produced and every full packet goes out at once, so
// a large result is never held in memory. The last packet, with EOM, is
// written by end. After a write error every call is a no-op and end returns
// the error.
type replyWriter struct {
	w       io.Writer
	size    int // packet size, header included
	spid    uint16
	id      uint8
	pending []byte // payload not yet sent
	pkt     []byte // scratch for one packet
	err     error
}

func newReplyWriter(w io.Writer, packetSize int, spid uint16) *replyWriter {
	return &replyWriter{w: w, size: packetSize, spid: spid}
}

// add appends token bytes. Full packets are sent only while more than one
// packet's worth is pending, so end always has at least one byte for the
// EOM packet (an empty final packet is legal but unusual).
func (r *replyWriter) add(b []byte) {
	if r.err != nil {
		return
	}
	r.pending = append(r.pending, b...)
	max := r.size - tds.HeaderLen
	sent := 0
	for len(r.pending)-sent > max {
		r.writePacket(r.pending[sent:sent+max], false)
		sent += max
		if r.err != nil {
			return
		}
	}
	if sent > 0 {
		r.pending = append(r.pending[:0], r.pending[sent:]...)
	}
}

// end sends what is pending as the last packet of the message.
func (r *replyWriter) end() error {
	if r.err == nil {
		r.writePacket(r.pending, true)
		r.pending = r.pending[:0]
	}
	return r.err
}

func (r *replyWriter) writePacket(payload []byte, eom bool) {
	st := tds.StatusNormal
	if eom {
		st = tds.StatusEOM
	}
	r.id++ // SQL Server numbers packets from 1 within a message
	h := tds.Header{Type: tds.PacketReply, Status: st, Length: uint16(tds.HeaderLen + len(payload)), SPID: r.spid, PacketID: r.id}
	r.pkt = append(h.AppendTo(r.pkt[:0]), payload...)
	_, r.err = r.w.Write(r.pkt)
}
