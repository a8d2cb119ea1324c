package tlsbridge

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// readFixture returns a file under testdata/handshakes. These are raw TCP
// payloads, one direction each, captured on loopback by a small relay
// (see testdata/README.md).
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "handshakes", name))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return b
}

// feedAll feeds b to a new Stream in one call and returns copies of the events.
func feedAll(t testing.TB, dir Direction, b []byte) []Event {
	t.Helper()
	s := NewStream(dir)
	evs, err := s.Feed(b)
	if err != nil {
		t.Fatalf("Feed: %v", err)
	}
	return append([]Event(nil), evs...)
}

// feedChunks feeds b in chunks of n bytes and collects the events.
func feedChunks(t testing.TB, s *Stream, b []byte, n int) []Event {
	t.Helper()
	var all []Event
	for len(b) > 0 {
		k := min(n, len(b))
		evs, err := s.Feed(b[:k])
		if err != nil {
			t.Fatalf("Feed at offset %d: %v", s.Offset(), err)
		}
		all = append(all, evs...)
		b = b[k:]
	}
	return all
}

// handshakes returns the handshake messages among events.
func handshakes(evs []Event) []*HandshakeMessage {
	var out []*HandshakeMessage
	for _, e := range evs {
		if e.Kind == EventHandshake {
			out = append(out, e.Handshake)
		}
	}
	return out
}

// firstHandshake returns the first handshake message of type typ in the
// fixture, fed whole.
func firstHandshake(t testing.TB, fixture string, dir Direction, typ HandshakeType) *HandshakeMessage {
	t.Helper()
	for _, m := range handshakes(feedAll(t, dir, readFixture(t, fixture))) {
		if m.Type == typ {
			return m
		}
	}
	t.Fatalf("%s: no %s", fixture, typ)
	return nil
}

