package emulator

import (
	"bytes"
	"encoding/binary"
	"net"
	"slices"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/tdsproxy/tdsproxy/tds"
)

// wireClient is a minimal plaintext TDS client built on the tds package, for
// checks below the level of a driver: token order, packet sizes, attention.
type wireClient struct {
	t    *testing.T
	conn net.Conn
	r    *tds.Reader
	w    tds.Writer
}

func dialWire(t *testing.T, s *Server) *wireClient {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return &wireClient{t: t, conn: c, r: tds.NewReader(c), w: tds.Writer{W: c}}
}

func (c *wireClient) send(typ tds.PacketType, payload []byte) {
	c.t.Helper()
	if err := c.w.WriteMessage(typ, payload); err != nil {
		c.t.Fatal(err)
	}
}

// readReply reads one REPLY message, checking every packet against the
// largest size allowed.
func (c *wireClient) readReply(maxPacket int) (payload []byte, packets int) {
	c.t.Helper()
	for {
		h, p, err := c.r.ReadPacket(payload)
		if err != nil {
			c.t.Fatalf("reading reply packet %d: %v", packets+1, err)
		}
		payload, packets = p, packets+1
		if h.Type != tds.PacketReply {
			c.t.Fatalf("packet type %s, want REPLY", h.Type)
		}
		if int(h.Length) > maxPacket {
			c.t.Fatalf("packet %d is %d bytes, over %d", packets, h.Length, maxPacket)
		}
		if h.Status.EOM() {
			return payload, packets
		}
	}
}

// login runs PRELOGIN (ENCRYPT_NOT_SUP) and LOGIN7 asking for packetSize.
func (c *wireClient) login(packetSize uint32) *tds.LoginResponse {
	c.t.Helper()
	pre := &tds.Prelogin{}
	pre.Set(tds.PreloginVersion, []byte{1, 0, 0, 0, 0, 0})
	pre.Set(tds.PreloginEncryption, []byte{byte(tds.EncryptNotSup)})
	c.send(tds.PacketPrelogin, pre.Marshal())
	payload, _ := c.readReply(tds.DefaultPacketSize)
	reply, err := tds.ParsePrelogin(payload)
	if err != nil {
		c.t.Fatalf("PRELOGIN reply: %v", err)
	}
	if v, ok := reply.Version(); !ok || v.Major != 16 {
		c.t.Errorf("PRELOGIN VERSION %+v, want major 16 first", v)
	}
	if enc, _ := reply.Encryption(); enc != tds.EncryptNotSup {
		c.t.Fatalf("PRELOGIN ENCRYPTION %s, want NOT_SUP", enc)
	}
	l := &tds.Login7{TDSVersion: tds.VersionTDS74, PacketSize: packetSize, UserName: "wire",
		Password: tds.NewPassword("pw"), AppName: "wire_test", HostName: "test"}
	c.send(tds.PacketLogin7, l.Marshal())
	payload, _ = c.readReply(tds.DefaultPacketSize)
	resp, err := tds.ParseLoginResponse(payload)
	if err != nil {
		c.t.Fatalf("login response: %v", err)
	}
	return resp
}

func (c *wireClient) batch(text string, maxPacket int) (*tds.Result, int) {
	c.t.Helper()
	c.send(tds.PacketSQLBatch, tds.AppendSQLBatch(nil, text, 0))
	payload, packets := c.readReply(maxPacket)
	res, err := tds.ParseResult(payload)
	if err != nil {
		c.t.Fatalf("result of %q: %v", text, err)
	}
	return res, packets
}

