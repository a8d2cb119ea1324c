package tlsbridge

import (
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"
)

// flight is one Write of one peer, in the order the peers wrote.
type flight struct {
	dir Direction
	b   []byte
}

// orderedLog records every Write of both peers in order: a write is logged
// before its bytes leave, so a reply is always logged after what it answers.
type orderedLog struct {
	mu      sync.Mutex
	flights []flight
}

type loggedConn struct {
	net.Conn
	dir Direction
	log *orderedLog
}

func (c *loggedConn) Write(b []byte) (int, error) {
	c.log.mu.Lock()
	c.log.flights = append(c.log.flights, flight{c.dir, append([]byte(nil), b...)})
	c.log.mu.Unlock()
	return c.Conn.Write(b)
}

// captureFlights runs a crypto/tls handshake plus one client record over
// loopback TCP and returns both peers' writes in order. (Not net.Pipe:
// after a HelloRetryRequest both peers write a ChangeCipherSpec at once,
// which an unbuffered pipe deadlocks on.)
func captureFlights(t *testing.T, clientCfg, serverCfg *tls.Config) []flight {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	deadline := time.Now().Add(10 * time.Second)
	cc.SetDeadline(deadline)
	sc.SetDeadline(deadline)
	log := &orderedLog{}
	serverErr := make(chan error, 1)
	go func() {
		srv := tls.Server(&loggedConn{sc, ServerToClient, log}, serverCfg)
		err := srv.Handshake()
		if err == nil {
			_, err = srv.Read(make([]byte, 4))
		}
		sc.Close()
		serverErr <- err
	}()
	cli := tls.Client(&loggedConn{cc, ClientToServer, log}, clientCfg)
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
	return log.flights
}

// follow feeds the flights to a Follower in chunks of n bytes and returns
// each direction's event summary, the ServerHellos it parsed, and the
// Follower.
func follow(t *testing.T, flights []flight, n int) (sum [2][]string, hellos []*ServerHello, f *Follower) {
	t.Helper()
	f = NewFollower(0)
	for _, fl := range flights {
		for b := fl.b; len(b) > 0; {
			k := min(n, len(b))
			evs, err := f.Feed(fl.dir, b[:k])
			b = b[k:]
			if err != nil {
				t.Fatalf("chunk %d, %s: %v", n, fl.dir, err)
			}
			sum[fl.dir] = append(sum[fl.dir], summary(evs)...)
			for _, ev := range evs {
				if ev.Err != nil {
					t.Fatalf("ServerHello: %v", ev.Err)
				}
				if ev.ServerHello != nil {
					hellos = append(hellos, ev.ServerHello)
				}
			}
		}
	}
	return sum, hellos, f
}

