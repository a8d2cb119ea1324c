package faults

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// naturalLeadingZeroRate is the chance that a DH shared secret starts with a
// zero byte: 1 in 256 (KB4557473).
const naturalLeadingZeroRate = 1.0 / 256

// dheScenario is scenario 3 or 5: the server closes after the client's
// Finished flight of a DHE handshake, at rate (default defRate). labLead
// is what the lab adds to its note for this scenario.
func dheScenario(name, summary, fix, defRate, labLead string) *scenario {
	return &scenario{
		Name:    name,
		Summary: summary,
		Where:   "after the client's ClientKeyExchange/ChangeCipherSpec/Finished flight (tls.client_finished)",
		Phase:   proxy.PhaseTLSClientFinished,
		Fix:     fix,
		Options: []Option{
			{Name: "rate", Flag: "dhe-rate", Type: OptString, Default: defRate,
				Help: "natural (1/256, the leading-zero odds), always, or a probability 0..1"},
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
		Lab: LabSetup{
			// rate=always: every DHE handshake fails.
			Options: map[string]string{"rate": "always"}, Close: "rst",
			Server: LabServer{TLSMax: tls.VersionTLS12, DHE: true, Desc: "emulator (Go TLS: no DHE); rule rate=always"},
			Before: LabClient{Strict: true, TLSMax: tls.VersionTLS12},
			After:  LabClient{Strict: true, TLSMax: tls.VersionTLS12},
			Expect: LabExpect{By: proxy.SideProxy, Kind: proxy.CloseRST, Errors: resetErrors},
			Note:   labLead,
			Cannot: map[string]string{
				LabGo:   "cannot meet it: Go's crypto/tls has no DHE key agreement",
				LabTSQL: "cannot meet it here: FreeTDS 1.3 has no TDS 8.0 strict mode, and the upstream (openssl s_server) is not a TDS server",
			},
		},
	}
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
