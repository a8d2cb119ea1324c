package dhe

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"
)

// TestShortPublic is the short-public-value variant (docs/dhe.md): a
// client with GrindPublic picks a key whose Yc starts with a zero byte at
// the length of p, then sends it short (YMinimal, as OpenSSL 1.1.1) or at
// full length (YPadded). A default server accepts both; a server with
// RejectShortPublic mishandles only the short one: the client's Finished
// fails the way Fail says.
func TestShortPublic(t *testing.T) {
	cert, _, _ := testCert(t)
	p := groupFFDHE2048.Len()
	seed := uint64(0)
	for _, reject := range []bool{false, true} {
		for _, y := range []YEncoding{YMinimal, YPadded} {
			for _, fail := range []FailMode{FailAlert, FailFIN, FailRST} {
				if (!reject || y == YPadded) && fail != FailAlert {
					continue // no failure: one run is enough
				}
				seed++
				t.Run(fmt.Sprintf("reject-%v/y-%s/fail-%s", reject, y, fail), func(t *testing.T) {
					scfg := &Config{Certificates: []tls.Certificate{cert}, RejectShortPublic: reject, Fail: fail, Rand: seeded(500 + seed)}
					ccfg := clientTrusting(cert)
					ccfg.Y, ccfg.GrindPublic, ccfg.Rand = y, true, seeded(600+seed)
					r := runPair(t, scfg, ccfg)
					t.Logf("grind tries %d", r.client.GrindTries)
					if !r.client.PublicLeadingZero || r.client.GrindTries < 1 || r.client.GrindTries > DefaultGrindLimit {
						t.Fatalf("client: public leading zero %v after %d tries", r.client.PublicLeadingZero, r.client.GrindTries)
					}
					wantLen := p
					if y == YMinimal {
						// At least one byte shorter; two with chance 1/256.
						if r.client.PublicLen >= p || r.client.PublicLen < p-2 {
							t.Errorf("client sent a %d-byte Yc, want shorter than %d", r.client.PublicLen, p)
						}
						wantLen = r.client.PublicLen
					} else if r.client.PublicLen != p {
						t.Errorf("client sent a %d-byte Yc, want %d (padded)", r.client.PublicLen, p)
					}
					if r.server.PeerPublicLen != wantLen {
						t.Errorf("server saw a %d-byte Yc, want %d", r.server.PeerPublicLen, wantLen)
					}
					if !reject || y == YPadded {
						if r.serverErr != nil || r.clientErr != nil {
							t.Fatalf("server %v, client %v: want both to complete", r.serverErr, r.clientErr)
						}
						return
					}
					if !errors.Is(r.serverErr, ErrShortPublic) || !errors.Is(r.serverErr, ErrBadFinished) {
						t.Fatalf("server error %v, want ErrShortPublic and ErrBadFinished", r.serverErr)
					}
					var ae *AlertError
					switch fail {
					case FailAlert:
						if !errors.As(r.clientErr, &ae) || !ae.Remote || ae.Description != alertBadRecordMAC {
							t.Errorf("client error %v, want a remote bad_record_mac alert", r.clientErr)
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
				})
			}
		}
	}
}

// TestGrindPublicLimit grinds for both a zero-led Yc and a zero-led Z
// (about 1 key in 65536) with a limit of 3 keys: the client gives up with
// ErrGrindFailed (the seeded keys never qualify).
func TestGrindPublicLimit(t *testing.T) {
	cert, _, _ := testCert(t)
	scfg := &Config{Certificates: []tls.Certificate{cert}, Rand: seeded(900)}
	ccfg := clientTrusting(cert)
	ccfg.GrindPublic, ccfg.Grind, ccfg.GrindLimit, ccfg.Rand = true, true, 3, seeded(901)
	r := runPair(t, scfg, ccfg)
	if !errors.Is(r.clientErr, ErrGrindFailed) {
		t.Fatalf("client error %v, want ErrGrindFailed", r.clientErr)
	}
}
