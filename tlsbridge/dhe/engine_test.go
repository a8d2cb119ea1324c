package dhe

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// TestEngineEveryVersionSuite runs the engine against itself for each
// version and each suite usable at it.
func TestEngineEveryVersionSuite(t *testing.T) {
	cert, _, _ := testCert(t)
	for _, v := range []uint16{VersionTLS10, VersionTLS11, VersionTLS12} {
		for _, s := range suites {
			if !s.usable(v) {
				continue
			}
			t.Run(fmt.Sprintf("%04x/%s", v, s.name), func(t *testing.T) {
				var keylog bytes.Buffer
				scfg := &Config{Certificates: []tls.Certificate{cert}, MinVersion: VersionTLS10, MaxVersion: v, Group: groupMODP1024}
				ccfg := clientTrusting(cert)
				ccfg.MinVersion, ccfg.MaxVersion, ccfg.CipherSuites, ccfg.KeyLogWriter = VersionTLS10, v, []uint16{s.id}, &keylog
				r := runPair(t, scfg, ccfg)
				if r.serverErr != nil || r.clientErr != nil {
					t.Fatalf("server: %v; client: %v", r.serverErr, r.clientErr)
				}
				if r.client.Version != v || r.client.CipherSuite != s.id || !r.client.ExtendedMasterSecret || !r.server.SecureRenegotiation {
					t.Errorf("client state %+v", r.client)
				}
				if !strings.HasPrefix(keylog.String(), "CLIENT_RANDOM ") || len(keylog.String()) != len("CLIENT_RANDOM ")+64+1+96+1 {
					t.Errorf("key log %q", keylog.String())
				}
			})
		}
	}
}

func TestIdentifyGroup(t *testing.T) {
	for _, name := range Groups() {
		g := groups[name]
		if got := IdentifyGroup(g.P.Bytes(), g.G.Bytes()); got != name {
			t.Errorf("IdentifyGroup(%s) = %s", name, got)
		}
	}
	if got := IdentifyGroup(groupFFDHE2048.P.Bytes(), []byte{5}); got != "custom" {
		t.Errorf("another generator: %s", got)
	}
}

// TestGroupLZ2049: the forcing group's prime is the smallest prime above
// 2^2048, and with it a pad server fails against a strip client without any
// grinding.
func TestGroupLZ2049(t *testing.T) {
	g := groupLZ2049
	if !g.P.ProbablyPrime(20) || g.Bits() != 2049 || g.Len() != 257 {
		t.Fatalf("lz2049: prime %v, %d bits", g.P.ProbablyPrime(20), g.Bits())
	}
	for k := int64(1); k < 981; k += 2 {
		if new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 2048), big.NewInt(k)).ProbablyPrime(20) {
			t.Fatalf("2^2048 + %d is prime too", k)
		}
	}
	cert, _, _ := testCert(t)
	r := runPair(t, &Config{Certificates: []tls.Certificate{cert}, Group: g, Z: ZPad, Rand: seeded(5)}, &Config{InsecureSkipVerify: true, Rand: seeded(6)})
	if !errors.Is(r.serverErr, ErrBadFinished) || !r.client.ZLeadingZero || r.client.PreMasterLen >= 257 {
		t.Errorf("server %v, client %v, client state %+v", r.serverErr, r.clientErr, r.client)
	}
}

// TestEngineLargeWriteAndClose: a write larger than a record is split
// into records of at most 2^14 bytes and arrives whole; Close sends
// close_notify, which the peer reads as io.EOF.
func TestEngineLargeWriteAndClose(t *testing.T) {
	cert, _, _ := testCert(t)
	for _, c := range []struct {
		v     uint16
		suite uint16
	}{{VersionTLS12, TLS_DHE_RSA_WITH_AES_256_GCM_SHA384}, {VersionTLS10, TLS_DHE_RSA_WITH_AES_128_CBC_SHA}, {VersionTLS12, TLS_DHE_RSA_WITH_AES_256_CBC_SHA256}} {
		t.Run(CipherSuiteName(c.suite), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			payload := bytes.Repeat([]byte("0123456789abcdef"), 10000) // 160,000 bytes
			errc := make(chan error, 1)
			go func() {
				raw, err := ln.Accept()
				if err != nil {
					errc <- err
					return
				}
				sc := Server(raw, &Config{Certificates: []tls.Certificate{cert}, Group: groupMODP1024, MinVersion: VersionTLS10})
				_, err = sc.Write(payload)
				if err == nil {
					err = sc.Close()
				}
				errc <- err
			}()
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			_ = raw.SetDeadline(time.Now().Add(20 * time.Second))
			cc := Client(raw, &Config{InsecureSkipVerify: true, MinVersion: c.v, MaxVersion: c.v, CipherSuites: []uint16{c.suite}})
			got, err := io.ReadAll(cc)
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("read %d of %d bytes, %v", len(got), len(payload), err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}
