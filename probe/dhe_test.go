package probe

import (
	"slices"
	"strings"
	"testing"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// The emulator with DHE preferred (its DHE engine), stripping and padding:
// leading_zero says which; the DHE suites come first in the server's order.
func TestProbeEmulatorDHE(t *testing.T) {
	for _, tc := range []struct {
		z      dhe.ZEncoding
		want   string
		status string
	}{
		{dhe.ZStrip, LeadingZeroStrip, StatusOK},
		{dhe.ZPad, LeadingZeroPad, StatusRisk},
	} {
		t.Run(tc.z.String(), func(t *testing.T) {
			r := probeEmu(t, emulator.Config{DHE: emulator.DHEPrefer, DHEGroup: "modp1024", DHEZ: tc.z, DHEFail: dhe.FailFIN}, nil)
			if r.DHE.LeadingZero != tc.want {
				t.Errorf("leading_zero %q (%s), want %q", r.DHE.LeadingZero, r.DHE.LeadingZeroReason, tc.want)
			}
			if !slices.Equal(r.DHE.GroupsBits, []int{1024}) || len(r.DHE.Suites) != len(dhe.CipherSuites()) {
				t.Errorf("dhe %+v: want the 1024-bit group and the engine's %d suites", r.DHE, len(dhe.CipherSuites()))
			}
			if suites := r.CipherSuites["TLS 1.2"]; len(suites) == 0 || r.KeyExchange[suites[0]] != "DHE" {
				t.Errorf("TLS 1.2 suites %v: want DHE first (preferred)", suites)
			}
			if v := verdictOf(t, r, faults.ScenarioDHELeadingZero); v.Status != tc.status {
				t.Errorf("dhe-leading-zero %+v, want %s", v, tc.status)
			}
			if v := verdictOf(t, r, faults.ScenarioDHEEnabled); v.Status != StatusRisk {
				t.Errorf("dhe-enabled %+v, want risk", v)
			}
			if p := profileOf(t, r, "win2012r2"); !p.Connects || p.Scenario != faults.ScenarioDHELeadingZero {
				t.Errorf("win2012r2 %+v, want DHE and the leading-zero exposure", p)
			}
		})
	}
}

// The short-public-value variant against the emulator with DHE preferred:
// its engine accepts a dh_Yc shorter than p (short_public accepted, the
// verdict stays ok for a stripping server); with DHERejectShortY it
// mishandles one (short_public rejected, dhe-leading-zero risk).
func TestProbeEmulatorShortPublic(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reject bool
		want   string
		status string
	}{
		{"accepts", false, ShortPublicAccepted, StatusOK},
		{"rejects", true, ShortPublicRejected, StatusRisk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := probeEmu(t, emulator.Config{DHE: emulator.DHEPrefer, DHEGroup: "modp1024", DHEFail: dhe.FailFIN, DHERejectShortY: tc.reject}, nil)
			if r.DHE.ShortPublic != tc.want {
				t.Errorf("short_public %q (%s), want %q", r.DHE.ShortPublic, r.DHE.ShortPublicReason, tc.want)
			}
			if r.DHE.LeadingZero != LeadingZeroStrip {
				t.Errorf("leading_zero %q (%s), want strip", r.DHE.LeadingZero, r.DHE.LeadingZeroReason)
			}
			v := verdictOf(t, r, faults.ScenarioDHELeadingZero)
			if v.Status != tc.status || !strings.Contains(v.Why, "shorter than p") {
				t.Errorf("dhe-leading-zero %+v, want %s and the short public value", v, tc.status)
			}
			var text strings.Builder
			if err := r.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if line := "short public       " + tc.want; !strings.Contains(text.String(), line) {
				t.Errorf("report has no %q line:\n%s", line, text.String())
			}
		})
	}
}