func TestFollowerLiveHandshakes(t *testing.T) {
	cert := testServerCert(t)
	cases := []struct {
		name               string
		client, server     *tls.Config
		version            uint16
		hellos             int
		clientWant, srvPre []string // client events; server events before encryption
	}{
		{
			name:       "TLS 1.2",
			client:     &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12},
			server:     &tls.Config{Certificates: []tls.Certificate{cert}, SessionTicketsDisabled: true},
			version:    tls.VersionTLS12,
			hellos:     1,
			clientWant: []string{"hs:ClientHello", "hs:ClientKeyExchange", "change_cipher_spec", "enc:handshake", "enc:application_data"},
			srvPre:     []string{"hs:ServerHello", "hs:Certificate", "hs:ServerKeyExchange", "hs:ServerHelloDone", "change_cipher_spec"},
		},
		{
			name:    "TLS 1.3",
			client:  &tls.Config{InsecureSkipVerify: true},
			server:  &tls.Config{Certificates: []tls.Certificate{cert}},
			version: tls.VersionTLS13,
			hellos:  1,
			// Everything after the ServerHello is encrypted, certificate
			// included (RFC 8446 §2).
			srvPre: []string{"hs:ServerHello"},
		},
		{
			// The client's first key share (P-256) is not one the server (P-384 only)
			// takes, so the server asks again (RFC 8446 §4.1.4); the second
			// ClientHello must still be seen in plaintext.
			name:    "TLS 1.3 HelloRetryRequest",
			client:  &tls.Config{InsecureSkipVerify: true, CurvePreferences: []tls.CurveID{tls.CurveP256, tls.CurveP384}},
			server:  &tls.Config{Certificates: []tls.Certificate{cert}, CurvePreferences: []tls.CurveID{tls.CurveP384}},
			version: tls.VersionTLS13,
			hellos:  2,
			srvPre:  []string{"hs:ServerHello"}, // the HelloRetryRequest
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			flights := captureFlights(t, tc.client, tc.server)
			for _, n := range []int{1, 7, 300, 1 << 20} {
				sum, hellos, f := follow(t, flights, n)
				if f.Version() != tc.version {
					t.Errorf("chunk %d: Version = %#x, want %#x", n, f.Version(), tc.version)
				}
				if f.TLS13() != (tc.version == tls.VersionTLS13) {
					t.Errorf("chunk %d: TLS13 = %v", n, f.TLS13())
				}
				if len(hellos) != tc.hellos {
					t.Errorf("chunk %d: %d ServerHellos, want %d", n, len(hellos), tc.hellos)
				}
				if tc.hellos == 2 && !hellos[0].IsHelloRetryRequest() {
					t.Errorf("chunk %d: first ServerHello is not a HelloRetryRequest", n)
				}
				if tc.clientWant != nil && !equalStrings(sum[ClientToServer], tc.clientWant) {
					t.Errorf("chunk %d: client events %v, want %v", n, sum[ClientToServer], tc.clientWant)
				}
				if tc.hellos == 2 {
					hellosSeen := 0
					for _, s := range sum[ClientToServer] {
						if s == "hs:ClientHello" {
							hellosSeen++
						}
					}
					if hellosSeen != 2 {
						t.Errorf("chunk %d: client events %v, want two plaintext ClientHellos", n, sum[ClientToServer])
					}
				}
				srv := sum[ServerToClient]
				if len(srv) < len(tc.srvPre) || !equalStrings(srv[:len(tc.srvPre)], tc.srvPre) {
					t.Errorf("chunk %d: server events %v, want them to start %v", n, srv, tc.srvPre)
				}
				for d := range 2 {
					if f.MidRecord(Direction(d)) {
						t.Errorf("chunk %d: %s ends mid-record", n, Direction(d))
					}
				}
			}
		})
	}
}

func TestFollowerMidRecord(t *testing.T) {
	rec := record(ContentHandshake, hsMsg(HandshakeClientHello, []byte("hello")))
	for cut := 1; cut < len(rec); cut++ {
		f := NewFollower(0)
		if _, err := f.Feed(ClientToServer, rec[:cut]); err != nil {
			t.Fatal(err)
		}
		if !f.MidRecord(ClientToServer) {
			t.Errorf("cut at %d of %d: MidRecord = false", cut, len(rec))
		}
		evs, err := f.Feed(ClientToServer, rec[cut:])
		if err != nil || len(evs) != 1 || f.MidRecord(ClientToServer) {
			t.Errorf("cut at %d: %v, %v, MidRecord %v", cut, summary(evs), err, f.MidRecord(ClientToServer))
		}
	}
}

func TestLooksLikeRecord(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want bool
	}{
		{[]byte{0x16, 3, 1}, true},
		{[]byte{0x17, 3, 3}, true},
		{[]byte{0x00, 0x00, 0x1a}, false}, // PRELOGIN: VERSION token
		{[]byte{0xE3, 0x0b}, false},       // ENVCHANGE token
		{[]byte{0x18, 3}, false},          // heartbeat is never a handshake unit
		{[]byte{0x16}, false},
	} {
		if got := LooksLikeRecord(tc.b); got != tc.want {
			t.Errorf("LooksLikeRecord(% x) = %v", tc.b, got)
		}
	}
}
