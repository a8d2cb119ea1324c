package tds

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestParsePreloginFixtures(t *testing.T) {
	t.Run("spec §4.1 request", func(t *testing.T) {
		pkt := fixtureSpecPreloginPacket(t)
		h, err := ParseHeader(pkt)
		if err != nil {
			t.Fatal(err)
		}
		if h.Type != PacketPrelogin || !h.Status.EOM() || int(h.Length) != len(pkt) {
			t.Fatalf("header = %v", h)
		}
		p, err := ParsePrelogin(pkt[HeaderLen:])
		if err != nil {
			t.Fatal(err)
		}
		wantTokens := []PreloginToken{PreloginVersion, PreloginEncryption, PreloginInstance, PreloginThreadID, PreloginMARS}
		if got := tokensOf(p); !reflect.DeepEqual(got, wantTokens) {
			t.Fatalf("tokens = %v, want %v", got, wantTokens)
		}
		if v, ok := p.Version(); !ok || v.String() != "9.0.0.0" {
			t.Errorf("Version = %v, %v", v, ok)
		}
		if e, ok := p.Encryption(); !ok || e != EncryptOn {
			t.Errorf("Encryption = %v, %v", e, ok)
		}
		if s, ok := p.Instance(); !ok || s != "" {
			t.Errorf("Instance = %q, %v", s, ok)
		}
		if id, ok := p.ThreadID(); !ok || id != 3512 {
			t.Errorf("ThreadID = %d, %v", id, ok)
		}
		if m, ok := p.MARS(); !ok || !m {
			t.Errorf("MARS = %v, %v", m, ok)
		}
		if _, ok := p.TraceID(); ok {
			t.Error("TraceID present")
		}
		if got := p.Marshal(); !bytes.Equal(got, pkt[HeaderLen:]) {
			t.Errorf("Marshal = % X\nwant      % X", got, pkt[HeaderLen:])
		}
	})
	t.Run("go-mssqldb request", func(t *testing.T) {
		raw := fixtureGoMssqldbPrelogin(t)
		p, err := ParsePrelogin(raw)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := p.Version(); v != (ProductVersion{Major: 2, Minor: 0, Build: 0x0B01}) {
			t.Errorf("Version = %v (go-mssqldb writes its version little-endian)", v)
		}
		if e, _ := p.Encryption(); e != EncryptNotSup {
			t.Errorf("Encryption = %v", e)
		}
		tr, ok := p.TraceID()
		if !ok {
			t.Fatal("no TraceID")
		}
		if got := tr.ConnectionID.String(); got != "6F9619FF-8B86-D011-B42D-00C04FC964FF" {
			t.Errorf("ConnectionID = %s", got)
		}
		if tr.ActivityID != (GUID{}) || tr.Sequence != 0 {
			t.Errorf("activity = %v/%d", tr.ActivityID, tr.Sequence)
		}
		if !bytes.Equal(tr.Bytes(), raw[44:80]) {
			t.Errorf("TraceID.Bytes = % X", tr.Bytes())
		}
		if got := p.Marshal(); !bytes.Equal(got, raw) {
			t.Errorf("Marshal = % X\nwant      % X", got, raw)
		}
	})
	t.Run("server response", func(t *testing.T) {
		raw := fixtureServerPreloginResponse(t)
		p, err := ParsePrelogin(raw)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := p.Version(); v.String() != "15.0.2000.0" {
			t.Errorf("Version = %v", v)
		}
		if !bytes.Equal((ProductVersion{Major: 15, Build: 2000}).Bytes(), raw[26:32]) {
			t.Error("ProductVersion.Bytes disagrees with the fixture")
		}
		if _, ok := p.ThreadID(); ok {
			t.Error("empty THREADID decoded")
		}
		if d, ok := p.Get(PreloginThreadID); !ok || len(d) != 0 {
			t.Errorf("Get(THREADID) = %v, %v", d, ok)
		}
		if got := p.Marshal(); !bytes.Equal(got, raw) {
			t.Errorf("Marshal = % X\nwant      % X", got, raw)
		}
	})
}

func tokensOf(p *Prelogin) []PreloginToken {
	var ts []PreloginToken
	for _, o := range p.Options {
		ts = append(ts, o.Token)
	}
	return ts
}

