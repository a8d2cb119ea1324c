package dhe

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// testCert returns a fresh self-signed RSA-2048 certificate for
// "localhost", with its PEM forms.
func testCert(t testing.TB) (tls.Certificate, []byte, []byte) {
	t.Helper()
	cert, certPEM, keyPEM, err := tlsbridge.GenerateCertificate(tlsbridge.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM, keyPEM
}

// seeded returns a deterministic random source for keys and randoms.
func seeded(seed uint64) io.Reader {
	return rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), 'd', 'h', 'e'})
}

// pairResult is what each side of one handshake saw.
type pairResult struct {
	serverErr, clientErr     error
	server, client           ConnectionState
	serverReadErr, clientEOF error
}

// runPair runs one handshake between an engine server and an engine client
// over loopback TCP, then an echo of "ping" when it succeeds.
func runPair(t *testing.T, scfg, ccfg *Config) pairResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type sres struct {
		err   error
		state ConnectionState
	}
	done := make(chan sres, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- sres{err: err}
			return
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(20 * time.Second))
		sc := Server(raw, scfg)
		err = sc.Handshake()
		if err == nil {
			buf := make([]byte, 4)
			if _, err = io.ReadFull(sc, buf); err == nil {
				_, err = sc.Write(buf)
			}
		}
		done <- sres{err: err, state: sc.ConnectionState()}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(20 * time.Second))
	cc := Client(raw, ccfg)
	var r pairResult
	r.clientErr = cc.Handshake()
	if r.clientErr == nil {
		buf := []byte("ping")
		if _, err := cc.Write(buf); err != nil {
			r.clientErr = err
		} else if _, err := io.ReadFull(cc, buf); err != nil || string(buf) != "ping" {
			r.clientErr = err
		}
	}
	r.client = cc.ConnectionState()
	s := <-done
	r.serverErr, r.server = s.err, s.state
	return r
}

// clientTrusting returns a client config that trusts cert.
func clientTrusting(cert tls.Certificate) *Config {
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	return &Config{RootCAs: pool, ServerName: "localhost"}
}
