package proxy

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/tds"
)

// The watcher's negotiation state only moves forward: a LOGIN7-first
// client (tds7-login) that then sends a PRELOGIN gets a note, not a
// PRELOGIN phase, and the server's reply is still its login response.
func TestWatcherStateForwardOnly(t *testing.T) {
	rec := &Record{Start: time.Unix(0, 0), Watching: true}
	w := newWatcher(rec, func() time.Time { return time.Unix(1, 0) }, DefaultMaxNegotiationBuffer)
	login, err := (&tds.Login7{TDSVersion: 0x74000004, PacketSize: 4096, UserName: "u", Password: tds.NewPassword("p")}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	var wr tds.Writer
	pre := &tds.Prelogin{}
	pre.Set(tds.PreloginVersion, []byte{0x0F, 0, 0x07, 0xD0, 0, 0})
	pre.Set(tds.PreloginEncryption, []byte{byte(tds.EncryptOff)})
	var phases []Phase
	feed := func(dir Direction, b []byte) {
		for _, ev := range w.feed(dir, b) {
			phases = append(phases, ev.Phase)
		}
	}
	feed(ClientToServer, wr.AppendMessage(nil, tds.PacketLogin7, 0, login))
	if w.state != negLoginSent || rec.Protocol != ProtocolTDS7Login {
		t.Fatalf("after LOGIN7: state %d, protocol %q", w.state, rec.Protocol)
	}
	feed(ClientToServer, wr.AppendMessage(nil, tds.PacketPrelogin, 0, pre.Marshal()))
	if w.state != negLoginSent || slices.Contains(phases, PhasePreloginRequest) {
		t.Errorf("a PRELOGIN after LOGIN7 moved the state: %d, phases %v", w.state, phases)
	}
	if !slices.ContainsFunc(rec.Notes, func(n string) bool { return strings.Contains(n, "unexpected PRELOGIN") }) {
		t.Errorf("notes %q, want one about the unexpected PRELOGIN", rec.Notes)
	}
	feed(ServerToClient, wr.AppendMessage(nil, tds.PacketReply, 0, pre.Marshal()))
	if w.state != negLoginAnswered || !slices.Contains(phases, PhaseLoginResponse) {
		t.Errorf("the reply after LOGIN7: state %d, phases %v; want the login response", w.state, phases)
	}
}
