package dhe

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"syscall"
	"testing"
)

// TestLeadingZeroMatrix forces the leading-zero condition with a grinding
// client and runs every combination of the server's Z encoding, both
// sides' Y encoding and the server's failure mode. When the client's Z
// encoding differs from the server's, the server cannot decrypt the
// client's Finished and fails the way Config.Fail says; when they agree,
// the handshake succeeds although Z starts with a zero byte.
func TestLeadingZeroMatrix(t *testing.T) {
	cert, _, _ := testCert(t)
	seed := uint64(0)
	for _, sz := range []ZEncoding{ZStrip, ZPad} {
		for _, y := range []YEncoding{YMinimal, YPadded} {
			for _, fail := range []FailMode{FailFIN, FailRST, FailAlert} {
				for _, cz := range []ZEncoding{ZStrip, ZPad} {
					if cz == sz && fail != FailAlert {
						continue // agreeing sides never fail: one run per Y is enough
					}
					seed++
					name := fmt.Sprintf("server-%s/client-%s/y-%s/fail-%s", sz, cz, y, fail)
					t.Run(name, func(t *testing.T) {
						scfg := &Config{Certificates: []tls.Certificate{cert}, Z: sz, Y: y, Fail: fail, Rand: seeded(seed)}
						ccfg := clientTrusting(cert)
						ccfg.Z, ccfg.Y, ccfg.Grind, ccfg.Rand = cz, y, true, seeded(1000+seed)
						r := runPair(t, scfg, ccfg)
						checkLeadingZeroPair(t, r, sz, cz, y, fail)
					})
				}
			}
		}
	}
}

func checkLeadingZeroPair(t *testing.T, r pairResult, sz, cz ZEncoding, y YEncoding, fail FailMode) {
	t.Helper()
	p := groupFFDHE2048.Len()
	// Both sides computed the same Z, and it starts with a zero byte.
	if !r.client.ZLeadingZero || !r.server.ZLeadingZero {
		t.Fatalf("leading zero: client %v, server %v", r.client.ZLeadingZero, r.server.ZLeadingZero)
	}
	if r.client.GrindTries < 1 {
		t.Errorf("grind tries %d", r.client.GrindTries)
	}
	for _, side := range []struct {
		name string
		z    ZEncoding
		st   ConnectionState
	}{{"server", sz, r.server}, {"client", cz, r.client}} {
		if side.z == ZPad && side.st.PreMasterLen != p || side.z == ZStrip && side.st.PreMasterLen >= p {
			t.Errorf("%s (%s) used a %d-byte pre-master secret, p is %d bytes", side.name, side.z, side.st.PreMasterLen, p)
		}
		if y == YPadded && side.st.PublicLen != p || side.st.PublicLen > p {
			t.Errorf("%s sent a %d-byte Y (%s)", side.name, side.st.PublicLen, y)
		}
	}
	if r.server.PeerPublicLen != r.client.PublicLen || r.client.PeerPublicLen != r.server.PublicLen {
		t.Errorf("Y lengths: server sent %d, client saw %d; client sent %d, server saw %d",
			r.server.PublicLen, r.client.PeerPublicLen, r.client.PublicLen, r.server.PeerPublicLen)
	}
	if sz == cz {
		if r.serverErr != nil || r.clientErr != nil {
			t.Fatalf("agreeing sides failed: server %v, client %v", r.serverErr, r.clientErr)
		}
		return
	}
	if !errors.Is(r.serverErr, ErrBadFinished) {
		t.Fatalf("server error %v, want ErrBadFinished", r.serverErr)
	}
	var ae *AlertError
	switch fail {
	case FailAlert:
		if !errors.As(r.clientErr, &ae) || !ae.Remote || ae.Description != alertBadRecordMAC {
			t.Errorf("client error %v, want a remote bad_record_mac alert", r.clientErr)
		}
		if !errors.As(r.serverErr, &ae) || ae.Remote || ae.Description != alertBadRecordMAC {
			t.Errorf("server error %v, want a local bad_record_mac alert", r.serverErr)
		}
	case FailFIN:
		if !errors.Is(r.clientErr, io.EOF) {
			t.Errorf("client error %v, want EOF (FIN, no alert)", r.clientErr)
		}
	case FailRST:
		if !errors.Is(r.clientErr, syscall.ECONNRESET) {
			t.Errorf("client error %v, want ECONNRESET (RST)", r.clientErr)
		}
	}
}