// summary renders events compactly for comparisons and failure messages.
func summary(evs []Event) []string {
	var out []string
	for _, e := range evs {
		switch e.Kind {
		case EventHandshake:
			out = append(out, "hs:"+e.Handshake.Type.String())
		case EventAlert:
			out = append(out, "alert:"+AlertName(e.Alert.Description))
		case EventEncrypted:
			out = append(out, "enc:"+e.RecordType.String())
		default:
			out = append(out, e.Kind.String())
		}
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// record builds one TLS record.
func record(typ ContentType, body []byte) []byte {
	return append([]byte{byte(typ), 3, 3, byte(len(body) >> 8), byte(len(body))}, body...)
}

// hsMsg builds one handshake message.
func hsMsg(typ HandshakeType, body []byte) []byte {
	n := len(body)
	return append([]byte{byte(typ), byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

func TestParseRecordHeader(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want RecordHeader
		err  error
	}{
		{"handshake", []byte{22, 3, 1, 0x05, 0xdc}, RecordHeader{ContentHandshake, 0x0301, 1500}, nil},
		{"application data max", []byte{23, 3, 3, 0x48, 0x00}, RecordHeader{ContentApplicationData, 0x0303, MaxRecordLen}, nil},
		{"too long", []byte{23, 3, 3, 0x48, 0x01}, RecordHeader{}, ErrRecordTooLong},
		{"unknown type", []byte{25, 3, 3, 0, 1}, RecordHeader{}, ErrNotTLS},
		{"TDS PRELOGIN", []byte{0x12, 1, 0, 0x2f, 0}, RecordHeader{}, ErrNotTLS},
		{"SSLv2 hello", []byte{0x80, 0x2e, 1, 3, 1}, RecordHeader{}, ErrNotTLS},
		{"bad version", []byte{22, 2, 0, 0, 1}, RecordHeader{}, ErrNotTLS},
		{"short", []byte{22, 3, 1}, RecordHeader{}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRecordHeader(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestStreamFixtures follows real captured conversations and checks the
// event sequence of each direction.
func TestStreamFixtures(t *testing.T) {
	tests := []struct {
		fixture string
		dir     Direction
		want    []string
	}{
		// OpenSSL 3.0 s_client -> s_server, TLS 1.2 DHE-RSA-AES128-GCM-SHA256.
		{"tls12-dhe-openssl30-c2s.bin", ClientToServer, []string{
			"hs:ClientHello", "hs:ClientKeyExchange", "change_cipher_spec", "enc:handshake",
			"enc:alert", // close_notify, encrypted
		}},
		{"tls12-dhe-openssl30-s2c.bin", ServerToClient, []string{
			"hs:ServerHello", "hs:Certificate", "hs:ServerKeyExchange", "hs:ServerHelloDone",
			"hs:NewSessionTicket", "change_cipher_spec", "enc:handshake",
			"enc:alert", // close_notify, encrypted
		}},
		{"tls10-openssl30-c2s.bin", ClientToServer, []string{
			"hs:ClientHello", "hs:ClientKeyExchange", "change_cipher_spec", "enc:handshake", "enc:alert",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			got := summary(feedAll(t, tt.dir, readFixture(t, tt.fixture)))
			if !equalStrings(got, tt.want) {
				t.Fatalf("events\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

// TestStreamSplitFeeding feeds every fixture in chunks of every size from 1
// to 7 bytes, and in one piece, and checks that the events (kinds, record
// positions, message bytes) do not depend on how the bytes arrive.
func TestStreamSplitFeeding(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "handshakes"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Run(e.Name(), func(t *testing.T) {
			b := readFixture(t, e.Name())
			whole := feedAll(t, ClientToServer, b)
			for _, n := range []int{1, 2, 3, 5, 7, 1400} {
				s := NewStream(ClientToServer)
				got := feedChunks(t, s, b, n)
				if len(got) != len(whole) {
					t.Fatalf("chunk %d: %d events, want %d: %v vs %v", n, len(got), len(whole), summary(got), summary(whole))
				}
				for i := range got {
					g, w := got[i], whole[i]
					if g.Kind != w.Kind || g.RecordType != w.RecordType || g.RecordLen != w.RecordLen || g.Offset != w.Offset {
						t.Fatalf("chunk %d event %d: %+v, want %+v", n, i, g, w)
					}
					if g.Kind == EventHandshake && !bytes.Equal(g.Handshake.Raw, w.Handshake.Raw) {
						t.Fatalf("chunk %d event %d: handshake bytes differ", n, i)
					}
				}
				if s.Offset() != int64(len(b)) {
					t.Fatalf("Offset = %d, want %d", s.Offset(), len(b))
				}
			}
		})
	}
}

func TestStreamReassembly(t *testing.T) {
	hello := hsMsg(HandshakeClientHello, bytes.Repeat([]byte{0xAB}, 300))
	done := hsMsg(HandshakeServerHelloDone, nil)
	cert := hsMsg(HandshakeCertificate, bytes.Repeat([]byte{0xCD}, 100))

	t.Run("two messages in one record", func(t *testing.T) {
		in := record(ContentHandshake, append(append([]byte{}, cert...), done...))
		evs := feedAll(t, ServerToClient, in)
		if got := summary(evs); !equalStrings(got, []string{"hs:Certificate", "hs:ServerHelloDone"}) {
			t.Fatalf("events %v", got)
		}
		if !bytes.Equal(evs[0].Handshake.Raw, cert) || !bytes.Equal(evs[1].Handshake.Raw, done) {
			t.Fatal("message bytes differ")
		}
		if evs[0].Offset != 0 || evs[1].Offset != 0 || evs[1].RecordLen != len(cert)+len(done) {
			t.Fatalf("record fields: %+v %+v", evs[0], evs[1])
		}
	})
	t.Run("one message across three records", func(t *testing.T) {
		in := append(record(ContentHandshake, hello[:2]), record(ContentHandshake, hello[2:150])...)
		in = append(in, record(ContentHandshake, hello[150:])...)
		s := NewStream(ClientToServer)
		// The first two records complete nothing.
		first := len(hello[:2]) + RecordHeaderLen + len(hello[2:150]) + RecordHeaderLen
		if evs, err := s.Feed(in[:first]); err != nil || len(evs) != 0 {
			t.Fatalf("early events %v, %v", summary(evs), err)
		}
		if s.Buffered() != 150 {
			t.Fatalf("Buffered = %d, want 150", s.Buffered())
		}
		evs, err := s.Feed(in[first:])
		if err != nil || len(evs) != 1 || !bytes.Equal(evs[0].Handshake.Raw, hello) {
			t.Fatalf("events %v, %v", summary(evs), err)
		}
		if evs[0].Offset != int64(first) {
			t.Fatalf("Offset = %d, want %d (the completing record)", evs[0].Offset, first)
		}
		if s.Buffered() != 0 {
			t.Fatalf("Buffered = %d after completion", s.Buffered())
		}
	})
	t.Run("message tail shares a record with the next message", func(t *testing.T) {
		both := append(append([]byte{}, cert...), done...)
		in := append(record(ContentHandshake, both[:50]), record(ContentHandshake, both[50:])...)
		got := summary(feedAll(t, ServerToClient, in))
		if !equalStrings(got, []string{"hs:Certificate", "hs:ServerHelloDone"}) {
			t.Fatalf("events %v", got)
		}
	})
	t.Run("alert between fragments", func(t *testing.T) {
		// RFC 5246 §6.2.1 allows other content types to interleave.
		in := append(record(ContentHandshake, hello[:10]), AlertRecord(0x0303, AlertLevelWarning, 112)...)
		in = append(in, record(ContentHandshake, hello[10:])...)
		got := summary(feedAll(t, ClientToServer, in))
		if !equalStrings(got, []string{"alert:unrecognized_name", "hs:ClientHello"}) {
			t.Fatalf("events %v", got)
		}
	})
	t.Run("zero-length records", func(t *testing.T) {
		in := append(record(ContentHandshake, nil), record(ContentApplicationData, nil)...)
		got := summary(feedAll(t, ClientToServer, in))
		if !equalStrings(got, []string{"enc:application_data"}) {
			t.Fatalf("events %v", got)
		}
	})
}

func TestStreamEncryption(t *testing.T) {
	ccs := record(ContentChangeCipherSpec, []byte{1})
	finished := record(ContentHandshake, bytes.Repeat([]byte{0x5A}, 40)) // AES-GCM Finished: 8+16+16
	hello := record(ContentHandshake, hsMsg(HandshakeClientHello, make([]byte, 50)))
	cke := record(ContentHandshake, hsMsg(HandshakeClientKeyExchange, make([]byte, 33)))
	appData := record(ContentApplicationData, make([]byte, 100))
	encAlert := record(ContentAlert, make([]byte, 26))
	plainAlert := AlertRecord(0x0303, AlertLevelFatal, AlertDecryptError)

	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name string
		in   []byte
		want []string
	}{
		{"TLS 1.2 client flight", cat(cke, ccs, finished, appData),
			[]string{"hs:ClientKeyExchange", "change_cipher_spec", "enc:handshake", "enc:application_data"}},
		{"encrypted alert after CCS", cat(ccs, encAlert),
			[]string{"change_cipher_spec", "enc:alert"}},
		// A two-byte alert cannot be protected: it is reported in clear.
		{"plaintext alert after CCS", cat(ccs, plainAlert),
			[]string{"change_cipher_spec", "alert:decrypt_error"}},
		{"application data before CCS", cat(hello, appData),
			[]string{"hs:ClientHello", "enc:application_data"}},
		{"plaintext heartbeat", record(ContentHeartbeat, []byte{1, 0, 0}),
			[]string{"record"}},
		{"heartbeat after CCS", cat(ccs, record(ContentHeartbeat, make([]byte, 30))),
			[]string{"change_cipher_spec", "enc:heartbeat"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summary(feedAll(t, ClientToServer, tt.in)); !equalStrings(got, tt.want) {
				t.Fatalf("events\n got %v\nwant %v", got, tt.want)
			}
		})
	}

	t.Run("encrypted records are counted, not buffered", func(t *testing.T) {
		s := NewStream(ClientToServer)
		s.MaxBuffered = 64
		big := record(ContentApplicationData, make([]byte, 16000))
		evs, err := s.Feed(big[:9000])
		if err != nil || len(evs) != 0 || s.Buffered() != 0 {
			t.Fatalf("mid-record: %v %v Buffered=%d", summary(evs), err, s.Buffered())
		}
		evs, err = s.Feed(big[9000:])
		if err != nil || len(evs) != 1 || evs[0].RecordLen != 16000 {
			t.Fatalf("events %v %v", summary(evs), err)
		}
	})
}

// TestStreamTLS13 follows OpenSSL 3.0's TLS 1.3 handshake with a
// HelloRetryRequest (the server only accepts secp384r1, the client sent an
// x25519 share) the way a proxy does: it tells both Streams about TLS 1.3
// as soon as the server's hello shows it.
func TestStreamTLS13(t *testing.T) {
	c2s := readFixture(t, "tls13-hrr-openssl30-c2s.bin")
	s2c := readFixture(t, "tls13-hrr-openssl30-s2c.bin")

	t.Run("with SetTLS13 and SetEncrypted", func(t *testing.T) {
		client, server := NewStream(ClientToServer), NewStream(ServerToClient)
		var got []string
		observeServer := func(evs []Event) {
			for _, e := range evs {
				if e.Kind != EventHandshake || e.Handshake.Type != HandshakeServerHello {
					continue
				}
				sh, err := ParseServerHello(e.Handshake.Raw)
				if err != nil {
					t.Fatalf("ParseServerHello: %v", err)
				}
				switch {
				case sh.IsHelloRetryRequest():
					client.SetTLS13()
					server.SetTLS13()
					got = append(got, "HRR")
				case sh.IsTLS13():
					client.SetEncrypted()
					server.SetEncrypted()
					got = append(got, "SH13")
				}
			}
		}
		// Replay the conversation in flight order, one byte at a time
		// where the order within a flight matters.
		feed := func(s *Stream, b []byte) {
			for i := range b {
				evs, err := s.Feed(b[i : i+1])
				if err != nil {
					t.Fatalf("%s: %v", s.Direction(), err)
				}
				for _, x := range summary(evs) {
					got = append(got, s.Direction().String()+" "+x)
				}
				if s == server {
					observeServer(evs)
				}
			}
		}
		// Flight boundaries: find them from the record structure.
		c := splitRecords(t, c2s)
		sv := splitRecords(t, s2c)
		feed(client, c[0])                    // ClientHello 1
		feed(server, bytes.Join(sv[:2], nil)) // HRR, CCS
		feed(client, bytes.Join(c[1:3], nil)) // CCS, ClientHello 2
		feed(server, bytes.Join(sv[2:], nil)) // ServerHello, encrypted flight
		feed(client, bytes.Join(c[3:], nil))  // encrypted Finished, ...
		want := []string{
			"client->server hs:ClientHello",
			"server->client hs:ServerHello", "HRR",
			"server->client change_cipher_spec",
			"client->server change_cipher_spec",
			"client->server hs:ClientHello",
			"server->client hs:ServerHello", "SH13",
		}
		if len(got) < len(want) || !equalStrings(got[:len(want)], want) {
			t.Fatalf("events\n got %v\nwant prefix %v", got, want)
		}
		for _, g := range got[len(want):] {
			if g != "server->client enc:application_data" && g != "client->server enc:application_data" {
				t.Fatalf("after the ServerHello only encrypted records may follow, got %q in %v", g, got)
			}
		}
	})
	t.Run("without SetTLS13 the compat CCS hides the second hello", func(t *testing.T) {
		// This is why SetTLS13 exists: a TLS 1.2 reading of the stream
		// takes the dummy ChangeCipherSpec for a key change.
		got := summary(feedAll(t, ClientToServer, c2s))
		if len(got) < 3 || got[2] != "enc:handshake" {
			t.Fatalf("events %v", got)
		}
	})
}

// splitRecords cuts a byte stream into whole records.
func splitRecords(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		h, err := ParseRecordHeader(b)
		if err != nil || len(b) < RecordHeaderLen+h.Length {
			t.Fatalf("splitRecords: %v (have %d)", err, len(b))
		}
		out = append(out, b[:RecordHeaderLen+h.Length])
		b = b[RecordHeaderLen+h.Length:]
	}
	return out
}

func TestStreamErrors(t *testing.T) {
	tests := []struct {
		name string
		max  int
		in   []byte
		want error
	}{
		{"not TLS", 0, []byte{0x12, 0x01, 0x00, 0x2f, 0, 0, 0, 0}, ErrNotTLS},
		{"record too long", 0, []byte{22, 3, 3, 0xff, 0xff}, ErrRecordTooLong},
		{"handshake over limit", 100, record(ContentHandshake, make([]byte, 101)), ErrBufferLimit},
		{"declared message over limit", 100, record(ContentHandshake, []byte{1, 0, 1, 0}), ErrBufferLimit},
		{"fragments over limit", 100, append(record(ContentHandshake, []byte{1, 0, 0, 90, 0}), record(ContentHandshake, make([]byte, 96))...), ErrBufferLimit},
		{"bad CCS", 0, record(ContentChangeCipherSpec, []byte{2}), ErrMalformed},
		{"CCS inside a handshake message", 0, append(record(ContentHandshake, []byte{1, 0, 0, 9}), record(ContentChangeCipherSpec, []byte{1})...), ErrMalformed},
		{"odd alert", 0, record(ContentAlert, []byte{2, 40, 1}), ErrMalformed},
		{"empty alert", 0, record(ContentAlert, nil), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStream(ClientToServer)
			s.MaxBuffered = tt.max
			_, err := s.Feed(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			// The error is sticky.
			if _, err2 := s.Feed([]byte{22, 3, 3, 0, 0}); !errors.Is(err2, tt.want) {
				t.Fatalf("second Feed: %v", err2)
			}
		})
	}
	t.Run("events before the error are returned", func(t *testing.T) {
		in := append(AlertRecord(0x0303, AlertLevelFatal, AlertHandshakeFailure), 0x99, 3, 3, 0, 0)
		evs, err := NewStream(ServerToClient).Feed(in)
		if !errors.Is(err, ErrNotTLS) || len(evs) != 1 || evs[0].Alert.Description != AlertHandshakeFailure {
			t.Fatalf("%v, %v", summary(evs), err)
		}
	})
}

// TestStreamEncryptedFeedDoesNotAllocate: once a connection is encrypted,
// following it costs no allocations, whatever the chunking.
func TestStreamEncryptedFeedDoesNotAllocate(t *testing.T) {
	s := NewStream(ClientToServer)
	rec := record(ContentApplicationData, make([]byte, 4000))
	if _, err := s.Feed(rec); err != nil { // warm up the event slice
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		for i := 0; i < len(rec); i += 1000 {
			if _, err := s.Feed(rec[i:min(i+1000, len(rec))]); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per record", allocs)
	}
}

func TestStreamCallerKeepsBuffer(t *testing.T) {
	msg := hsMsg(HandshakeClientHello, []byte("hello, world"))
	in := record(ContentHandshake, msg)
	s := NewStream(ClientToServer)
	buf := append([]byte(nil), in[:10]...)
	if _, err := s.Feed(buf); err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 0 // the caller reuses its buffer
	}
	evs, err := s.Feed(in[10:])
	if err != nil || len(evs) != 1 || !bytes.Equal(evs[0].Handshake.Raw, msg) {
		t.Fatalf("%v, %v", summary(evs), err)
	}
	raw := evs[0].Handshake.Raw
	if _, err := s.Feed(record(ContentHandshake, hsMsg(HandshakeClientHello, []byte("another one!")))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, msg) {
		t.Fatal("a later Feed changed an earlier message's bytes")
	}
}

// recordingConn records what passes through a net.Conn in each direction.
type recordingConn struct {
	net.Conn
	mu      sync.Mutex
	out, in bytes.Buffer
}

func (c *recordingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.mu.Lock()
	c.out.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.in.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

// captureHandshake runs a crypto/tls handshake over net.Pipe and returns
// the bytes each side sent. The client sends one application data record
// afterwards so that the server's reads finish its side.
func captureHandshake(t *testing.T, clientCfg, serverCfg *tls.Config) (c2s, s2c []byte) {
	t.Helper()
	cc, sc := net.Pipe()
	deadline := time.Now().Add(10 * time.Second)
	cc.SetDeadline(deadline)
	sc.SetDeadline(deadline)
	rec := &recordingConn{Conn: cc}
	serverErr := make(chan error, 1)
	go func() {
		srv := tls.Server(sc, serverCfg)
		err := srv.Handshake()
		if err == nil {
			_, err = io.ReadFull(srv, make([]byte, 4))
		}
		sc.Close()
		serverErr <- err
	}()
	cli := tls.Client(rec, clientCfg)
	if err := cli.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if _, err := cli.Write([]byte("ping")); err != nil {
		t.Fatalf("client write: %v", err)
	}
	if err := <-serverErr; err != nil {
		t.Fatalf("server: %v", err)
	}
	cc.Close()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return bytes.Clone(rec.out.Bytes()), bytes.Clone(rec.in.Bytes())
}

// testServerCert is a small self-signed certificate for live handshakes.
func testServerCert(t testing.TB) tls.Certificate {
	t.Helper()
	c, _, _, err := GenerateCertificate(CertOptions{CommonName: "sql.example.com", KeyBits: 1024})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStreamLiveGoHandshakes records Go crypto/tls handshakes and follows
// them with a Stream per direction.
func TestStreamLiveGoHandshakes(t *testing.T) {
	cert := testServerCert(t)
	t.Run("TLS 1.2 ECDHE", func(t *testing.T) {
		c2s, s2c := captureHandshake(t,
			&tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, ServerName: "sql.example.com"},
			&tls.Config{Certificates: []tls.Certificate{cert}, SessionTicketsDisabled: true})
		if got, want := summary(feedAll(t, ClientToServer, c2s)), []string{
			"hs:ClientHello", "hs:ClientKeyExchange", "change_cipher_spec", "enc:handshake", "enc:application_data",
		}; !equalStrings(got, want) {
			t.Errorf("client events %v, want %v", got, want)
		}
		if got, want := summary(feedAll(t, ServerToClient, s2c)), []string{
			"hs:ServerHello", "hs:Certificate", "hs:ServerKeyExchange", "hs:ServerHelloDone", "change_cipher_spec", "enc:handshake",
		}; !equalStrings(got, want) {
			t.Errorf("server events %v, want %v", got, want)
		}
	})
	t.Run("TLS 1.3", func(t *testing.T) {
		c2s, s2c := captureHandshake(t,
			&tls.Config{InsecureSkipVerify: true, ServerName: "sql.example.com"},
			&tls.Config{Certificates: []tls.Certificate{cert}})
		server := NewStream(ServerToClient)
		evs, err := server.Feed(s2c)
		if err != nil {
			t.Fatal(err)
		}
		got := summary(evs)
		// A Go client sends a legacy session ID, so the Go server answers
		// with the RFC 8446 §D.4 compatibility ChangeCipherSpec.
		if len(got) < 3 || got[0] != "hs:ServerHello" {
			t.Fatalf("server events %v", got)
		}
		sh, err := ParseServerHello(evs[0].Handshake.Raw)
		if err != nil || !sh.IsTLS13() {
			t.Fatalf("ServerHello %+v, %v", sh, err)
		}
		for _, g := range got[1:] {
			if g != "change_cipher_spec" && g != "enc:application_data" {
				t.Fatalf("server events %v", got)
			}
		}
		client := NewStream(ClientToServer)
		evs, err = client.Feed(c2s)
		if err != nil {
			t.Fatal(err)
		}
		if got := summary(evs); got[0] != "hs:ClientHello" {
			t.Fatalf("client events %v", got)
		}
	})
}

// FuzzStreamFeed feeds arbitrary bytes whole and in chunks and checks that
// the Stream never panics, never holds more than it may, and reports the
// same events and the same failure however the bytes are cut.
func FuzzStreamFeed(f *testing.F) {
	for _, name := range []string{"tls12-dhe-openssl30-s2c.bin", "tls13-hrr-openssl30-c2s.bin", "tls10-openssl30-c2s.bin"} {
		f.Add(readFixture(f, name), uint8(3), false)
	}
	f.Add(append(record(ContentHandshake, []byte{1, 0, 0, 9, 1}), record(ContentHandshake, make([]byte, 8))...), uint8(1), false)
	f.Add(append(record(ContentChangeCipherSpec, []byte{1}), AlertRecord(0x0303, 2, 40)...), uint8(2), true)
	f.Add([]byte{22, 3, 3, 0xff, 0xff}, uint8(1), false)
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8, tls13 bool) {
		const max = 4096
		run := func(n int) ([]string, []int64, bool) {
			s := NewStream(ServerToClient)
			s.MaxBuffered = max
			if tls13 {
				s.SetTLS13()
			}
			var kinds []string
			var offs []int64
			failed := false
			for b := data; len(b) > 0 && !failed; {
				k := min(n, len(b))
				evs, err := s.Feed(b[:k])
				b = b[k:]
				for _, e := range evs {
					kinds = append(kinds, summary([]Event{e})...)
					offs = append(offs, e.Offset)
					if e.Kind == EventHandshake && len(e.Handshake.Raw) != handshakeHeaderLen+len(e.Handshake.Body) {
						t.Fatal("Body/Raw mismatch")
					}
				}
				failed = err != nil
				if s.Buffered() > max+RecordHeaderLen {
					t.Fatalf("Buffered = %d", s.Buffered())
				}
			}
			return kinds, offs, failed
		}
		wk, wo, wf := run(len(data) + 1)
		ck, co, cf := run(int(chunk%16) + 1)
		if wf != cf || !equalStrings(wk, ck) || len(wo) != len(co) {
			t.Fatalf("whole %v (failed %v) vs chunked %v (failed %v)", wk, wf, ck, cf)
		}
		for i := range wo {
			if wo[i] != co[i] || (i > 0 && wo[i] < wo[i-1]) {
				t.Fatalf("offsets %v vs %v", wo, co)
			}
		}
	})
}
