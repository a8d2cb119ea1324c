package dhe_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// serveTLSInPrelogin shows how a TDS 7.x server side (the emulator, or a
// bridge's client-facing leg) answers the TLS handshake that follows
// PRELOGIN: peek the ClientHello inside the PRELOGIN packets, give it to
// the DHE engine when the client offers DHE, else to crypto/tls, and
// switch the framing conn to raw records when the handshake is done.
func serveTLSInPrelogin(raw net.Conn, cert tls.Certificate) (net.Conn, error) {
	fc := tlsbridge.NewFramedConn(raw, tlsbridge.RoleServer, tds.DefaultPacketSize)
	hello, peeked, err := dhe.ReadClientHello(fc)
	if err != nil {
		return nil, err
	}
	replay := dhe.ReplayConn(fc, peeked)
	var conn interface {
		net.Conn
		Handshake() error
	}
	if dhe.OffersDHE(hello) {
		conn = dhe.Server(replay, &dhe.Config{
			Certificates: []tls.Certificate{cert},
			Z:            dhe.ZPad,    // an unpatched Windows server
			Fail:         dhe.FailRST, // 10054 on a Windows client
		})
	} else {
		conn = tls.Server(replay, &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS12})
	}
	if err := conn.Handshake(); err != nil {
		_ = fc.Flush() // a pending alert, if any
		return nil, err
	}
	if err := fc.SwitchToRaw(); err != nil {
		return nil, err
	}
	return conn, nil
}

// TestServeTLSInPrelogin runs the sketch above with an engine client (it
// gets DHE) and a crypto/tls client (it gets ECDHE), both framed in
// PRELOGIN packets.
func TestServeTLSInPrelogin(t *testing.T) {
	cert, _, _, err := tlsbridge.GenerateCertificate(tlsbridge.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, engine := range []bool{true, false} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		type res struct {
			conn net.Conn
			err  error
		}
		done := make(chan res, 1)
		go func() {
			raw, err := ln.Accept()
			if err != nil {
				done <- res{err: err}
				return
			}
			_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
			c, err := serveTLSInPrelogin(raw, cert)
			if err != nil {
				raw.Close()
			}
			done <- res{c, err}
		}()
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
		fc := tlsbridge.NewFramedConn(raw, tlsbridge.RoleClient, tds.DefaultPacketSize)
		if engine {
			err = dhe.Client(fc, &dhe.Config{InsecureSkipVerify: true}).Handshake()
		} else {
			err = tls.Client(fc, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}).Handshake()
		}
		if err == nil {
			err = fc.SwitchToRaw()
		}
		r := <-done
		if err != nil || r.err != nil {
			t.Fatalf("engine client %v: client %v, server %v", engine, err, r.err)
		}
		dc, isDHE := r.conn.(*dhe.Conn)
		if isDHE != engine || engine && dc.ConnectionState().Group != "ffdhe2048" {
			t.Errorf("engine client %v: server conn %T", engine, r.conn)
		}
		r.conn.Close()
	}
}

// Example_client configures the engine as a client that grinds its key
// so that the shared secret starts with a zero byte: the failure on demand
// against a server that pads (dhe.Client(conn, client) on a TCP conn for
// TDS 8.0 strict, or on a tlsbridge.FramedConn inside PRELOGIN).
func Example_client() {
	client := &dhe.Config{
		ServerName: "localhost",
		NextProtos: []string{"tds/8.0"}, // strict (MS-TDS §3.3.5.1)
		Z:          dhe.ZStrip,          // as OpenSSL, GnuTLS and JSSE
		Grind:      true,                // Z[0] == 0 every time
	}
	group, _ := dhe.GroupByName("ffdhe2048")
	fmt.Println(client.Grind, group.Bits(), dhe.IsDHESuite(dhe.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256))
	// Output: true 2048 true
}
