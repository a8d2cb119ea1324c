package lab

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/interop"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// checkDHERow: a DHE row in the real form. Before the fix the client
// negotiated TLS_DHE_RSA in lz2049 with the padding emulator and the
// server reset it after its Finished (JDBC: refused the group); after the
// fix it connected (SELECT 1). A leading-zero row also carries its counts:
// every natural failure is a zero-led shared secret, the grinding client
// fails 20 of 20 against pad and 0 of 20 against strip, and nothing fails
// after the fix.
func checkDHERow(t *testing.T, row Row, client string) {
	t.Helper()
	if row.Status != StatusOK {
		t.Fatalf("%s/%s: status %s: %s", row.Scenario, client, row.Status, row.Problem)
	}
	if row.Rule.Name != "" {
		t.Errorf("%s/%s: rule %+v armed; the real form arms none", row.Scenario, client, row.Rule)
	}
	b := row.Before
	tl := b.Record.TLS
	if b.Connected || tl == nil || !strings.HasPrefix(tl.CipherSuite, "TLS_DHE_RSA_") {
		t.Errorf("%s/%s before: connected %v, tls %+v: want a failed DHE handshake", row.Scenario, client, b.Connected, tl)
	}
	if client != ClientJDBC {
		wantClose(t, b.Record, proxy.SideServer, proxy.CloseRST, proxy.PhaseTLSClientFinished)
		if ke := tl.KeyExchange; ke == nil || ke.DHGroup != "lz2049" || ke.DHPrimeBits != 2049 {
			t.Errorf("%s/%s before: key exchange %+v, want lz2049 (2049 bits)", row.Scenario, client, ke)
		}
		if row.FaultAt != proxy.PhaseTLSClientFinished || row.Close != "rst by server" {
			t.Errorf("%s/%s columns: fault at %q, close %q", row.Scenario, client, row.FaultAt, row.Close)
		}
	}
	wantConnected(t, row.After)
	if row.Scenario == faults.ScenarioDHEEnabled {
		if cs := row.After.Record.TLS.CipherSuite; !strings.HasPrefix(cs, "TLS_ECDHE_") {
			t.Errorf("%s/%s after: suite %q, want ECDHE (DHE off)", row.Scenario, client, cs)
		}
		return
	}
	c := row.DHE
	if c == nil {
		t.Fatalf("%s/%s: no counts", row.Scenario, client)
	}
	if n := c.Natural; n.Handshakes == 0 || n.Failures != int(n.LeadingZero) || n.ServerFailures != n.LeadingZero || n.Low > n.Rate || n.High < n.Rate {
		t.Errorf("%s/%s natural: %+v", row.Scenario, client, n)
	}
	if c.ForcedPad.Failures != 20 || c.ForcedPad.Handshakes != 20 || c.ForcedStrip.Failures != 0 || c.ForcedStrip.Handshakes != 20 {
		t.Errorf("%s/%s forced: pad %d/%d, strip %d/%d", row.Scenario, client, c.ForcedPad.Failures, c.ForcedPad.Handshakes,
			c.ForcedStrip.Failures, c.ForcedStrip.Handshakes)
	}
	if c.Fixed.Failures != 0 || c.Fixed.Handshakes != c.Natural.Handshakes {
		t.Errorf("%s/%s after the fix: %d of %d failed", row.Scenario, client, c.Fixed.Failures, c.Fixed.Handshakes)
	}
	for _, want := range []string{"99% interval", "expected 1/256", "20 of 20 failed against the padding server", "0 of 20 against the stripping one"} {
		if !strings.Contains(row.Note, want) {
			t.Errorf("%s/%s: note lacks %q: %s", row.Scenario, client, want, row.Note)
		}
	}
}

// TestLabDHE: the lab's default DHE rows: the DHE engine's client before
// the fix (its own error: the reset read where the server's
// ChangeCipherSpec should be), go-mssqldb's SELECT 1 after; the
// leading-zero counts with the engine's client, in seconds.
func TestLabDHE(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Scenarios: []string{faults.ScenarioDHEEnabled, faults.ScenarioDHELeadingZero}, Handshakes: 100})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := rep.Table(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("lab report:\n%s", table.String())
	for _, row := range rep.Rows {
		checkDHERow(t, row, ClientGo)
		if !strings.HasPrefix(row.Client, engineClientName) || !strings.HasPrefix(row.Before.Client, engineClientName) ||
			!strings.HasPrefix(row.After.Client, goClientName) {
			t.Errorf("%s: clients %q, %q / %q", row.Scenario, row.Client, row.Before.Client, row.After.Client)
		}
		wantErr(t, row.Before.Error, "dhe: reading server ChangeCipherSpec", "connection reset by peer")
	}
	if c := rep.Rows[1].DHE; c == nil || c.Natural.Handshakes != 100 || c.Fixed.Handshakes != 100 {
		t.Errorf("counts %+v, want 100 handshakes", c)
	}
	for _, want := range []string{"rst by server", "tls.client_finished", "--dhe-z pad", "--dhe off"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

// TestLabDHERealClients: tedious (OpenSSL) and FreeTDS tsql (GnuTLS) in the
// DHE rows, TDS 7.x: reset after their Finished by the padding emulator,
// each with its own words; the natural count (a few handshakes here, the
// lab shows more); SELECT 1 after the fix. A client not installed skips,
// and fails under TDSPROXY_INTEROP=require.
func TestLabDHERealClients(t *testing.T) {
	words := map[string][]string{
		ClientTedious: {"Failed to connect to ", "read ECONNRESET"},
		ClientTSQL:    {"Adaptive Server connection failed"},
	}
	for _, client := range []string{ClientTedious, ClientTSQL} {
		t.Run(client, func(t *testing.T) {
			if why := clientAvailable(client); why != "" {
				if os.Getenv(interop.EnvRequire) == "require" {
					t.Fatalf("%s: %s", client, why)
				}
				t.Skip(why)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			rep, err := Run(ctx, Options{Scenarios: []string{faults.ScenarioDHEEnabled, faults.ScenarioDHELeadingZero},
				Clients: []string{client}, Handshakes: 8})
			if err != nil {
				t.Fatal(err)
			}
			var table bytes.Buffer
			_ = rep.Table(&table)
			t.Logf("lab report:\n%s", table.String())
			for _, row := range rep.Rows {
				checkDHERow(t, row, client)
				wantErr(t, row.Before.Error, words[client]...)
				if !strings.HasPrefix(row.After.Result, "SELECT 1 = 1") {
					t.Errorf("%s after: %q", row.Scenario, row.After.Result)
				}
			}
		})
	}
}
