package tds

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestParseHeaderLengthBounds(t *testing.T) {
	tests := []struct {
		length uint16
		want   error
	}{
		{0, ErrBadLength},
		{7, ErrBadLength},
		{8, nil},
		{4096, nil},
		{32768, nil},
		{32769, ErrBadLength},
		{0xFFFF, ErrBadLength},
	}
	for _, tt := range tests {
		h := Header{Type: PacketSQLBatch, Status: StatusEOM, Length: tt.length, SPID: 0x1234, PacketID: 7}
		got, err := ParseHeader(h.Bytes())
		if !errors.Is(err, tt.want) {
			t.Errorf("length %d: err = %v, want %v", tt.length, err, tt.want)
		}
		if err == nil && got != h {
			t.Errorf("length %d: got %+v", tt.length, got)
		}
	}
	if _, err := ParseHeader(make([]byte, 7)); !errors.Is(err, ErrShortHeader) {
		t.Errorf("7-byte buffer: %v", err)
	}
	h, _ := ParseHeader([]byte{0x12, 0x01, 0x00, 0x2F, 0x00, 0x00, 0x01, 0x00})
	if h.PayloadLen() != 39 || h.SPID != 0 || h.Type != PacketPrelogin {
		t.Errorf("header = %v", h)
	}
}

func TestStatusEOM(t *testing.T) {
	for s, want := range map[Status]bool{
		StatusNormal: false, StatusEOM: true, StatusResetConnection: false,
		StatusResetConnectionSkipTran: false, StatusIgnore: false, StatusEOM | StatusResetConnection: true,
	} {
		if s.EOM() != want {
			t.Errorf("Status(%#x).EOM() = %v", uint8(s), !want)
		}
	}
}

// packet builds one packet with the given type, status and payload.
func packet(t PacketType, st Status, id uint8, payload []byte) []byte {
	h := Header{Type: t, Status: st, Length: uint16(HeaderLen + len(payload)), PacketID: id}
	return append(h.Bytes(), payload...)
}