func TestWireLoginResponse(t *testing.T) {
	s := startServer(t, Config{})
	tests := []struct {
		requested uint32
		granted   string
	}{
		{512, "512"},
		{8192, "8192"},
		{0, "4096"},     // below the range: default
		{65535, "4096"}, // above the range: default
	}
	for _, tc := range tests {
		t.Run(tc.granted, func(t *testing.T) {
			resp := dialWire(t, s).login(tc.requested)
			if resp.Ack == nil || resp.Ack.TDSVersion != tds.VersionTDS74 || resp.Ack.ProgName != "Microsoft SQL Server" {
				t.Fatalf("LOGINACK %+v", resp.Ack)
			}
			if resp.Done == nil || resp.Done.Status != tds.DoneFinal {
				t.Errorf("DONE %+v", resp.Done)
			}
			got := map[tds.EnvChangeType]tds.EnvChange{}
			for _, e := range resp.EnvChanges {
				got[e.Type] = e
			}
			if got[tds.EnvDatabase].New != "master" || got[tds.EnvLanguage].New != "us_english" {
				t.Errorf("env changes %+v", resp.EnvChanges)
			}
			coll := tds.DefaultCollation()
			if !bytes.Equal(got[tds.EnvSQLCollation].NewBytes, coll[:]) {
				t.Errorf("collation % x", got[tds.EnvSQLCollation].NewBytes)
			}
			if got[tds.EnvPacketSize].New != tc.granted {
				t.Errorf("packet size %q, want %q", got[tds.EnvPacketSize].New, tc.granted)
			}
			want := []tds.TokenType{tds.TokenEnvChange, tds.TokenInfo, tds.TokenEnvChange, tds.TokenEnvChange,
				tds.TokenInfo, tds.TokenLoginAck, tds.TokenEnvChange, tds.TokenDone}
			if !slices.Equal(resp.Tokens, want) {
				t.Errorf("tokens %v, want SQL Server's order %v", resp.Tokens, want)
			}
		})
	}
}

func TestWireBatches(t *testing.T) {
	s := startServer(t, Config{})
	c := dialWire(t, s)
	c.login(512)

	t.Run("SELECT 1", func(t *testing.T) {
		// MS-TDS §2.2.7 (docs/protocol.md): COLMETADATA (one INT4), ROW, DONE count 1, cmd 0xC1.
		res, _ := c.batch("SELECT 1", 512)
		if len(res.Columns) != 1 || res.Columns[0].Type != tds.ColInt4 || len(res.Rows) != 1 {
			t.Fatalf("result %+v", res)
		}
		if len(res.Done) != 1 || res.Done[0] != (tds.Done{Token: tds.TokenDone, Status: tds.DoneCount, CurCmd: tds.CurCmdSelect, RowCount: 1}) {
			t.Errorf("DONE %+v", res.Done)
		}
	})
	t.Run("large rows use the negotiated packet size", func(t *testing.T) {
		res, packets := c.batch("select large(20, 2000)", 512)
		if len(res.Rows) != 20 || packets < 20*2000/512 {
			t.Errorf("%d rows in %d packets", len(res.Rows), packets)
		}
	})
	t.Run("two statements", func(t *testing.T) {
		res, _ := c.batch("SELECT 1; SELECT @@SPID;", 512)
		if len(res.Done) != 2 || res.Done[0].Status != tds.DoneCount|tds.DoneMore || res.Done[1].Status != tds.DoneCount {
			t.Errorf("DONEs %+v", res.Done)
		}
	})
	t.Run("setup only", func(t *testing.T) {
		res, _ := c.batch("set textsize 2147483647\nset quoted_identifier on\nset language us_english", 512)
		if len(res.Done) != 1 || res.Done[0].Status != tds.DoneFinal || len(res.Errors) != 0 {
			t.Errorf("result %+v", res)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		res, _ := c.batch("SELECT 1 -- with a comment", 512)
		if len(res.Errors) != 1 || res.Errors[0].Number != 2812 || res.Errors[0].Class != 16 {
			t.Fatalf("errors %+v", res.Errors)
		}
		if len(res.Done) != 1 || res.Done[0].Status&tds.DoneError == 0 {
			t.Errorf("DONE %+v", res.Done)
		}
	})
	t.Run("error stops the batch", func(t *testing.T) {
		res, _ := c.batch("SELECT 1; DELETE FROM t; SELECT 1", 512)
		if len(res.Rows) != 1 || len(res.Errors) != 1 || len(res.Done) != 2 {
			t.Fatalf("result %+v", res)
		}
		if last := res.Done[1]; last.Status != tds.DoneError {
			t.Errorf("last DONE %+v, want DONE_ERROR without DONE_MORE", last)
		}
	})
	t.Run("attention", func(t *testing.T) {
		c.send(tds.PacketAttention, nil)
		payload, _ := c.readReply(512)
		d, err := tds.ParseDone(payload)
		if err != nil || d.Status&tds.DoneAttn == 0 {
			t.Errorf("DONE %+v, %v", d, err)
		}
	})
	t.Run("still usable", func(t *testing.T) {
		if res, _ := c.batch("SELECT 1", 512); len(res.Rows) != 1 {
			t.Errorf("result %+v", res)
		}
	})
}

// rpcPayload builds an RPC request calling proc (or ProcID procID when proc
// is "") with one NVARCHAR parameter, as go-mssqldb and tedious do for
// sp_executesql; plp selects the nvarchar(max) encoding.
func rpcPayload(proc string, procID uint16, stmt string, plp bool) []byte {
	ucs := func(s string) []byte {
		var b []byte
		for _, u := range utf16.Encode([]rune(s)) {
			b = binary.LittleEndian.AppendUint16(b, u)
		}
		return b
	}
	b := binary.LittleEndian.AppendUint32(nil, 22) // ALL_HEADERS: one transaction descriptor
	b = binary.LittleEndian.AppendUint32(b, 18)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint64(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 1)
	if proc == "" {
		b = binary.LittleEndian.AppendUint16(b, 0xFFFF)
		b = binary.LittleEndian.AppendUint16(b, procID)
	} else {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(proc)))
		b = append(b, ucs(proc)...)
	}
	b = binary.LittleEndian.AppendUint16(b, 0) // option flags
	b = append(b, 0, 0, typeNVarChar)          // unnamed, status 0
	data := ucs(stmt)
	coll := tds.DefaultCollation()
	if plp {
		b = binary.LittleEndian.AppendUint16(b, 0xFFFF)
		b = append(b, coll[:]...)
		b = binary.LittleEndian.AppendUint64(b, uint64(len(data)))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
		b = append(b, data...)
		b = binary.LittleEndian.AppendUint32(b, 0)
	} else {
		b = binary.LittleEndian.AppendUint16(b, 8000)
		b = append(b, coll[:]...)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(data)))
		b = append(b, data...)
	}
	return b
}

