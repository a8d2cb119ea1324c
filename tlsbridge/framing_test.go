package tlsbridge

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/tds"
)

// framingTestCert returns a throwaway self-signed ECDSA certificate for
// "localhost" and a pool that trusts it.
func framingTestCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// framingRecorder records every Write call made on a conn, so a test can
// check how flights were framed on the wire.
type framingRecorder struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (r *framingRecorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.writes = append(r.writes, bytes.Clone(b))
	r.mu.Unlock()
	return r.Conn.Write(b)
}

func (r *framingRecorder) Writes() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.writes...)
}

// framingTCPPair returns both ends of a loopback TCP connection, closed at
// test end, with a deadline so nothing can hang.
func framingTCPPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		client.Close()
		t.Fatal(r.err)
	}
	server = r.c
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range []net.Conn{client, server} {
		if err := c.SetDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	return client, server
}

// framedMessage is one wrapped TDS message as seen on the wire.
type framedMessage struct {
	packets []tds.Header
	payload []byte
}

// splitFramedWrite parses one Write call made in handshake mode. It fails
// unless the write is exactly one TDS message whose payload is whole TLS
// records.
func splitFramedWrite(t *testing.T, w []byte, packetSize int) framedMessage {
	t.Helper()
	var m framedMessage
	for len(w) > 0 {
		h, err := tds.ParseHeader(w)
		if err != nil {
			t.Fatalf("write is not TDS: %v", err)
		}
		if int(h.Length) > packetSize {
			t.Errorf("packet of %d bytes exceeds packet size %d", h.Length, packetSize)
		}
		if h.Type != tds.PacketPrelogin {
			t.Errorf("packet type %s, want PRELOGIN", h.Type)
		}
		if int(h.Length) > len(w) {
			t.Fatalf("packet claims %d bytes, write has %d", h.Length, len(w))
		}
		m.packets = append(m.packets, h)
		m.payload = append(m.payload, w[tds.HeaderLen:h.Length]...)
		w = w[h.Length:]
		if h.Status.EOM() != (len(w) == 0) {
			t.Errorf("packet %d: EOM=%v but %d bytes follow in the same write", len(m.packets), h.Status.EOM(), len(w))
		}
	}
	for p := m.payload; len(p) > 0; {
		if len(p) < RecordHeaderLen || !IsRecordStart(p[0]) {
			t.Fatalf("message payload is not whole TLS records: % x", p[:min(len(p), 8)])
		}
		n := RecordHeaderLen + (int(p[3])<<8 | int(p[4]))
		if n > len(p) {
			t.Fatalf("TLS record of %d bytes cut at %d", n, len(p))
		}
		p = p[n:]
	}
	return m
}

// framingCheckWire checks one direction's writes: first `flights` wrapped
// messages, one per write, then only raw TLS records.
func framingCheckWire(t *testing.T, who string, writes [][]byte, flights, packetSize int) (maxPackets int) {
	t.Helper()
	wrapped, sawRaw := 0, false
	for _, w := range writes {
		if len(w) == 0 {
			continue
		}
		if w[0] == byte(tds.PacketPrelogin) {
			if sawRaw {
				t.Errorf("%s: wrapped write after raw writes", who)
			}
			m := splitFramedWrite(t, w, packetSize)
			maxPackets = max(maxPackets, len(m.packets))
			wrapped++
			continue
		}
		sawRaw = true
		if w[0] != byte(ContentApplicationData) {
			t.Errorf("%s: raw write starts with 0x%02X, want an application data record", who, w[0])
		}
	}
	if wrapped != flights {
		t.Errorf("%s: %d wrapped messages, want %d (one per flight)", who, wrapped, flights)
	}
	return maxPackets
}

