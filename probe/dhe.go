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

// Short-public-value results (the n/a is LeadingZeroNA).
const (
	ShortPublicAccepted = "accepted"
	ShortPublicRejected = "rejected"
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
	version, suite := firstEngineSuite(enums)
	if suite == 0 {
		r.LeadingZeroReason = "the server's DHE suites are not ones the DHE engine implements (TLS_DHE_RSA with AES)"
		r.ShortPublicReason = r.LeadingZeroReason
	} else {
		r.LeadingZero, r.LeadingZeroReason = p.leadingZero(ctx, m, version, suite)
		r.ShortPublic, r.ShortPublicReason = p.shortPublic(ctx, m, version, suite, r.LeadingZero)
	}
	p.progress("DHE: %d suite(s), prime bits %v, leading zero %s, short public %s", len(dheSuites), r.GroupsBits, r.LeadingZero, r.ShortPublic)
	return r
}

// firstEngineSuite is the highest version's first accepted suite that the
// DHE engine implements, or 0.
func firstEngineSuite(enums map[uint16]enumeration) (version, suite uint16) {
	for _, v := range []uint16{tlsbridge.VersionTLS12, tlsbridge.VersionTLS11, tlsbridge.VersionTLS10} {
		for _, s := range enums[v].suites {
			if dhe.IsDHESuite(s) {
				return v, s
			}
		}
	}
	return 0, 0
}

// dheOutcome is one engine handshake's end.
type dheOutcome struct {
	st  dhe.ConnectionState
	err error
}

// dheHandshake runs one handshake with the DHE engine as the client for
// version and suite, with the knobs knobs sets.
func (p *prober) dheHandshake(ctx context.Context, m mode, version, suite uint16, knobs func(*dhe.Config)) dheOutcome {
	var o dheOutcome
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
			InsecureSkipVerify: true, // the chain is examined apart
			MinGroupBits:       512,  // measure weak groups too
		}
		knobs(cfg)
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

// leadingZero is the leading-zero test: as a DHE client (tlsbridge/dhe),
// grind a private key until the shared secret Z starts with 0x00, then
// finish one handshake with Z stripped (RFC 5246 §8.1.2) and one with Z
// padded to the length of p. The one that completes says what the server
// does: a server that pads (unpatched Schannel) cannot decrypt the
// stripped client's Finished, and the other way round.
func (p *prober) leadingZero(ctx context.Context, m mode, version, suite uint16) (string, string) {
	run := func(z dhe.ZEncoding) dheOutcome {
		return p.dheHandshake(ctx, m, version, suite, func(c *dhe.Config) { c.Z, c.Grind = z, true })
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

// shortPublic is the short-public-value variant (docs/dhe.md): as a DHE
// client, grind a private key until the public value Yc starts with 0x00
// at the length of p, then finish one handshake sending dh_Yc short (no
// leading zero, as OpenSSL 1.1.1) and one sending it padded to the length
// of p (RFC 5246 §7.4.7.2 allows either). Z is encoded the way the
// leading-zero test found the server does (strip when it could not tell),
// so a zero-led Z cannot be what fails.
func (p *prober) shortPublic(ctx context.Context, m mode, version, suite uint16, leadingZero string) (string, string) {
	z := dhe.ZStrip
	if leadingZero == LeadingZeroPad {
		z = dhe.ZPad
	}
	run := func(y dhe.YEncoding) dheOutcome {
		return p.dheHandshake(ctx, m, version, suite, func(c *dhe.Config) { c.Z, c.Y, c.GrindPublic = z, y, true })
	}
	short := run(dhe.YMinimal)
	padded := run(dhe.YPadded)
	where := fmt.Sprintf("%s %s", tlsbridge.VersionName(version), tlsbridge.CipherSuiteName(suite))
	switch {
	case !short.st.PublicLeadingZero || !padded.st.PublicLeadingZero:
		return LeadingZeroNA, fmt.Sprintf("no key with a zero-led public value was found (%s): short: %v; padded: %v", where, errText(short.err), errText(padded.err))
	case short.err == nil && padded.err == nil:
		return ShortPublicAccepted, ""
	case padded.err == nil:
		return ShortPublicRejected, fmt.Sprintf("a %d-byte dh_Yc failed (%v); the %d-byte padded one completed (%s)", short.st.PublicLen, short.err, padded.st.PublicLen, where)
	case short.err == nil:
		return LeadingZeroNA, fmt.Sprintf("the short dh_Yc completed but the padded one failed (%s): %v", where, padded.err)
	}
	return LeadingZeroNA, fmt.Sprintf("neither handshake completed (%s): short: %v; padded: %v", where, short.err, padded.err)
}

func errText(err error) string {
	if err == nil {
		return "completed"
	}
	return err.Error()
}
