package dhe

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
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
