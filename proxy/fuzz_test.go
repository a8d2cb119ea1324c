package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/msdsn"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/record"
	"github.com/tdsproxy/tdsproxy/tds"
)

// Fuzz targets for what the proxy itself decodes: the watcher (everything a
// client or server sends while negotiating) and the connection record's
// JSON. Seeds are real conversations captured from go-mssqldb and the
// emulator in every encryption mode, and the TLS captures of tlsbridge.

// A watcher script is a sequence of chunks: per chunk a control byte (bit
// 7: direction, 1 = server to client; bits 0-5: high bits of the length),
// a length byte, then the chunk. It is how the session feeds the watcher:
// one read at a time, in the order the reads happened.

func appendChunk(script []byte, dir Direction, b []byte) []byte {
	for len(b) > 0 {
		n := min(len(b), 1<<14-1)
		ctl := byte(n >> 8)
		if dir == ServerToClient {
			ctl |= 0x80
		}
		script = append(script, ctl, byte(n))
		script = append(script, b[:n]...)
		b = b[n:]
	}
	return script
}

type scriptChunk struct {
	dir Direction
	b   []byte
}

func splitScript(script []byte) []scriptChunk {
	var out []scriptChunk
	for len(script) >= 2 {
		dir := ClientToServer
		if script[0]&0x80 != 0 {
			dir = ServerToClient
		}
		n := min(int(script[0]&0x3F)<<8|int(script[1]), len(script)-2)
		out = append(out, scriptChunk{dir, script[2 : 2+n]})
		script = script[2+n:]
	}
	return out
}

func FuzzWatcher(f *testing.F) {
	for _, script := range watcherSeeds(f) {
		f.Add(script, uint16(0))
		f.Add(script, uint16(512))
	}
	f.Fuzz(func(t *testing.T, script []byte, maxMsg uint16) {
		start := time.Unix(1_700_000_000, 0)
		now := func() time.Time { return start.Add(time.Millisecond) }
		rec := &Record{Start: start, Phase: PhaseAccept, Phases: []PhaseMark{{Phase: PhaseAccept}}, Watching: true}
		limit := DefaultMaxNegotiationBuffer
		if maxMsg >= 64 {
			limit = int(maxMsg)
		}
		w := newWatcher(rec, now, limit)
		for _, c := range splitScript(script) {
			evs := w.feed(c.dir, c.b)
			for _, ev := range evs {
				if !ev.Phase.Valid() || ev.Phase == PhaseAccept || ev.Phase == PhaseClosed {
					t.Fatalf("event with phase %q", ev.Phase)
				}
			}
			for i := range w.dirs {
				d := &w.dirs[i]
				// One unit (a TDS packet or a TLS record) at most waits
				// for its end; a message is capped by max_negotiation_buffer.
				if len(d.pend) > tds.MaxPacketLen {
					t.Fatalf("%s: %d bytes pending", d.dir, len(d.pend))
				}
				if len(d.msg) > limit {
					t.Fatalf("%s: message buffer %d > %d", d.dir, len(d.msg), limit)
				}
				if w.tls != nil {
					if n := w.tls.Stream(tlsDir(d.dir)).Buffered(); n > limit+5 {
						t.Fatalf("%s: TLS stream holds %d > %d", d.dir, n, limit)
					}
				}
			}
			if w.done {
				if w.tls != nil {
					t.Fatal("stopped watching but kept the TLS follower")
				}
				for i := range w.dirs {
					if w.dirs[i].pend != nil || w.dirs[i].msg != nil {
						t.Fatal("stopped watching but kept buffers")
					}
				}
			}
		}
		checkRecordBounded(t, rec)
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if !json.Valid(b) {
			t.Fatal("invalid JSON")
		}
	})
}

func checkRecordBounded(t *testing.T, r *Record) {
	t.Helper()
	n := map[string]int{"phases": len(r.Phases), "parse issues": len(r.ParseIssues), "notes": len(r.Notes), "faults": len(r.Faults)}
	if r.TLS != nil {
		n["alerts"], n["certificates"] = len(r.TLS.Alerts), len(r.TLS.Certificates)
	}
	for k, v := range n {
		if v > record.MaxListEntries {
			t.Fatalf("record has %d %s", v, k)
		}
	}
}