func TestFramedConnHandshake(t *testing.T) {
	cert, pool := framingTestCert(t)
	tests := []struct {
		name          string
		version       uint16
		packetSize    int
		serverFlights int
		wantSplit     bool
	}{
		{"TLS12", tls.VersionTLS12, 4096, 2, false},
		{"TLS13", tls.VersionTLS13, 4096, 1, false},
		{"TLS12/tiny-packets", tls.VersionTLS12, 512, 2, true},
		{"TLS13/tiny-packets", tls.VersionTLS13, 512, 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			craw, sraw := framingTCPPair(t)
			crec, srec := &framingRecorder{Conn: craw}, &framingRecorder{Conn: sraw}
			cfc := NewFramedConn(crec, RoleClient, tc.packetSize)
			sfc := NewFramedConn(srec, RoleServer, tc.packetSize)
			cli := tls.Client(cfc, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tc.version, MaxVersion: tc.version})
			srv := tls.Server(sfc, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tc.version, MaxVersion: tc.version})

			done := make(chan error, 1)
			go func() {
				done <- func() error {
					if err := srv.Handshake(); err != nil {
						return err
					}
					if err := sfc.SwitchToRaw(); err != nil {
						return err
					}
					buf := make([]byte, 4)
					if _, err := io.ReadFull(srv, buf); err != nil {
						return err
					}
					_, err := srv.Write(append(buf, " pong"...))
					return err
				}()
			}()
			if err := cli.Handshake(); err != nil {
				t.Fatalf("client handshake: %v", err)
			}
			// The TLS 1.3 client's Finished is still buffered: it goes now.
			if err := cfc.SwitchToRaw(); err != nil {
				t.Fatal(err)
			}
			if _, err := cli.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 9)
			if _, err := io.ReadFull(cli, got); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("server: %v", err)
			}
			if string(got) != "ping pong" {
				t.Errorf("got %q", got)
			}
			if v := cli.ConnectionState().Version; v != tc.version {
				t.Errorf("version %x, want %x", v, tc.version)
			}
			framingCheckWire(t, "client", crec.Writes(), 2, tc.packetSize)
			maxPackets := framingCheckWire(t, "server", srec.Writes(), tc.serverFlights, tc.packetSize)
			if tc.wantSplit && maxPackets < 2 {
				t.Errorf("no server flight was split into packets at size %d", tc.packetSize)
			}
		})
	}
}

// framingBufConn is a net.Conn reading from a fixed byte stream and
// recording writes.
type framingBufConn struct {
	net.Conn // nil: only the methods below are used
	r        io.Reader
	w        bytes.Buffer
}

func (c *framingBufConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *framingBufConn) Write(b []byte) (int, error) { return c.w.Write(b) }

func framingPacket(typ tds.PacketType, st tds.Status, payload string) []byte {
	h := tds.Header{Type: typ, Status: st, Length: uint16(tds.HeaderLen + len(payload))}
	return append(h.Bytes(), payload...)
}

func framingStream(parts ...[]byte) io.Reader { return bytes.NewReader(bytes.Join(parts, nil)) }