// TestNaturalLeadingZeroRate counts, with seeded randomness, how often the
// shared secret starts with a zero byte over n client keys, and checks the
// count against the expected rate 256^(L-1)/p (L the length of p): about
// 1/256 for primes whose top byte is 0xFF, about 1/136 for RFC 5114 §2.3
// (top byte 0x87). The client keys are x0, x0+1, ..., x0+n-1 for a random
// x0, so each shared secret costs one multiplication (Z·Ys mod p) instead
// of a modular exponentiation; the bounds are a 99.9% binomial interval,
// and the seed makes the count the same on every run.
func TestNaturalLeadingZeroRate(t *testing.T) {
	const n = 40000
	for i, name := range Groups() {
		g := groups[name]
		t.Run(name, func(t *testing.T) {
			rnd := seeded(uint64(7000 + i))
			server := &keyAgreement{group: g, rand: rnd}
			if _, err := server.serverParams(); err != nil {
				t.Fatal(err)
			}
			ys := new(big.Int).Exp(g.G, server.x, g.P)
			client := &keyAgreement{group: g, rand: rnd, z: ZStrip}
			x0, err := client.privateKey()
			if err != nil {
				t.Fatal(err)
			}
			z := new(big.Int).Exp(ys, x0, g.P)
			zeros := 0
			for range n {
				client.encodeZ(z)
				if client.zLeadingZero {
					zeros++
				}
				z.Mul(z, ys).Mod(z, g.P)
			}
			// Expected rate: the share of values below p whose top byte is 0.
			top := new(big.Float).SetInt(new(big.Int).Lsh(big.NewInt(1), uint(8*(g.Len()-1))))
			rate, _ := new(big.Float).Quo(top, new(big.Float).SetInt(g.P)).Float64()
			mean := rate * n
			sd := math.Sqrt(mean * (1 - rate))
			lo, hi := mean-3.3*sd, mean+3.3*sd
			t.Logf("%s: %d of %d shared secrets start with 0x00: 1/%.1f measured, 1/%.1f expected", name, zeros, n,
				float64(n)/math.Max(float64(zeros), 1), 1/rate)
			if float64(zeros) < lo || float64(zeros) > hi {
				t.Errorf("%d leading zeros in %d, want %.1f..%.1f", zeros, n, lo, hi)
			}
		})
	}
}

// TestNaturalFailuresMatchLeadingZero runs full handshakes between a
// ZPad server and a ZStrip client without grinding: every handshake whose
// Z starts with a zero byte fails, and no other does.
func TestNaturalFailuresMatchLeadingZero(t *testing.T) {
	cert, _, _ := testCert(t)
	n := 600
	if testing.Short() {
		n = 200
	}
	srnd, crnd := seeded(42), seeded(43)
	failures, zeros := 0, 0
	for i := range n {
		scfg := &Config{Certificates: []tls.Certificate{cert}, Group: groupMODP1024, Z: ZPad, Rand: srnd}
		ccfg := &Config{InsecureSkipVerify: true, Rand: crnd}
		r := runPair(t, scfg, ccfg)
		if r.server.ZLeadingZero {
			zeros++
		}
		if r.serverErr != nil {
			failures++
			if !errors.Is(r.serverErr, ErrBadFinished) || !r.server.ZLeadingZero {
				t.Fatalf("handshake %d: server error %v with leading zero %v", i, r.serverErr, r.server.ZLeadingZero)
			}
		} else if r.server.ZLeadingZero {
			t.Fatalf("handshake %d: leading zero but no failure", i)
		}
	}
	t.Logf("modp1024, pad server vs strip client: %d failures in %d handshakes", failures, n)
	if failures == 0 || failures != zeros {
		t.Errorf("%d failures, %d leading zeros (the seed gives at least one)", failures, zeros)
	}
}
