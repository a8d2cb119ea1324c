package probe

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// Leading-zero results.
const (
	LeadingZeroStrip = "strip"
	LeadingZeroPad   = "pad"
	LeadingZeroNA    = "n/a"
)

// grindAllowance is added to the per-connection timeout for a
// leading-zero handshake: grinding takes about 256 modular
// exponentiations (docs/protocol.md), a second or so at 2048 bits.
const grindAllowance = 10 * time.Second

// dhe gathers the DHE suites and prime sizes seen during enumeration
// (ServerKeyExchange dh_p, RFC 5246 §7.4.3) and runs the leading-zero
// tests when the server accepts DHE at all.
func (p *prober) dhe(ctx context.Context, m mode, enums map[uint16]enumeration, suites []uint16, answers []answer) DHEResult {
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
	r.LeadingZero, r.LeadingZeroReason = p.leadingZero(ctx, m, enums)
	r.ShortPublic, r.ShortPublicReason = LeadingZeroNA, "not tested: the DHE engine grinds the shared secret, not a client public value shorter than p"
	p.progress("DHE: %d suite(s), prime bits %v, leading zero %s", len(dheSuites), r.GroupsBits, r.LeadingZero)
	return r
}

// leadingZero is the leading-zero test: as a DHE client (tlsbridge/dhe),
// grind a private key until the shared secret Z starts with 0x00, then
// finish one handshake with Z stripped (RFC 5246 §8.1.2) and one with Z
// padded to the length of p. The one that completes says what the server
// does: a server that pads (unpatched Schannel) cannot decrypt the
// stripped client's Finished, and the other way round.
func (p *prober) leadingZero(ctx context.Context, m mode, enums map[uint16]enumeration) (string, string) {
	var version, suite uint16
	for _, v := range []uint16{tlsbridge.VersionTLS12, tlsbridge.VersionTLS11, tlsbridge.VersionTLS10} {
		for _, s := range enums[v].suites {
			if suite == 0 && dhe.IsDHESuite(s) {
				version, suite = v, s
			}
		}
	}
	if suite == 0 {
		return LeadingZeroNA, "the server's DHE suites are not ones the DHE engine implements (TLS_DHE_RSA with AES)"
	}
	type outcome struct {
		st  dhe.ConnectionState
		err error
	}
	run := func(z dhe.ZEncoding) outcome {
		var o outcome
		o.err = p.connFor(ctx, p.timeout+grindAllowance, func(c net.Conn, _ time.Duration) error {
			var tr net.Conn = c
			if m == modeTDS7 {
				if _, err := p.exchangePrelogin(c, tds.EncryptOn); err != nil {
					return err
				}
				tr = tlsbridge.NewFramedConn(c, tlsbridge.RoleClient, tds.DefaultPacketSize)
			}
			cfg := &dhe.Config{
				CipherSuites: []uint16{suite}, MinVersion: version, MaxVersion: version,
				Z: z, Grind: true, InsecureSkipVerify: true, // the chain is examined apart
				MinGroupBits: 512, // measure weak groups too
			}
			if net.ParseIP(p.host) == nil {
				cfg.ServerName = p.host
			}
			if m == modeStrict {
				cfg.NextProtos = []string{"tds/8.0"}
			}
			dc := dhe.Client(tr, cfg)
			err := dc.Handshake()
			o.st = dc.ConnectionState()
			return err
		})
		return o
	}
	strip := run(dhe.ZStrip)
	pad := run(dhe.ZPad)
	where := fmt.Sprintf("%s %s", tlsbridge.VersionName(version), tlsbridge.CipherSuiteName(suite))
	switch {
	case !strip.st.ZLeadingZero && !pad.st.ZLeadingZero:
		return LeadingZeroNA, fmt.Sprintf("no key with a zero-led shared secret was found (%s): strip: %v; pad: %v", where, errText(strip.err), errText(pad.err))
	case strip.err == nil && pad.err != nil:
		return LeadingZeroStrip, ""
	case pad.err == nil && strip.err != nil:
		return LeadingZeroPad, ""
	case strip.err == nil && pad.err == nil:
		return LeadingZeroNA, "both encodings completed (" + where + "): the server accepts either"
	}
	return LeadingZeroNA, fmt.Sprintf("neither handshake completed (%s): strip: %v; pad: %v", where, strip.err, pad.err)
}

func errText(err error) string {
	if err == nil {
		return "completed"
	}
	return err.Error()
}