func TestFramedConnRead(t *testing.T) {
	record := []byte{0x17, 0x03, 0x03, 0x00, 0x02, 'h', 'i'}
	tests := []struct {
		name    string
		stream  io.Reader
		switch_ bool // call SwitchToRaw after the first Read
		want    string
		wantErr error
	}{
		{
			name:   "prelogin and reply packets make one stream",
			stream: framingStream(framingPacket(tds.PacketPrelogin, 0, "ab"), framingPacket(tds.PacketReply, tds.StatusEOM, "cd")),
			want:   "abcd", wantErr: io.EOF,
		},
		{
			name:   "empty packets are skipped",
			stream: framingStream(framingPacket(tds.PacketPrelogin, 0, ""), framingPacket(tds.PacketPrelogin, tds.StatusEOM, "x")),
			want:   "x", wantErr: io.EOF,
		},
		{
			name:   "raw record at a message boundary switches by itself",
			stream: framingStream(framingPacket(tds.PacketPrelogin, tds.StatusEOM, "ab"), record),
			want:   "ab" + string(record), wantErr: io.EOF,
		},
		{
			name:    "SwitchToRaw mid-message finishes the message framed",
			stream:  framingStream(framingPacket(tds.PacketPrelogin, 0, "a"), framingPacket(tds.PacketPrelogin, tds.StatusEOM, "b"), []byte("RAW")),
			switch_: true,
			want:    "abRAW", wantErr: io.EOF,
		},
		{
			name:    "unexpected packet type",
			stream:  framingStream(framingPacket(tds.PacketSQLBatch, tds.StatusEOM, "ab")),
			wantErr: ErrUnexpectedPacket,
		},
		{
			name:    "length below header size",
			stream:  framingStream([]byte{0x12, 0x01, 0x00, 0x04, 0, 0, 0, 0}),
			wantErr: tds.ErrBadLength,
		},
		{
			name:    "stream ends inside a packet",
			stream:  framingStream(framingPacket(tds.PacketPrelogin, tds.StatusEOM, "abcdef")[:10]),
			want:    "ab",
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "stream ends inside a header",
			stream:  framingStream([]byte{0x12, 0x01, 0x00}),
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "stream ends between packets of a message",
			stream:  framingStream(framingPacket(tds.PacketPrelogin, 0, "ab")),
			want:    "ab",
			wantErr: io.ErrUnexpectedEOF,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fc := NewFramedConn(&framingBufConn{r: tc.stream}, RoleClient, 0)
			var got []byte
			buf := make([]byte, 1)
			var err error
			for i := 0; i < 100; i++ {
				var n int
				n, err = fc.Read(buf)
				got = append(got, buf[:n]...)
				if i == 0 && tc.switch_ {
					if err := fc.SwitchToRaw(); err != nil {
						t.Fatal(err)
					}
				}
				if err != nil {
					break
				}
			}
			if string(got) != tc.want {
				t.Errorf("read %q, want %q", got, tc.want)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestFramedConnWriteBuffersOneFlight(t *testing.T) {
	conn := &framingBufConn{r: framingStream(framingPacket(tds.PacketPrelogin, tds.StatusEOM, "z"))}
	fc := NewFramedConn(conn, RoleServer, 512)
	flight := bytes.Repeat([]byte{0x16}, 1200)
	for i := 0; i < 3; i++ { // a TLS stack writes a flight in several calls
		if _, err := fc.Write(flight[i*400 : (i+1)*400]); err != nil {
			t.Fatal(err)
		}
	}
	if conn.w.Len() != 0 {
		t.Fatalf("%d bytes written before the conn read", conn.w.Len())
	}
	if _, err := fc.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	wire := conn.w.Bytes()
	var payload []byte
	var packets int
	for len(wire) > 0 {
		h, err := tds.ParseHeader(wire)
		if err != nil {
			t.Fatal(err)
		}
		packets++
		if int(h.Length) > 512 {
			t.Errorf("packet %d is %d bytes", packets, h.Length)
		}
		payload = append(payload, wire[tds.HeaderLen:h.Length]...)
		wire = wire[h.Length:]
		if h.Status.EOM() != (len(wire) == 0) {
			t.Errorf("packet %d: EOM=%v with %d bytes after it", packets, h.Status.EOM(), len(wire))
		}
	}
	if packets != 3 || !bytes.Equal(payload, flight) {
		t.Errorf("got %d packets, payload equal=%v; want 3 packets carrying the flight", packets, bytes.Equal(payload, flight))
	}

	t.Run("raw after SwitchToRaw", func(t *testing.T) {
		conn.w.Reset()
		if err := fc.SwitchToRaw(); err != nil {
			t.Fatal(err)
		}
		if _, err := fc.Write([]byte{0x17, 1, 2}); err != nil {
			t.Fatal(err)
		}
		if got := conn.w.Bytes(); !bytes.Equal(got, []byte{0x17, 1, 2}) {
			t.Errorf("raw write became % x", got)
		}
		if fc.Wrapping() {
			t.Error("Wrapping() = true after SwitchToRaw")
		}
	})
	t.Run("flight cap", func(t *testing.T) {
		fc := NewFramedConn(&framingBufConn{r: framingStream()}, RoleServer, 0)
		if _, err := fc.Write(make([]byte, maxPendingFlight+1)); !errors.Is(err, ErrFlightTooLarge) {
			t.Errorf("error %v, want ErrFlightTooLarge", err)
		}
	})
}

func TestFramedConnRecordBounded(t *testing.T) {
	rec := []byte{0x17, 0x03, 0x03, 0x00, 0x03, 'a', 'b', 'c'}
	empty := []byte{0x17, 0x03, 0x03, 0x00, 0x00}
	stream := framingStream(framingPacket(tds.PacketPrelogin, tds.StatusEOM, "hs"), rec, empty, rec, []byte("PLAIN"))
	fc := NewFramedConn(&framingBufConn{r: stream}, RoleServer, 0)
	fc.SetRecordBounded(true)
	want := bytes.Join([][]byte{[]byte("hs"), rec, empty, rec}, nil)
	buf := make([]byte, 64)
	var got []byte
	for i := 0; i < 10 && len(got) < len(want); i++ {
		n, err := fc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n > len(rec) {
			t.Errorf("read %d bytes in one call: crossed a record boundary", n)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %q, want %q", got, want)
	}
	fc.SetRecordBounded(false)
	n, err := fc.Read(buf)
	if err != nil || string(buf[:n]) != "PLAIN" {
		t.Errorf("plaintext after records: %q, %v", buf[:n], err)
	}

	t.Run("not a record", func(t *testing.T) {
		fc := NewFramedConn(&framingBufConn{r: framingStream(rec[:1], []byte{0x03, 0x03, 0, 0, 0x12, 0x01, 0x00, 0x08, 0x00})}, RoleServer, 0)
		fc.SwitchToRaw()
		fc.SetRecordBounded(true)
		b := make([]byte, 64)
		for i := 0; i < 4; i++ {
			if _, err = fc.Read(b); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrNotTLS) {
			t.Errorf("error %v, want ErrNotTLS", err)
		}
	})
}

func TestFramedConnLoginOnly(t *testing.T) {
	cert, pool := framingTestCert(t)
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			craw, sraw := framingTCPPair(t)
			cfc := NewFramedConn(craw, RoleClient, 0)
			sfc := NewFramedConn(sraw, RoleServer, 0)
			cli := tls.Client(cfc, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: version, MaxVersion: version})
			srv := tls.Server(sfc, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: version, MaxVersion: version})

			// A LOGIN7 stand-in large enough to take three 512-byte packets.
			login := bytes.Repeat([]byte("L7"), 600)
			w := tds.Writer{PacketSize: 512}
			loginMsg := w.AppendMessage(nil, tds.PacketLogin7, 0, login)
			batchMsg := w.AppendMessage(nil, tds.PacketSQLBatch, 0, []byte("SELECT 1"))

			type result struct {
				login, batch tds.Message
				err          error
			}
			done := make(chan result, 1)
			go func() {
				var r result
				r.err = func() error {
					if err := srv.Handshake(); err != nil {
						return err
					}
					if err := sfc.SwitchToRaw(); err != nil {
						return err
					}
					var err error
					if r.login, err = ReadLoginOnly(srv, sfc, 0); err != nil {
						return err
					}
					if r.batch, err = tds.NewReader(sfc).ReadMessage(); err != nil {
						return err
					}
					return tds.NewWriter(sfc).WriteMessage(tds.PacketReply, []byte("OK"))
				}()
				done <- r
			}()
			if err := cli.Handshake(); err != nil {
				t.Fatal(err)
			}
			if err := cfc.SwitchToRaw(); err != nil {
				t.Fatal(err)
			}
			// Send the plaintext batch right behind LOGIN7 so that an
			// over-reading TLS layer on the server would swallow it.
			if err := WriteLoginOnly(cli, craw, loginMsg); err != nil {
				t.Fatal(err)
			}
			if _, err := craw.Write(batchMsg); err != nil {
				t.Fatal(err)
			}
			reply, err := tds.NewReader(craw).ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.err != nil {
				t.Fatalf("server: %v", r.err)
			}
			if r.login.Type != tds.PacketLogin7 || !bytes.Equal(r.login.Payload, login) || r.login.Packets != 3 {
				t.Errorf("login: type %s, %d packets, payload equal %v", r.login.Type, r.login.Packets, bytes.Equal(r.login.Payload, login))
			}
			if r.batch.Type != tds.PacketSQLBatch || string(r.batch.Payload) != "SELECT 1" {
				t.Errorf("batch: %s %q", r.batch.Type, r.batch.Payload)
			}
			if string(reply.Payload) != "OK" {
				t.Errorf("reply %q", reply.Payload)
			}
		})
	}
}