func TestReaderReadMessage(t *testing.T) {
	t.Run("multi-packet message", func(t *testing.T) {
		var stream []byte
		// RESETCONNECTION on a non-final packet must not be read as EOM.
		stream = append(stream, packet(PacketSQLBatch, StatusResetConnection, 1, []byte("abc"))...)
		stream = append(stream, packet(PacketSQLBatch, StatusNormal, 2, []byte("def"))...)
		stream = append(stream, packet(PacketSQLBatch, StatusEOM, 3, []byte("gh"))...)
		stream = append(stream, packet(PacketAttention, StatusEOM, 4, nil)...)
		r := NewReader(bytes.NewReader(stream))
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if m.Type != PacketSQLBatch || m.Status != StatusResetConnection || m.Packets != 3 || string(m.Payload) != "abcdefgh" {
			t.Fatalf("message = %+v", m)
		}
		m, err = r.ReadMessage()
		if err != nil || m.Type != PacketAttention || len(m.Payload) != 0 || m.Packets != 1 {
			t.Fatalf("second message = %+v, %v", m, err)
		}
		if _, err := r.ReadMessage(); err != io.EOF {
			t.Fatalf("at end: %v, want io.EOF", err)
		}
	})
	t.Run("type change mid-message", func(t *testing.T) {
		stream := append(packet(PacketSQLBatch, 0, 1, []byte("a")), packet(PacketRPC, StatusEOM, 2, []byte("b"))...)
		_, err := NewReader(bytes.NewReader(stream)).ReadMessage()
		if err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("MaxMessage cap", func(t *testing.T) {
		var stream []byte
		for i := range 10 {
			stream = append(stream, packet(PacketBulkLoad, 0, uint8(i), make([]byte, 100))...)
		}
		r := NewReader(bytes.NewReader(stream))
		r.MaxMessage = 250
		m, err := r.ReadMessage()
		if !errors.Is(err, ErrMessageLimit) {
			t.Fatalf("err = %v", err)
		}
		if len(m.Payload) > 250+MaxPacketLen {
			t.Errorf("buffered %d bytes", len(m.Payload))
		}
	})
	t.Run("truncated payload", func(t *testing.T) {
		p := packet(PacketLogin7, StatusEOM, 1, make([]byte, 100))
		_, err := NewReader(bytes.NewReader(p[:58])).ReadMessage()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("truncated header", func(t *testing.T) {
		_, err := NewReader(bytes.NewReader([]byte{0x12, 0x01, 0x00})).ReadMessage()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("stream ends before EOM", func(t *testing.T) {
		_, err := NewReader(bytes.NewReader(packet(PacketSQLBatch, 0, 1, []byte("a")))).ReadMessage()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad length", func(t *testing.T) {
		_, err := NewReader(bytes.NewReader([]byte{0x12, 0x01, 0x00, 0x07, 0, 0, 1, 0})).ReadMessage()
		if !errors.Is(err, ErrBadLength) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestWriterSplits(t *testing.T) {
	payload := make([]byte, 1200)
	for i := range payload {
		payload[i] = byte(i)
	}
	w := &Writer{PacketSize: 512, SPID: 55}
	out := w.AppendMessage(nil, PacketSQLBatch, StatusResetConnection|StatusEOM, payload)
	wantSizes := []int{504, 504, 192}
	var got []byte
	for i, n := range wantSizes {
		h, err := ParseHeader(out)
		if err != nil {
			t.Fatal(err)
		}
		if h.PayloadLen() != n || h.Type != PacketSQLBatch || h.SPID != 55 || h.PacketID != uint8(i+1) {
			t.Errorf("packet %d: %v", i, h)
		}
		wantSt := Status(0)
		if i == 0 {
			wantSt = StatusResetConnection // first-packet bits, EOM stripped
		}
		if i == len(wantSizes)-1 {
			wantSt |= StatusEOM
		}
		if h.Status != wantSt {
			t.Errorf("packet %d: status %#x, want %#x", i, uint8(h.Status), uint8(wantSt))
		}
		got = append(got, out[HeaderLen:int(h.Length)]...)
		out = out[h.Length:]
	}
	if len(out) != 0 || !bytes.Equal(got, payload) {
		t.Fatalf("reassembly mismatch, %d bytes left", len(out))
	}

	t.Run("empty payload is one EOM packet", func(t *testing.T) {
		out := (&Writer{}).AppendMessage(nil, PacketAttention, 0, nil)
		if !bytes.Equal(out, []byte{0x06, 0x01, 0x00, 0x08, 0, 0, 1, 0}) {
			t.Fatalf("% X", out)
		}
	})
	t.Run("exact multiple of packet size", func(t *testing.T) {
		out := (&Writer{PacketSize: 512}).AppendMessage(nil, PacketReply, 0, make([]byte, 1008))
		if len(out) != 2*512 || out[1] != 0 || out[512+1] != byte(StatusEOM) {
			t.Fatalf("len %d, statuses %#x %#x", len(out), out[1], out[513])
		}
	})
	t.Run("packet size clamps", func(t *testing.T) {
		for size, want := range map[int]int{0: DefaultPacketSize, 100: 512, 40000: MaxPacketLen, 8192: 8192} {
			out := (&Writer{PacketSize: size}).AppendMessage(nil, PacketReply, 0, make([]byte, 70000))
			h, _ := ParseHeader(out)
			if int(h.Length) != want {
				t.Errorf("PacketSize %d: first packet %d, want %d", size, h.Length, want)
			}
		}
	})
	t.Run("writer to reader", func(t *testing.T) {
		var buf bytes.Buffer
		w := NewWriter(&buf)
		for _, n := range []int{0, 1, 4088, 4089, 100000} {
			if err := w.WriteMessage(PacketLogin7, make([]byte, n)); err != nil {
				t.Fatal(err)
			}
		}
		r := NewReader(&buf)
		for _, n := range []int{0, 1, 4088, 4089, 100000} {
			m, err := r.ReadMessage()
			if err != nil || len(m.Payload) != n || m.Type != PacketLogin7 {
				t.Fatalf("message of %d: %d bytes, %v", n, len(m.Payload), err)
			}
		}
	})
}