// watcherSeeds returns named seed scripts: real conversations and the
// tlsbridge captures, plus a few hostile shapes.
func watcherSeeds(f testing.TB) map[string][]byte {
	f.Helper()
	seeds := map[string][]byte{}
	for name, convo := range captureConversations(f) {
		seeds["go-mssqldb "+name] = convo
	}
	for _, pair := range [][2]string{
		{"tls12-dhe-openssl30-c2s.bin", "tls12-dhe-openssl30-s2c.bin"},
		{"tls10-openssl30-c2s.bin", "tls10-openssl30-s2c.bin"},
		{"tls13-hrr-openssl30-c2s.bin", "tls13-hrr-openssl30-s2c.bin"},
	} {
		c2s, err := os.ReadFile(filepath.Join("..", "tlsbridge", "testdata", "handshakes", pair[0]))
		if err != nil {
			f.Fatal(err)
		}
		s2c, err := os.ReadFile(filepath.Join("..", "tlsbridge", "testdata", "handshakes", pair[1]))
		if err != nil {
			f.Fatal(err)
		}
		// Raw TLS first: the strict (TDS 8.0) path.
		seeds["strict "+pair[0]] = appendChunk(appendChunk(nil, ClientToServer, c2s), ServerToClient, s2c)
		// The same records wrapped in PRELOGIN packets after a PRELOGIN
		// exchange: the TDS 7.x path.
		pre := tdsMessage(tds.PacketPrelogin, preloginPayload(tds.EncryptOn))
		resp := tdsMessage(tds.PacketReply, preloginPayload(tds.EncryptOn))
		s := appendChunk(nil, ClientToServer, pre)
		s = appendChunk(s, ServerToClient, resp)
		s = appendChunk(s, ClientToServer, tdsMessage(tds.PacketPrelogin, c2s))
		seeds["wrapped "+pair[0]] = appendChunk(s, ServerToClient, tdsMessage(tds.PacketReply, s2c))
	}
	pre := tdsMessage(tds.PacketPrelogin, preloginPayload(tds.EncryptOff))
	seeds["note flood"] = appendChunk(appendChunk(nil, ClientToServer, pre), ClientToServer,
		bytes.Repeat([]byte{0x01, 0x01, 0x00, 0x08, 0, 0, 1, 0}, 200))
	seeds["alert flood"] = appendChunk(appendChunk(nil, ClientToServer, pre), ServerToClient,
		append([]byte{0x15, 3, 3, 0x01, 0x00}, bytes.Repeat([]byte{2, 40}, 128)...))
	hello := []byte{0x16, 3, 1, 0, 47, 1, 0, 0, 43, 3, 3}
	hello = append(hello, make([]byte, 32)...)
	hello = append(hello, 0, 0, 2, 0x13, 0x01, 1, 0, 0, 0)
	seeds["hello flood"] = appendChunk(nil, ClientToServer, bytes.Repeat(hello, 100))
	seeds["http"] = appendChunk(nil, ClientToServer, []byte("GET / HTTP/1.1\r\n\r\n"))
	seeds["truncated header"] = appendChunk(nil, ClientToServer, []byte{0x12, 0x01, 0x00})
	return seeds
}

func tdsMessage(t tds.PacketType, payload []byte) []byte {
	w := tds.Writer{PacketSize: 4096}
	return w.AppendMessage(nil, t, 0, payload)
}

func preloginPayload(enc tds.Encryption) []byte {
	p := &tds.Prelogin{}
	p.Set(tds.PreloginVersion, []byte{0x0F, 0, 0x07, 0xD0, 0, 0})
	p.Set(tds.PreloginEncryption, []byte{byte(enc)})
	p.Set(tds.PreloginInstance, []byte{0})
	p.Set(tds.PreloginMARS, []byte{0})
	return p.Marshal()
}

// transcriptConn records each read and write of a client conn in order.
type transcriptConn struct {
	net.Conn
	mu     sync.Mutex
	script []byte
}

func (c *transcriptConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.script = appendChunk(c.script, ServerToClient, b[:n])
	c.mu.Unlock()
	return n, err
}

