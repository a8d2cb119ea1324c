package tds

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const sessionTestPassword = "Secr3t-Pa55!"

// sessionStreams builds one login and a few requests as a client and a
// server would send them (MS-TDS §2.2.6, §2.2.7), each message in packets
// of at most packetSize bytes.
func sessionStreams(t testing.TB, packetSize int) (c2s, s2c []byte) {
	t.Helper()
	w := Writer{PacketSize: packetSize}
	login := (&Login7{TDSVersion: VersionTDS74, UserName: "alice", Password: NewPassword(sessionTestPassword),
		AppName: "app1", HostName: "host1", Database: "db1", LibraryName: "go-mssqldb", ServerName: "srv"}).Marshal()
	c2s = w.AppendMessage(c2s, PacketLogin7, 0, login)

	var resp []byte
	resp = AppendEnvChange(resp, EnvDatabase, "db1", "master")
	resp = AppendEnvChange(resp, EnvLanguage, "us_english", "")
	resp = AppendEnvChange(resp, EnvPacketSize, "8192", "4096")
	resp = AppendLoginAck(resp, LoginAck{Interface: LoginAckInterfaceTSQL, TDSVersion: 0x74000004,
		ProgName: "Microsoft SQL Server", ProgVersion: [4]byte{16, 0, 0x03, 0xE8}})
	resp = AppendDone(resp, TokenDone, DoneFinal, 0, 0)
	s2c = w.AppendMessage(s2c, PacketReply, 0, resp)

	c2s = w.AppendMessage(c2s, PacketSQLBatch, 0, AppendSQLBatch(nil, "SELECT 1 WHERE x = 'lit'", 0))
	var sel []byte
	sel, err := AppendRow(AppendColMetadata(nil, []Column{{Type: ColInt4}}), []Column{{Type: ColInt4}}, []any{int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	sel = AppendDone(sel, TokenDone, DoneCount, CurCmdSelect, 1)
	s2c = w.AppendMessage(s2c, PacketReply, 0, sel)

	c2s = w.AppendMessage(c2s, PacketRPC, 0, AppendRPCName(nil, "tdsproxy_nope", 0))
	var e []byte
	e = AppendError(e, ServerMessage{Number: 2812, State: 62, Class: 16, Message: "Could not find stored procedure 'tdsproxy_nope'.", ServerName: "srv", Line: 1})
	e = AppendDone(e, TokenDoneProc, DoneError, 0, 0)
	s2c = w.AppendMessage(s2c, PacketReply, 0, e)

	c2s = w.AppendMessage(c2s, PacketRPC, 0, AppendRPCName(nil, "", 10))
	s2c = w.AppendMessage(s2c, PacketReply, 0, AppendDone(nil, TokenDoneProc, DoneCount, 0, 5))

	c2s = w.AppendMessage(c2s, PacketAttention, 0, nil)
	s2c = w.AppendMessage(s2c, PacketReply, 0, AppendDone(nil, TokenDone, DoneAttn, 0, 0))

	var route []byte
	rv := []byte{0}
	rv = binary.LittleEndian.AppendUint16(rv, 1433)
	rv = binary.LittleEndian.AppendUint16(rv, uint16(ucs2Len("replica.example")))
	rv = appendUCS2(rv, "replica.example")
	route = EnvChange{Type: EnvRouting, NewBytes: rv}.AppendTo(route)
	c2s = w.AppendMessage(c2s, PacketSQLBatch, 0, AppendSQLBatch(nil, "select 2", 0))
	s2c = w.AppendMessage(s2c, PacketReply, 0, AppendDone(route, TokenDone, DoneFinal, 0, 0))
	return c2s, s2c
}

// feedInterleaved feeds the two streams message by message in the order a
// client and server take turns, each in chunks of n bytes.
func feedInterleaved(t testing.TB, d *SessionDecoder, c2s, s2c []byte, n int) {
	t.Helper()
	split := func(b []byte) [][]byte {
		var out [][]byte
		for len(b) > 0 {
			var msg []byte
			for {
				h, err := ParseHeader(b)
				if err != nil {
					t.Fatalf("test stream: %v", err)
				}
				msg = append(msg, b[:h.Length]...)
				b = b[h.Length:]
				if h.Status.EOM() {
					break
				}
			}
			out = append(out, msg)
		}
		return out
	}
	cm, sm := split(c2s), split(s2c)
	if len(cm) != len(sm) {
		t.Fatalf("%d client messages, %d server", len(cm), len(sm))
	}
	chunks := func(from bool, b []byte) {
		for len(b) > 0 {
			k := min(n, len(b))
			d.Feed(from, b[:k])
			b = b[k:]
		}
	}
	for i := range cm {
		chunks(true, cm[i])
		chunks(false, sm[i])
	}
}

func TestSessionDecoder(t *testing.T) {
	for _, tc := range []struct {
		packet, chunk int
		mode          QueryMode
	}{{4096, 1 << 20, QueriesNone}, {512, 1, QueriesText}, {512, 7, QueriesFingerprint}, {512, 4093, QueriesNone}} {
		t.Run(fmt.Sprintf("packet=%d/chunk=%d/%s", tc.packet, tc.chunk, tc.mode), func(t *testing.T) {
			c2s, s2c := sessionStreams(t, tc.packet)
			d := &SessionDecoder{Queries: tc.mode}
			feedInterleaved(t, d, c2s, s2c, tc.chunk)
			s := d.Summary()
			wantLogin := SessionLogin{TDSVersion: VersionTDS74, User: "alice", App: "app1", Host: "host1", Server: "srv",
				Database: "db1", Library: "go-mssqldb"}
			if s.Login == nil || *s.Login != wantLogin {
				t.Errorf("login %+v, want %+v", s.Login, wantLogin)
			}
			if s.LoginOutcome != "success" || s.LoginAck == nil || s.LoginAck.ProgVersion != [4]byte{16, 0, 3, 0xE8} {
				t.Errorf("outcome %q ack %+v", s.LoginOutcome, s.LoginAck)
			}
			if s.Database != "db1" || s.Language != "us_english" || s.PacketSize != "8192" || s.Routing != "replica.example:1433" {
				t.Errorf("env: db %q lang %q packet %q routing %q", s.Database, s.Language, s.PacketSize, s.Routing)
			}
			if s.SQLBatches != 2 || s.RPCs != 2 || s.Attentions != 1 {
				t.Errorf("batches %d rpcs %d attentions %d", s.SQLBatches, s.RPCs, s.Attentions)
			}
			if want := []string{"tdsproxy_nope", "sp_executesql"}; !reflect.DeepEqual(s.Procedures, want) {
				t.Errorf("procedures %q, want %q", s.Procedures, want)
			}
			if s.ErrorCount != 1 || len(s.Errors) != 1 || s.Errors[0].Number != 2812 || s.Errors[0].State != 62 ||
				s.Errors[0].Class != 16 || s.Errors[0].Line != 1 || !strings.Contains(s.Errors[0].Message, "tdsproxy_nope") {
				t.Errorf("errors %d %+v", s.ErrorCount, s.Errors)
			}
			if s.Rows != 6 || s.Dones != 6 {
				t.Errorf("rows %d dones %d, want 6 6", s.Rows, s.Dones)
			}
			switch tc.mode {
			case QueriesNone:
				if len(s.Queries) != 0 {
					t.Errorf("queries %q with none", s.Queries)
				}
			case QueriesText:
				if want := []string{"SELECT 1 WHERE x = 'lit'", "select 2"}; !reflect.DeepEqual(s.Queries, want) {
					t.Errorf("queries %q, want %q", s.Queries, want)
				}
			case QueriesFingerprint:
				if len(s.Queries) != 2 || s.Queries[0] != QueryFingerprint("select 7  where X = 'other'") || strings.Contains(s.Queries[0], "lit") {
					t.Errorf("fingerprints %q", s.Queries)
				}
			}
			if len(s.Issues) != 0 {
				t.Errorf("issues %q", s.Issues)
			}
			js, _ := json.Marshal(s)
			if all := fmt.Sprintf("%+v %#v %s", s, s, js); strings.Contains(all, sessionTestPassword) {
				t.Fatal("the summary holds the password")
			}
		})
	}
}

func TestSessionDecoderLoginFailed(t *testing.T) {
	w := Writer{}
	c2s := w.AppendMessage(nil, PacketLogin7, 0, (&Login7{TDSVersion: VersionTDS74, UserName: "bob", Password: NewPassword("x")}).Marshal())
	e := AppendError(nil, ServerMessage{Number: 18456, State: 1, Class: 14, Message: "Login failed for user 'bob'."})
	s2c := w.AppendMessage(nil, PacketReply, 0, AppendDone(e, TokenDone, DoneError, 0, 0))
	d := &SessionDecoder{}
	d.Feed(true, c2s)
	if buf := d.dirs[0].payload[:cap(d.dirs[0].payload)]; bytes.Contains(buf, ObfuscatePassword(appendUCS2(nil, "x"))) {
		t.Fatal("the decoder kept the obfuscated password")
	}
	d.Feed(false, s2c)
	s := d.Summary()
	if s.LoginOutcome != "failed" || s.LoginAck != nil || len(s.Errors) != 1 || s.Errors[0].Number != 18456 ||
		s.Errors[0].Message != "Login failed for user 'bob'." {
		t.Fatalf("summary %+v", s)
	}
}

func TestSessionDecoderBounds(t *testing.T) {
	w := Writer{}
	d := &SessionDecoder{DecodeLimit: 100}
	var e []byte
	for i := range 40 {
		e = AppendError(e, ServerMessage{Number: int32(50000 + i), Class: 16, Message: strings.Repeat("m", 10)})
	}
	d.Feed(true, w.AppendMessage(nil, PacketSQLBatch, 0, AppendSQLBatch(nil, "x", 0)))
	d.Feed(false, w.AppendMessage(nil, PacketReply, 0, e))
	s := d.Summary()
	if s.Truncated != 1 || len(s.Errors) > MaxSessionErrors || len(s.Issues) != 0 {
		t.Fatalf("truncated %d errors %d issues %q", s.Truncated, len(s.Errors), s.Issues)
	}
	// Unlimited: 40 errors counted, MaxSessionErrors kept.
	d = &SessionDecoder{}
	d.Feed(false, w.AppendMessage(nil, PacketReply, 0, e))
	if s := d.Summary(); s.ErrorCount != 40 || len(s.Errors) != MaxSessionErrors {
		t.Fatalf("error count %d kept %d", s.ErrorCount, len(s.Errors))
	}
	// A bad header stops decoding that direction, once.
	d.Feed(true, []byte{1, 1, 0, 3, 0, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9, 9})
	d.Feed(true, bytes.Repeat([]byte{0xFF}, 64))
	if s := d.Summary(); len(s.Issues) != 1 {
		t.Fatalf("issues %q", s.Issues)
	}
}

func TestNormalizeQuery(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1":                            "select ?",
		"select  *\n from t where a='x''y'":   "select * from t where a=?",
		"SELECT N'abc', 0x1F, 3.5 -- comment": "select ?, ?, ?",
		"select c1 /* c */ from t2":           "select c1 from t2",
		"exec @p1 = sp_x 12":                  "exec @p1 = sp_x ?",
	} {
		if got := NormalizeQuery(in); got != want {
			t.Errorf("NormalizeQuery(%q) = %q, want %q", in, got, want)
		}
	}
	if QueryFingerprint("SELECT 1") != QueryFingerprint("select   2") || QueryFingerprint("select 1") == QueryFingerprint("select a") {
		t.Error("fingerprints do not group by shape")
	}
}

func TestParseRPCName(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want string
	}{
		{AppendRPCName(nil, "dbo.p", 0), "dbo.p"},
		{AppendRPCName(nil, "", 13), "sp_prepexec"},
		{AppendRPCName(nil, "", 99), "procid:99"},
	} {
		if got, err := ParseRPCName(tc.b); err != nil || got != tc.want {
			t.Errorf("ParseRPCName = %q, %v; want %q", got, err, tc.want)
		}
	}
	if _, err := ParseRPCName([]byte{22, 0, 0, 0, 1}); err == nil {
		t.Error("a short RPC parsed")
	}
}

