package interop

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

// tedious with encrypt=true (TLS for the whole session) through a bridge
// (docs/bridge.md), `tds_error 40613 at login times 2`: tedious retries
// the transient error by itself (maxRetriesOnTransientErrors 3) and
// connects on its third attempt; the records show two logins answered
// with 40613 by the rule, then one that passed.
func TestTediousRetriesTransientLoginThroughBridge(t *testing.T) {
	td, err := FindTedious()
	Require(t, ClientTedious, err)
	emu, _ := startEmulator(t, tds.EncryptOff)
	dir := t.TempDir()
	upCA := filepath.Join(dir, "upstream.pem")
	if err := os.WriteFile(upCA, emu.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	e := faults.NewEngine(nil)
	if err := e.SetRules("bridge", []faults.RuleSpec{{Name: "transient", Action: "tds_error",
		Options: faults.OptionValues{"at": "login", "number": "40613", "times": "2"}}}); err != nil {
		t.Fatal(err)
	}
	sink, recs := proxykit.Records(16)
	p := proxykit.Start(t, proxy.Config{Name: "bridge", Upstream: emu.Addr(),
		Bridge: &proxy.BridgeConfig{CAOut: filepath.Join(dir, "ca.pem"), UpstreamCA: upCA}},
		proxy.Options{Decider: e.Decider("bridge"), Sink: sink})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := td.Run(ctx, TediousConfig{Port: proxykit.Port(p), User: emuUser, Password: emuPassword, Encrypt: true, Timeout: time.Minute,
		Options: map[string]any{"maxRetriesOnTransientErrors": 3}})
	if err != nil {
		t.Fatalf("tedious: %v", err)
	}
	if !res.OK {
		t.Fatalf("tedious: %q (number %d); want it to retry past two 40613s", res.Error, res.Number)
	}
	for i := 1; i <= 3; i++ {
		r := nextRecord(t, recs)
		n, rule, injected := faults.LoginErrorInjected(r)
		if r.Bridge == nil || r.Bridge.Scope != "session" || injected != (i < 3) || injected && (n != 40613 || rule != "transient") {
			t.Errorf("attempt %d: bridge %+v, faults %+v", i, r.Bridge, r.Faults)
		}
	}
}