func TestParsePreloginKeepsOrderDuplicatesUnknown(t *testing.T) {
	raw := unhex(t, `
		01 00 10 00 01 // ENCRYPTION first (SQL Server would reject this; we still parse it)
		42 00 11 00 02 // unknown token 0x42
		01 00 13 00 01 // duplicate ENCRYPTION
		FF
		03 AB CD 00
	`)
	p, err := ParsePrelogin(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := []PreloginOption{
		{PreloginEncryption, []byte{0x03}},
		{PreloginToken(0x42), []byte{0xAB, 0xCD}},
		{PreloginEncryption, []byte{0x00}},
	}
	if !reflect.DeepEqual(p.Options, want) {
		t.Fatalf("Options = %v", p.Options)
	}
	if e, _ := p.Encryption(); e != EncryptReq {
		t.Errorf("Encryption = %v, want the first occurrence", e)
	}
	// Data aliases the payload: the original bytes are kept, not copied.
	if &p.Options[1].Data[0] != &raw[0x11] {
		t.Error("Data does not alias the payload")
	}
	if PreloginToken(0x42).String() != "0x42" {
		t.Errorf("unknown token String = %s", PreloginToken(0x42))
	}
}

func TestParsePreloginErrors(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want error
	}{
		{"empty", ``, ErrPreloginNoTerm},
		{"no terminator", `00 00 05 00 00`, ErrPreloginNoTerm},
		{"entry cut in offset", `00 00`, ErrPreloginTruncated},
		{"entry cut in length", `00 00 06 00`, ErrPreloginTruncated},
		{"data past end", `00 00 06 00 02 FF 01`, ErrPreloginDataBounds},
		{"offset past end", `00 FF FF 00 00 FF`, ErrPreloginDataBounds},
		{"offset+length wraps 16 bits", `00 FF FF 00 02 FF`, ErrPreloginDataBounds},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePrelogin(unhex(t, tt.raw))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if p != nil {
				t.Errorf("p = %v on error", p)
			}
		})
	}
}

func TestPreloginSetGet(t *testing.T) {
	p := &Prelogin{}
	p.Set(PreloginVersion, (ProductVersion{Major: 16, Build: 1000}).Bytes())
	p.Set(PreloginEncryption, []byte{byte(EncryptOff)})
	p.Set(PreloginEncryption, []byte{byte(EncryptReq)}) // replaces
	p.Set(PreloginTerminator, []byte{1})                // ignored
	p.Set(PreloginInstance, []byte("MSSQLSERVER\x00"))
	if len(p.Options) != 3 {
		t.Fatalf("Options = %v", p.Options)
	}
	q, err := ParsePrelogin(p.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(q.Options, p.Options) {
		t.Fatalf("round trip: %v != %v", q.Options, p.Options)
	}
	if e, _ := q.Encryption(); e != EncryptReq {
		t.Errorf("Encryption = %v", e)
	}
	if s, _ := q.Instance(); s != "MSSQLSERVER" {
		t.Errorf("Instance = %q", s)
	}
	if _, ok := q.Get(PreloginNonce); ok {
		t.Error("Get of absent option succeeded")
	}
	q.Set(PreloginFedAuthRequired, []byte{1})
	q.Set(PreloginNonce, bytes.Repeat([]byte{7}, 32))
	if f, ok := q.FedAuthRequired(); !ok || !f {
		t.Error("FedAuthRequired")
	}
	if n, ok := q.Nonce(); !ok || len(n) != 32 {
		t.Error("Nonce")
	}
}

func TestPreloginMarshalTooLarge(t *testing.T) {
	big := make([]byte, 0xFFFF)
	p := &Prelogin{Options: []PreloginOption{{PreloginNonce, big}, {PreloginNonce, big}}}
	if _, err := p.Append(nil); !errors.Is(err, ErrPreloginTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if p.Marshal() != nil {
		t.Error("Marshal returned bytes for an unencodable message")
	}
}

func TestEncryptionString(t *testing.T) {
	tests := []struct {
		e    Encryption
		want string
	}{
		{EncryptOff, "OFF"}, {EncryptOn, "ON"}, {EncryptNotSup, "NOT_SUP"}, {EncryptReq, "REQ"},
		{EncryptStrict, "STRICT"}, {EncryptOn | EncryptClientCert, "ON+CLIENT_CERT"},
		{0x07, "0x07"}, {0x87, "0x87"},
	}
	for _, tt := range tests {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("%#x.String() = %q, want %q", uint8(tt.e), got, tt.want)
		}
	}
	if e := EncryptReq | EncryptClientCert; e.Base() != EncryptReq || !e.ClientCert() || EncryptReq.ClientCert() {
		t.Error("Base/ClientCert")
	}
}

func TestGUID(t *testing.T) {
	// The classic .NET example: Guid("6F9619FF-8B86-D011-B42D-00C04FC964FF").ToByteArray().
	g := GUID{0xFF, 0x19, 0x96, 0x6F, 0x86, 0x8B, 0x11, 0xD0, 0xB4, 0x2D, 0x00, 0xC0, 0x4F, 0xC9, 0x64, 0xFF}
	const want = "6F9619FF-8B86-D011-B42D-00C04FC964FF"
	if g.String() != want {
		t.Fatalf("String = %s", g)
	}
	if txt, _ := g.MarshalText(); string(txt) != want {
		t.Errorf("MarshalText = %s", txt)
	}
	back, err := ParseGUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")
	if err != nil || back != g {
		t.Errorf("ParseGUID = %v, %v", back, err)
	}
	for _, bad := range []string{"", "6F9619FF8B86D011B42D00C04FC964FF", "6F9619FF-8B86-D011-B42D-00C04FC964FG"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) succeeded", bad)
		}
	}
}