// FuzzSessionDecoder feeds arbitrary bytes to both directions: decoding
// never panics, the summary stays within its bounds and never shows the
// password of a LOGIN7 in the stream.
func FuzzSessionDecoder(f *testing.F) {
	c2s, s2c := sessionStreams(f, 512)
	w := Writer{}
	seeds := map[string][2][]byte{
		"session":          {c2s, s2c},
		"empty":            {nil, nil},
		"bad header":       {{1, 1, 0, 3, 0, 0, 0, 0}, {4, 1, 0, 0}},
		"login only":       {c2s[:300], nil},
		"reply before ask": {nil, s2c},
		"rpc procid":       {w.AppendMessage(nil, PacketRPC, 0, AppendRPCName(nil, "", 10)), nil},
		"rpc short":        {w.AppendMessage(nil, PacketRPC, 0, []byte{0xFF}), nil},
		"type change":      {append(packet(PacketSQLBatch, 0, 1, []byte("ab")), packet(PacketRPC, StatusEOM, 2, []byte("c"))...), nil},
		"prelogin":         {fixtureSpecPreloginPacket(f), w.AppendMessage(nil, PacketReply, 0, []byte{0xFF})},
		"truncated error":  {w.AppendMessage(nil, PacketSQLBatch, 0, nil), w.AppendMessage(nil, PacketReply, 0, []byte{TokenError, 0xFF, 0xFF, 1})},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], uint8(0))
		f.Add(s[0], s[1], uint8(5))
	}
	f.Fuzz(func(t *testing.T, a, b []byte, chunk uint8) {
		d := &SessionDecoder{Queries: QueriesText, DecodeLimit: 4096}
		n := int(chunk) + 1
		for len(a) > 0 || len(b) > 0 {
			k := min(n, len(a))
			d.Feed(true, a[:k])
			a = a[k:]
			k = min(n, len(b))
			d.Feed(false, b[:k])
			b = b[k:]
		}
		s := d.Summary()
		if len(s.Errors) > MaxSessionErrors || len(s.Procedures) > MaxSessionProcs || len(s.Queries) > MaxSessionQueries ||
			len(s.Issues) > MaxSessionIssues {
			t.Fatalf("bounds: %d errors %d procs %d queries %d issues", len(s.Errors), len(s.Procedures), len(s.Queries), len(s.Issues))
		}
		if s.Login != nil && strings.Contains(fmt.Sprintf("%+v", s), sessionTestPassword) {
			t.Fatal("password in summary")
		}
	})
}