func (c *transcriptConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.mu.Lock()
	c.script = appendChunk(c.script, ClientToServer, b[:n])
	c.mu.Unlock()
	return n, err
}

type transcriptDialer struct {
	mu    sync.Mutex
	conns []*transcriptConn
}

func (d *transcriptDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &transcriptConn{Conn: c}
	d.mu.Lock()
	d.conns = append(d.conns, tc)
	d.mu.Unlock()
	return tc, nil
}

// captureConversations runs go-mssqldb against the emulator in every
// encryption mode (and one failed login) and returns what each connection
// wrote and read, in order.
func captureConversations(f testing.TB) map[string][]byte {
	f.Helper()
	out := map[string][]byte{}
	for _, m := range []struct {
		name, encrypt, password string
		server                  tds.Encryption
		tlsMax                  uint16
	}{
		{name: "disable", encrypt: "disable", server: tds.EncryptOff},
		{name: "false tls1.2", encrypt: "false", server: tds.EncryptOff, tlsMax: tls.VersionTLS12},
		{name: "true tls1.2", encrypt: "true", server: tds.EncryptOff, tlsMax: tls.VersionTLS12},
		{name: "true tls1.3", encrypt: "true", server: tds.EncryptOn},
		{name: "strict", encrypt: "strict", server: tds.EncryptOff},
		{name: "login failed", encrypt: "disable", server: tds.EncryptOff, password: "wrong"},
	} {
		emuMax := uint16(0)
		if m.name == "true tls1.3" {
			emuMax = tls.VersionTLS13
		}
		emu, err := emulator.New(emulator.Config{Encrypt: m.server, User: "sa", Password: "Secret-Pa55", TLSMax: emuMax})
		if err != nil {
			f.Fatal(err)
		}
		if err := emu.Start(); err != nil {
			f.Fatal(err)
		}
		pw := "Secret-Pa55"
		if m.password != "" {
			pw = m.password
		}
		dsn := testkit.GoMSSQL{Encrypt: m.encrypt, Password: pw}.DSN(emu.Addr())
		cfg, err := msdsn.Parse(dsn)
		if err != nil {
			f.Fatal(err)
		}
		if cfg.TLSConfig != nil {
			if m.tlsMax != 0 {
				cfg.TLSConfig.MaxVersion = m.tlsMax
			}
			// The capture is a seed, not a check of certificate handling.
			cfg.TLSConfig.InsecureSkipVerify = true
		}
		d := &transcriptDialer{}
		conn := mssql.NewConnectorConfig(cfg)
		conn.Dialer = d
		db := sql.OpenDB(conn)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		var v int
		err = db.QueryRowContext(ctx, "SELECT 1").Scan(&v)
		cancel()
		db.Close()
		emu.Close()
		if (err == nil) == (m.password != "") {
			f.Fatalf("capture %s: %v", m.name, err)
		}
		d.mu.Lock()
		for i, c := range d.conns {
			c.mu.Lock()
			out[m.name+"#"+string(rune('0'+i))] = c.script
			c.mu.Unlock()
		}
		d.mu.Unlock()
	}
	return out
}

