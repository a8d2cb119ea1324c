package probe

import (
	"context"
	"slices"

	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// Leading-zero results.
const (
	LeadingZeroStrip = "strip"
	LeadingZeroPad   = "pad"
	LeadingZeroNA    = "n/a"
)

// dhe gathers the DHE suites and prime sizes seen during enumeration
// (ServerKeyExchange dh_p, RFC 5246 §7.4.3) and runs the leading-zero
// tests when the server accepts DHE at all.
func (p *prober) dhe(ctx context.Context, m mode, suites []uint16, answers []answer) DHEResult {
	r := DHEResult{Suites: []string{}, GroupsBits: []int{}, LeadingZero: LeadingZeroNA, ShortPublic: LeadingZeroNA}
	var dheSuites []uint16
	for _, s := range suites {
		if tlsbridge.SuiteKeyExchange(s) == tlsbridge.KeyExchangeDHE {
			dheSuites = append(dheSuites, s)
			r.Suites = append(r.Suites, tlsbridge.CipherSuiteName(s))
		}
	}
	for _, a := range answers {
		if a.SKE != nil && a.SKE.PrimeBits > 0 && !slices.Contains(r.GroupsBits, a.SKE.PrimeBits) {
			r.GroupsBits = append(r.GroupsBits, a.SKE.PrimeBits)
		}
	}
	slices.Sort(r.GroupsBits)
	if len(dheSuites) == 0 {
		r.LeadingZeroReason = "the server accepts no DHE suite"
		r.ShortPublicReason = r.LeadingZeroReason
		return r
	}
	r.LeadingZero, r.LeadingZeroReason = p.leadingZero(ctx, m, dheSuites)
	r.ShortPublic, r.ShortPublicReason = p.shortPublic(ctx, m, dheSuites)
	p.progress("DHE: %d suite(s), prime bits %v, leading zero %s", len(dheSuites), r.GroupsBits, r.LeadingZero)
	return r
}

// leadingZero is the leading-zero test of issue 14: as a DHE client,
// grind a private key until the shared secret Z starts with 0x00, then
// finish one handshake with Z stripped (RFC 5246 §8.1.2) and one with Z
// padded to the length of p; the one that completes says what the server
// does. It needs a DHE client whose pre-master encoding can be chosen,
// which no Go TLS library offers (docs/protocol.md); the DHE engine
// (tlsbridge/dhe) will provide it. Until then it answers n/a.
func (p *prober) leadingZero(ctx context.Context, m mode, suites []uint16) (string, string) {
	return LeadingZeroNA, "needs the DHE engine (tlsbridge/dhe), which is not available yet"
}

// shortPublic is the variant with a client public value dh_Yc encoded
// shorter than p: same engine, same status.
func (p *prober) shortPublic(ctx context.Context, m mode, suites []uint16) (string, string) {
	return LeadingZeroNA, "needs the DHE engine (tlsbridge/dhe), which is not available yet"
}
