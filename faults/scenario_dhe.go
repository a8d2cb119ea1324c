package faults

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// naturalLeadingZeroRate is the chance that a DH shared secret starts with a
// zero byte: 1 in 256 (KB4557473).
const naturalLeadingZeroRate = 1.0 / 256

// dheScenario is scenario 3 or 5. Each has two forms. The real one: a
// server that prefers TLS_DHE_* and pads the shared secret (unpatched
// Schannel) against a client that strips it, where the server fails to
// decrypt the client's Finished; the emulator (`tdsproxy emulate --dhe
// prefer --dhe-z pad`) and bridge mode play that server with the DHE engine
// (tlsbridge/dhe, docs/dhe.md), and the lab uses it. The emulated one, for
// passthrough (no decryption): the rule closes after the client's Finished
// flight of a DHE handshake, at rate (default defRate).
func dheScenario(name, summary, fix, defRate string, lab LabSetup, probe ProbeCheck) *scenario {
	return &scenario{
		Name:    name,
		Probe:   probe,
		Summary: summary,
		Where: "real (emulator --dhe prefer --dhe-z pad, or --bridge): the server fails to decrypt the client's Finished " +
			"(tls.client_finished) and closes; emulated (passthrough): the proxy closes after the client's " +
			"ClientKeyExchange/ChangeCipherSpec/Finished flight of a DHE handshake with probability --dhe-rate",
		Phase: proxy.PhaseTLSClientFinished,
		Fix:   fix,
		Options: []Option{
			{Name: "rate", Flag: "dhe-rate", Type: OptString, Default: defRate,
				Help: "emulated form (passthrough): natural (1/256, the leading-zero odds), always, or a probability 0..1"},
		},
		rule: func() scenarioRule {
			r := &dheRule{}
			_ = r.Rate.UnmarshalText([]byte(defRate))
			return r
		},
		recognise: func(r *proxy.Record) (string, bool) {
			if r.TLS == nil || !strings.HasPrefix(r.TLS.CipherSuite, "TLS_DHE_") || r.Close == nil {
				return "", false
			}
			if r.Close.By != proxy.SideClient && r.Close.Phase == proxy.PhaseTLSClientFinished {
				return "the server closed right after the client's Finished with " + r.TLS.CipherSuite, true
			}
			return "", false
		},
		Lab: lab,
	}
}

// The DHE lab servers (the real form): the emulator as an unpatched
// Windows server that prefers DHE, pads Z and resets (10054 on a Windows
// client). lz2049 (docs/dhe.md) makes nearly every shared secret start
// with a zero byte, so every stripping client fails, deterministically;
// JSSE refuses its 2049 bits.
var (
	labDHEForced = LabDHE{Mode: "prefer", Group: "lz2049", Z: "pad", Fail: "rst",
		Refused: map[string][]string{LabJDBC: {"Could not generate DH keypair", "The specific key size 2049 is not supported"}}}
	labDHENatural = LabDHE{Mode: "prefer", Group: "ffdhe2048", Z: "pad", Fail: "rst"}
	labDHEStrip   = LabDHE{Mode: "prefer", Group: "ffdhe2048", Z: "strip", Fail: "rst"}
)

// dheErrors are each client's words when the DHE server resets after its
// Finished (docs/dhe.md); LabGo is the DHE engine's client.
func dheErrors(jdbc []string) map[string][]string {
	out := map[string][]string{LabGo: {"connection reset by peer"}}
	for k, v := range resetErrors {
		if k != LabGo {
			out[k] = v
		}
	}
	if jdbc != nil {
		out[LabJDBC] = jdbc
	}
	return out
}

// labDHEClients: TDS 7.x, encryption on (TLS inside PRELOGIN), the
// clients' default suites (OpenSSL, GnuTLS, JSSE offer TLS_DHE_RSA).
var labDHECannot = map[string]string{
	LabGo: "go-mssqldb cannot meet it: Go's crypto/tls has no DHE key agreement (the lab's default row uses the DHE engine's client instead)",
}