func TestWireRPC(t *testing.T) {
	s := startServer(t, Config{})
	c := dialWire(t, s)
	c.login(4096)
	tests := []struct {
		name      string
		payload   []byte
		wantRows  int
		wantError int32
	}{
		{"ProcID 10", rpcPayload("", procExecuteSQL, "SELECT 1", false), 1, 0},
		{"by name, PLP", rpcPayload("sp_executesql", 0, "SELECT @@VERSION", true), 1, 0},
		{"unknown statement", rpcPayload("", procExecuteSQL, "UPDATE t SET x = 1", false), 0, 2812},
		{"unknown procedure", rpcPayload("sp_who", 0, "", false), 0, 2812},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.send(tds.PacketRPC, tc.payload)
			payload, _ := c.readReply(4096)
			res, err := tds.ParseResult(payload)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rows) != tc.wantRows {
				t.Errorf("%d rows, want %d", len(res.Rows), tc.wantRows)
			}
			last := res.Done[len(res.Done)-1]
			if last.Token != tds.TokenDoneProc || last.Status&tds.DoneMore != 0 {
				t.Errorf("last token %+v, want a final DONEPROC", last)
			}
			if tc.wantError != 0 && (len(res.Errors) != 1 || res.Errors[0].Number != tc.wantError || last.Status&tds.DoneError == 0) {
				t.Errorf("errors %+v, last DONE %+v; want %d", res.Errors, last, tc.wantError)
			}
		})
	}
}

func FuzzParseRPC(f *testing.F) {
	f.Add(rpcPayload("", procExecuteSQL, "SELECT 1", false))      // go-mssqldb style, ProcID
	f.Add(rpcPayload("sp_executesql", 0, "SELECT large", true))   // by name, nvarchar(max)
	f.Add([]byte{0x04, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0x0A, 0x00}) // no option flags
	f.Add([]byte{})                                               // empty
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseRPC(b)
	})
}

func FuzzSplitStatements(f *testing.F) {
	f.Add("SELECT 1")
	f.Add("set textsize 1\nset quoted_identifier on")
	f.Add("select large(10,\n20);;")
	f.Fuzz(func(t *testing.T, text string) {
		ss := &session{s: &Server{cfg: Config{LargeRows: 1, LargeRowBytes: 1}}}
		for _, st := range ss.splitStatements(text) {
			if st.kind == stmtLarge && (st.size < 1 || st.size > tds.MaxVarLen || st.rows > maxLargeRows) {
				t.Fatalf("accepted %+v", st)
			}
		}
	})
}