func TestNegotiateEncryption(t *testing.T) {
	// All 16 cells of docs/protocol.md "Who encrypts what" (MS-TDS §2.2.6.5),
	// with the server setting REQ behaving like ON.
	type cell struct {
		reply Encryption
		scope TLSScope
	}
	servers := []Encryption{EncryptOff, EncryptOn, EncryptNotSup, EncryptReq}
	table := map[Encryption][4]cell{
		EncryptOff:    {{EncryptOff, ScopeLoginOnly}, {EncryptReq, ScopeSession}, {EncryptNotSup, ScopeNone}, {EncryptReq, ScopeSession}},
		EncryptOn:     {{EncryptOn, ScopeSession}, {EncryptOn, ScopeSession}, {EncryptNotSup, ScopeTerminated}, {EncryptOn, ScopeSession}},
		EncryptNotSup: {{EncryptNotSup, ScopeNone}, {EncryptReq, ScopeTerminated}, {EncryptNotSup, ScopeNone}, {EncryptReq, ScopeTerminated}},
		EncryptReq:    {{EncryptOn, ScopeSession}, {EncryptOn, ScopeSession}, {EncryptNotSup, ScopeTerminated}, {EncryptOn, ScopeSession}},
	}
	for client, row := range table {
		for i, server := range servers {
			t.Run(client.String()+"/"+server.String(), func(t *testing.T) {
				want := row[i]
				for _, c := range []Encryption{client, client | EncryptClientCert} {
					reply, scope := NegotiateEncryption(c, server)
					if reply != want.reply || scope != want.scope {
						t.Errorf("NegotiateEncryption(%v, %v) = %v, %v; want %v, %v", c, server, reply, scope, want.reply, want.scope)
					}
				}
			})
		}
	}
	t.Run("outside the table", func(t *testing.T) {
		tests := []struct {
			client, server Encryption
			reply          Encryption
			scope          TLSScope
		}{
			{EncryptStrict, EncryptOff, EncryptNotSup, ScopeSession},
			{EncryptStrict, EncryptNotSup, EncryptNotSup, ScopeSession},
			{0x05, EncryptOn, EncryptNotSup, ScopeTerminated},
			{EncryptOn, 0x09, EncryptNotSup, ScopeTerminated},
		}
		for _, tt := range tests {
			reply, scope := NegotiateEncryption(tt.client, tt.server)
			if reply != tt.reply || scope != tt.scope {
				t.Errorf("NegotiateEncryption(%v, %v) = %v, %v", tt.client, tt.server, reply, scope)
			}
		}
	})
	for s, want := range map[TLSScope]string{ScopeNone: "none", ScopeLoginOnly: "login-only", ScopeSession: "session", ScopeTerminated: "terminated", 9: "TLSScope(9)"} {
		if s.String() != want {
			t.Errorf("TLSScope(%d).String() = %q", s, s.String())
		}
	}
}
