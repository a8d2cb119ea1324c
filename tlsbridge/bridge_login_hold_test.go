package tlsbridge

import (
	"testing"

	"github.com/tdsproxy/tdsproxy/tds"
)

// partialLogin7 holds exactly the start of a LOGIN7 message whose EOM
// packet has not arrived: a split header, a split packet, a non-EOM
// packet; not a whole LOGIN7, nor anything else.
func TestPartialLogin7(t *testing.T) {
	w := tds.Writer{PacketSize: 512}
	payload := make([]byte, 1200) // three packets of at most 504 bytes of payload
	login := w.AppendMessage(nil, tds.PacketLogin7, 0, payload)
	first := int(login[2])<<8 | int(login[3]) // the first packet's length
	if first >= len(login) {
		t.Fatalf("LOGIN7 of %d bytes in one packet; want several", len(login))
	}
	prelogin := w.AppendMessage(nil, tds.PacketPrelogin, 0, make([]byte, 10))
	cases := []struct {
		name string
		b    []byte
		want bool
	}{
		{"empty", nil, false},
		{"PRELOGIN", prelogin, false},
		{"whole LOGIN7", login, false},
		{"split header", login[:5], true},
		{"split first packet", login[:first-1], true},
		{"first packet only", login[:first], true},
		{"all but the last byte", login[:len(login)-1], true},
		{"not TDS", []byte{0x10, 0x01, 0x00, 0x02, 0, 0, 0, 0}, false},
	}
	for _, tc := range cases {
		if got := partialLogin7(tc.b); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
