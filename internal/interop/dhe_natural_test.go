package interop

import (
	"context"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// EnvDHENatural, set to a number of runs, enables TestDHENaturalRealClients.
const EnvDHENatural = "TDSPROXY_DHE_NATURAL"

// TestDHENaturalRealClients measures, on demand only, the leading-zero
// failure with real clients at its natural rate: each client runs N times
// against an emulator that pads Z (unpatched Windows) in each failure
// style, and the test logs the failures, the rate and each distinct error
// text the client printed. It asserts nothing about the rate (that would
// flake); it checks only that every client failure is a server-side TLS
// failure. Run it with e.g. TDSPROXY_DHE_NATURAL=1000; the lab shows the
// same numbers.
func TestDHENaturalRealClients(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(EnvDHENatural))
	if n <= 0 {
		t.Skipf("set %s=N to run N handshakes per client and failure style", EnvDHENatural)
	}
	group := os.Getenv(EnvDHENatural + "_GROUP")
	if group == "" {
		group = "rfc5114-2048-256"
	}
	for _, cm := range []clientMode{tsqlMode("require"), tediousMode(true, false), jdbcMode("true"), odbcMode("yes")} {
		for _, fail := range []dhe.FailMode{dhe.FailFIN, dhe.FailRST, dhe.FailAlert} {
			t.Run(cm.client+"/"+fail.String(), func(t *testing.T) {
				emu, port, _ := startDHEEmulator(t, emulator.Config{Encrypt: tds.EncryptOff, DHE: emulator.DHEPrefer, DHEGroup: group, DHEZ: dhe.ZPad, DHEFail: fail})
				errs := map[string]int{}
				failed := 0
				start := time.Now()
				for range n {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					res, err := cm.run(ctx, t, port, emuPassword, "SELECT 1", emu.CertificatePEM())
					cancel()
					if err != nil {
						t.Fatal(err)
					}
					if !res.OK {
						failed++
						errs[res.Error+" | cause: "+res.Cause+" | code: "+res.Code]++
					}
				}
				st := emu.Stats()
				t.Logf("%s, %s, %s: %d client failures in %d runs; the server failed %d of %d handshakes (1/%.0f), %d had Z[0] = 0, in %v",
					cm.client, group, fail, failed, n, st.TLSFailures, st.TLSFailures+st.TLSHandshakes,
					float64(st.TLSFailures+st.TLSHandshakes)/max(float64(st.TLSFailures), 1), st.DHELeadingZero, time.Since(start).Round(time.Second))
				texts := make([]string, 0, len(errs))
				for e := range errs {
					texts = append(texts, e)
				}
				sort.Strings(texts)
				for _, e := range texts {
					t.Logf("  %d x %q", errs[e], e)
				}
				if uint64(failed) > st.TLSFailures {
					t.Errorf("%d client failures but only %d server TLS failures", failed, st.TLSFailures)
				}
			})
		}
	}
}