var dheEnabledLab = LabSetup{
	Options: map[string]string{"rate": "always"}, Close: "rst",
	Server: LabServer{DHE: &labDHEForced, Desc: "emulator " + labDHEForced.Flags() + " (unpatched Windows, DHE preferred; lz2049 makes the failure deterministic)"},
	Fixed:  &LabServer{Desc: "emulator --dhe off (TLS_DHE_* removed from the policy: ECDHE)"},
	Expect: LabExpect{By: proxy.SideServer, Kind: proxy.CloseRST, Errors: dheErrors(labDHEForced.Refused[LabJDBC])},
	Note: "Real form: the emulator negotiates TLS_DHE_RSA with the DHE engine and pads the shared secret like an unpatched " +
		"Windows server; the client strips it (RFC 5246 §8.1.2), so their master secrets differ and the server, failing to " +
		"decrypt the client's Finished, resets. The group is lz2049, whose shared secrets nearly all start with a zero byte, " +
		"so the failure is deterministic here (in a real group it hits 1 handshake in 256: see dhe-leading-zero). No rule is armed. ",
	NoteFor: map[string]string{
		LabJDBC: "JSSE refuses lz2049's 2049 bits, so the JDBC driver fails on the group itself (DHE enabled is still the cause); " +
			"its leading-zero failure shows at the natural rate in the dhe-leading-zero row. ",
	},
	HoldNote: "The emulator prefers TLS_DHE_RSA, pads the shared secret and resets (" + labDHEForced.Flags() + "): every client " +
		"that offers DHE fails after its Finished (JDBC refuses the 2049-bit group). go-mssqldb never offers DHE and connects.",
	Cannot: labDHECannot,
}

var dheLeadingZeroLab = LabSetup{
	Options: map[string]string{"rate": "always"}, Close: "rst",
	Server: LabServer{DHE: &labDHEForced, Desc: "emulator " + labDHEForced.Flags() + " (unpatched Windows; lz2049 forces the zero byte)"},
	Fixed:  &LabServer{DHE: &labDHEStrip, Desc: "emulator " + labDHEStrip.Flags() + " (patched: both sides strip)"},
	Expect: LabExpect{By: proxy.SideServer, Kind: proxy.CloseRST, Errors: dheErrors([]string{"Connection reset"})},
	Note: "Real form: the emulator pads the shared secret like an unpatched Windows server; the client strips it. " +
		"Natural: in ffdhe2048 about 1 shared secret in 256 starts with a zero byte, and exactly those handshakes fail. " +
		"Forced: the DHE engine's client grinds its private key until the shared secret starts with a zero byte. No rule is armed. ",
	HoldNote: "The emulator pads the shared secret and resets (" + labDHEForced.Flags() + "): with lz2049 every DHE client " +
		"fails after its Finished; restart the emulator with --dhe-group ffdhe2048 for the natural 1 in 256.",
	Cannot:      labDHECannot,
	LeadingZero: &LabLeadingZero{Natural: labDHENatural, Expected: naturalLeadingZeroRate, ExpectedText: "1/256", ForcedN: 20},
}

// dheRule: a DHE handshake is closed after the client's Finished, for a
// share Rate of connections.
type dheRule struct {
	Rate rate `opt:"rate"`
}

func (p *dheRule) check(func(string) bool) error { return nil }

// conn draws the connection's fate once, at accept.
func (p *dheRule) conn(draw float64) scenarioConn {
	return &dheConn{p: p, rateHit: draw < p.Rate.p}
}

// dheConn is a DHE rule on one connection: armed once the server chose a
// DHE suite, closed at the client's Finished if the rate hit.
type dheConn struct {
	p       *dheRule
	rateHit bool
	armed   bool
}

func (c *dheConn) decide(st *connRule, ev *proxy.Event, rec *proxy.Record) proxy.Verdict {
	switch ev.Phase {
	case proxy.PhaseTLSServerHello:
		if ev.ServerHello == nil {
			return skip("the ServerHello could not be parsed")
		}
		suite := ev.ServerHello.CipherSuite
		if tlsbridge.SuiteKeyExchange(suite) != "DHE" {
			return pass("server chose " + tlsbridge.CipherSuiteName(suite) + ", not DHE")
		}
		c.armed = true
		return proxy.Verdict{Action: proxy.ActionArmed, Detail: "server chose " + tlsbridge.CipherSuiteName(suite)}
	case proxy.PhaseTLSClientFinished:
		if !c.armed {
			return proxy.Verdict{}
		}
		detail := "DHE suite " + rec.TLS.CipherSuite
		if ke := rec.TLS.KeyExchange; ke != nil && ke.DHPrimeBits > 0 {
			detail += fmt.Sprintf(", %d-bit prime", ke.DHPrimeBits)
		}
		if !c.rateHit {
			return pass(detail + "; rate " + c.p.Rate.text + " not hit")
		}
		return st.close(detail + "; rate " + c.p.Rate.text + " hit")
	}
	return proxy.Verdict{}
}

// rate is natural (1/256), always, or a probability 0..1; empty keeps the
// value it had (the scenario's default).
type rate struct {
	p    float64
	text string
}

func (r *rate) UnmarshalText(b []byte) error {
	text := strings.ToLower(strings.TrimSpace(string(b)))
	if text == "" {
		return nil
	}
	switch text {
	case "natural":
		r.p = naturalLeadingZeroRate
	case "always":
		r.p = 1
	default:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || f < 0 || f > 1 {
			return fmt.Errorf("%q is not natural, always or a probability 0..1", string(b))
		}
		r.p = f
	}
	r.text = text
	return nil
}