func TestWriteLoginOnlyErrors(t *testing.T) {
	var tlsSide, rawSide bytes.Buffer
	if err := WriteLoginOnly(&tlsSide, &rawSide, []byte{0x10, 0x01, 0x00}); !errors.Is(err, tds.ErrShortHeader) {
		t.Errorf("short: %v", err)
	}
	if err := WriteLoginOnly(&tlsSide, &rawSide, framingPacket(tds.PacketLogin7, tds.StatusEOM, "abc")[:9]); err == nil {
		t.Error("truncated packet accepted")
	}
}

func FuzzFramedConnRead(f *testing.F) {
	f.Add([]byte{})                                                                             // empty
	f.Add(framingPacket(tds.PacketPrelogin, tds.StatusEOM, "\x16\x03\x03\x00\x01\x00"))         // one wrapped record
	f.Add(append(framingPacket(tds.PacketReply, 0, "ab"), 0x17, 0x03, 0x03, 0x00, 0x00))        // raw after non-EOM
	f.Add([]byte{0x12, 0x01, 0xFF, 0xFF, 0, 0, 0, 0})                                           // length too big
	f.Add(append(framingPacket(tds.PacketPrelogin, tds.StatusEOM, ""), 0x16, 0x03, 0x01, 0, 9)) // raw handshake record
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, bounded := range []bool{false, true} {
			fc := NewFramedConn(&framingBufConn{r: bytes.NewReader(data)}, RoleServer, 0)
			fc.SetRecordBounded(bounded)
			buf := make([]byte, 7)
			for i := 0; i <= len(data)+1; i++ {
				if _, err := fc.Read(buf); err != nil {
					break
				}
			}
		}
	})
}