// FuzzRecordJSON: a record with any field contents (wire strings are
// arbitrary bytes) marshals, and marshalling is stable across a round trip;
// the zap log line that carries it is valid JSON with no encoding error.
func FuzzRecordJSON(f *testing.F) {
	f.Add(uint64(1), "127.0.0.1:5000", "tds7", "tls.client_hello", "sql.example.com", "tds/8.0", "stopped watching", "ClientHello", int64(1500), uint32(3600), true)
	f.Add(uint64(math.MaxUint64), "\xff\xfe", "\x00", "", "\u2028<>&", "\xc3\x28", "\"quoted\"", "\\", int64(math.MinInt64), uint32(math.MaxUint32), false)
	// One logger for every input: a worker runs inputs one at a time.
	var buf bytes.Buffer
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zap.InfoLevel))
	f.Fuzz(func(t *testing.T, id uint64, client, protocol, phase, sni, alpn, note, what string, ns int64, secs uint32, flag bool) {
		start := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(secs) * time.Second)
		mars := flag
		r := &Record{
			ID: id, Proxy: "p", Client: client, Listener: client, Upstream: client, Start: start,
			End: start.Add(time.Duration(ns & math.MaxInt32)), Protocol: Protocol(protocol), Phase: Phase(phase),
			Phases: []PhaseMark{{Phase: Phase(phase), At: time.Duration(ns), Encrypted: flag}},
			Prelogin: &PreloginInfo{
				Client: &PreloginSide{Version: what, VersionHex: what, Encryption: what, Instance: sni, ThreadID: uint32(ns), MARS: &mars,
					ConnectionID: note, ActivityID: note, FedAuthRequired: &mars, Nonce: flag, Options: []string{what, sni}},
				Scope: protocol,
			},
			TLS: &TLSInfo{
				Wrapped: flag,
				ClientHello: &ClientHelloInfo{LegacyVersion: what, SupportedVersions: []string{what}, HighestVersion: what, CipherSuites: []string{note},
					Extensions: []string{note}, SNI: sni, ALPN: []string{alpn}, JA3: note, JA3Hash: note, JA4: note, Length: int(ns & 0xFFFF)},
				ServerHello:  &ServerHelloInfo{Version: what, CipherSuite: what, ALPN: alpn, HelloRetryRequest: flag},
				Certificates: []CertificateInfo{{Subject: sni, Issuer: note, NotBefore: start, NotAfter: start, ThumbprintSHA1: what}},
				KeyExchange:  &KeyExchangeInfo{Kind: what, DHPrimeBits: int(ns & 0xFFFF), Curve: alpn},
				Alerts:       []AlertInfo{{From: SideServer, Level: what, Description: note}},
			},
			Login: &LoginInfo{Visible: flag, User: sni, App: alpn, Host: client, Server: sni, Database: what, Library: note,
				Outcome: LoginOutcome(what), ErrorNumber: int32(ns), ErrorMessage: note, PacketSize: secs},
			Close:               &CloseInfo{By: Side(what), Kind: CloseKind(what), Phase: Phase(phase), Silence: time.Duration(ns), Reason: note},
			ParseIssues:         []ParseIssue{{Direction: what, Phase: Phase(phase), Offset: ns, What: what, Error: note}},
			Faults:              []FaultEvent{{Rule: what, Scenario: note, Phase: Phase(phase), Action: what, Detail: note, At: time.Duration(ns)}},
			Notes:               []string{note},
			BytesClientToServer: ns, BytesServerToClient: -ns, Watching: flag,
		}
		b1, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var back Record
		if err := json.Unmarshal(b1, &back); err != nil {
			t.Fatalf("unmarshal: %v", err)
		}
		b2, err := json.Marshal(&back)
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		// Bytes may differ (encoding/json writes an invalid byte as
		// \ufffd and a real U+FFFD raw); the value must not.
		var again Record
		if err := json.Unmarshal(b2, &again); err != nil {
			t.Fatalf("unmarshal again: %v", err)
		}
		if !reflect.DeepEqual(&back, &again) {
			t.Fatalf("round trip changed the record:\n%s\n%s", b1, b2)
		}
		// Valid UTF-8 strings survive unchanged.
		if utf8.ValidString(client) && back.Client != client {
			t.Fatalf("client %q came back as %q", client, back.Client)
		}
		if !reflect.DeepEqual(r.Clone(), r) {
			t.Fatal("Clone differs")
		}
		// The log line carries the record as JSON.
		buf.Reset()
		logRecord(logger, r)
		var line map[string]any
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, buf.Bytes())
		}
		if _, bad := line["recordError"]; bad {
			t.Fatalf("zap could not encode the record: %v", line["recordError"])
		}
	})
}

// Guard for the script encoding used by the seeds.
func TestWatcherScriptRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{7}, 40000)
	s := appendChunk(appendChunk(nil, ClientToServer, []byte{1, 2, 3}), ServerToClient, big)
	cs := splitScript(s)
	var c2s, s2c []byte
	for _, c := range cs {
		if c.dir == ClientToServer {
			c2s = append(c2s, c.b...)
		} else {
			s2c = append(s2c, c.b...)
		}
	}
	if !bytes.Equal(c2s, []byte{1, 2, 3}) || !bytes.Equal(s2c, big) {
		t.Fatalf("script round trip: %d/%d bytes", len(c2s), len(s2c))
	}
}
