package probe

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// Schannel's way of refusing a version is to close without an alert. The
// protocol-mismatch scenario of tdsproxy does exactly that in front of an
// emulator that would accept TLS 1.0: the probe must report the silence
// (RST or FIN), not an alert, and call it the client's 10054.
func TestProbeSilentClose(t *testing.T) {
	for _, tc := range []struct{ close, answer, why string }{
		{"rst", "reset without an alert (RST", "closed without an alert (RST"},
		{"fin", "closed without an alert (FIN)", "closed without an alert (FIN"},
	} {
		t.Run(tc.close, func(t *testing.T) {
			emu := startEmu(t, emulator.Config{TLSMin: tls.VersionTLS10})
			e := faults.NewEngine(nil)
			if err := e.SetRules("p", []faults.RuleSpec{{Name: "old-tls", Scenario: faults.ScenarioProtocolMismatch,
				Options: faults.OptionValues{"server_tls": "1.2"}, Close: tc.close}}); err != nil {
				t.Fatal(err)
			}
			p, err := proxy.New(proxy.Config{Name: "p", Listen: "127.0.0.1:0", Upstream: emu.Addr()}, proxy.Options{Decider: e.Decider("p")})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })

			r := probeTarget(t, p.Addr().String(), nil)
			for _, v := range []string{"TLS 1.0", "TLS 1.1"} {
				if a := r.VersionAnswers[v]; !strings.Contains(a, tc.answer) {
					t.Errorf("%s answer %q, want %q", v, a, tc.answer)
				}
			}
			if len(r.Versions) != 1 || r.Versions[0] != "TLS 1.2" {
				t.Errorf("versions %v, want TLS 1.2", r.Versions)
			}
			v := verdictOf(t, r, faults.ScenarioProtocolMismatch)
			if v.Status != StatusRisk || !strings.Contains(v.Why, tc.why) || !strings.Contains(v.Why, "10054") {
				t.Errorf("protocol-mismatch %+v: want risk naming the silent close and 10054", v)
			}
			if pr := profileOf(t, r, "netfx-tls10"); pr.Connects || pr.Scenario != faults.ScenarioProtocolMismatch {
				t.Errorf("netfx-tls10 %+v", pr)
			}
		})
	}
}
