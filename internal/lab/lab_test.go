package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/interop"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// The whole lab, in process: every row fails before the fix exactly as
// docs/protocol.md documents for go-mssqldb (or openssl for DHE), at the
// documented phase and in the documented close style, and connects after
// the fix. Bounded well under a minute: rows run concurrently and the
// longest (delayed-accept) takes about accept delay + 1 s.
func TestLab(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var table bytes.Buffer
	if err := rep.Table(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("lab report:\n%s", table.String())
	if got, want := rowNames(rep), faults.ScenarioNames(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("rows %v, want the documented order %v", got, want)
	}
	byName := map[string]Row{}
	for _, row := range rep.Rows {
		byName[row.Scenario] = row
	}

	// Scenarios 1, 2 and 4: the rule plays a server that closes instead of
	// answering the ClientHello; go-mssqldb reports the RST in its TLS
	// handshake (7.x: inside PRELOGIN).
	for _, name := range []string{faults.ScenarioProtocolMismatch, faults.ScenarioCipherMismatch, faults.ScenarioWeakCertHash} {
		t.Run(name, func(t *testing.T) {
			row := byName[name]
			checkOK(t, row)
			b := row.Before
			wantErr(t, b.Error, "TLS Handshake failed: cannot read handshake packet: read tcp ", ": read: connection reset by peer")
			wantInjected(t, b.Record, name, proxy.PhaseTLSClientHello, "close:rst")
			wantClose(t, b.Record, proxy.SideProxy, proxy.CloseRST, proxy.PhaseTLSClientHello)
			if b.Record.TLS == nil || b.Record.TLS.ServerHello != nil {
				t.Errorf("before: the server must not have answered: tls = %+v", b.Record.TLS)
			}
			wantConnected(t, row.After)
			if row.FaultAt != proxy.PhaseTLSClientHello || row.Close != "rst by proxy" {
				t.Errorf("row columns: fault at %q, close %q", row.FaultAt, row.Close)
			}
		})
	}
	t.Run("protocol-mismatch offers", func(t *testing.T) {
		ch := byName[faults.ScenarioProtocolMismatch].Before.Record.TLS.ClientHello
		if ch == nil || ch.HighestVersion != "TLS 1.1" {
			t.Errorf("before: the client's highest version = %+v, want TLS 1.1", ch)
		}
		if v := byName[faults.ScenarioProtocolMismatch].After.Record.TLS.Version; v != "TLS 1.2" {
			t.Errorf("after: negotiated %q, want TLS 1.2", v)
		}
	})
	t.Run("cipher-mismatch suite", func(t *testing.T) {
		if cs := byName[faults.ScenarioCipherMismatch].After.Record.TLS.CipherSuite; cs != "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" {
			t.Errorf("after: suite %q, want the server's only suite", cs)
		}
	})
	t.Run("weak-cert-hash certificate", func(t *testing.T) {
		rec := byName[faults.ScenarioWeakCertHash].After.Record
		if len(rec.TLS.Certificates) == 0 || rec.TLS.Certificates[0].SignatureAlgorithm != "SHA256-RSA" || rec.TLS.Certificates[0].WeakHashRisk {
			t.Errorf("after: certificates %+v, want a SHA256-RSA leaf with no weak-hash risk", rec.TLS.Certificates)
		}
		if len(rec.Faults) != 0 {
			t.Errorf("after: no rule is armed, got fault events %+v", rec.Faults)
		}
	})

	// Scenarios 3 and 5, the real form: the DHE engine's client meets the
	// emulator padding Z in lz2049 and is reset after its Finished; after
	// the fix go-mssqldb runs SELECT 1 (dhe_test.go checks them in detail).
	for _, name := range []string{faults.ScenarioDHEEnabled, faults.ScenarioDHELeadingZero} {
		t.Run(name, func(t *testing.T) { checkDHERow(t, byName[name], ClientGo) })
	}

	// Scenario 6: the accept is held longer than the client waits.
	t.Run(faults.ScenarioDelayedAccept, func(t *testing.T) {
		row := byName[faults.ScenarioDelayedAccept]
		checkOK(t, row)
		b := row.Before
		wantErr(t, b.Error, "i/o timeout")
		wantInjected(t, b.Record, row.Rule.Name, proxy.PhaseAccept, "delay")
		// The client gave up (FIN) while the proxy held the accept. The
		// proxy reads that FIN only after the delay, behind the PRELOGIN the
		// client had sent, so the recorded phase is accept or prelogin.*,
		// depending on which read comes first.
		if c := b.Record.Close; c == nil || c.By != proxy.SideClient || c.Kind != proxy.CloseFIN ||
			(c.Phase != proxy.PhaseAccept && c.Phase != proxy.PhasePreloginRequest && c.Phase != proxy.PhasePreloginResponse) {
			t.Errorf("before: close %+v, want the client's FIN at accept or prelogin", c)
		}
		wantConnected(t, row.After)
	})

	t.Run("report", func(t *testing.T) {
		if !rep.OK() || len(rep.Failed()) != 0 {
			t.Errorf("OK = %v, failed %v", rep.OK(), rep.Failed())
		}
		out := table.String()
		for _, want := range []string{"SCENARIO", "FAULT AT", "CLOSE", "AFTER THE FIX", "rst by proxy", "connection reset by peer", "i/o timeout"} {
			if !strings.Contains(out, want) {
				t.Errorf("table lacks %q", want)
			}
		}
		if strings.Contains(out, "127.0.0.1:") && strings.Contains(out, "->127.0.0.1") {
			t.Errorf("table shows raw address pairs; they should be elided")
		}
		var js bytes.Buffer
		if err := rep.JSON(&js); err != nil {
			t.Fatal(err)
		}
		// The lab's login password must never reach a report or a record.
		if strings.Contains(js.String(), labPassword) || strings.Contains(out, labPassword) {
			t.Errorf("the password reached the report")
		}
		var back Report
		if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Rows) != len(rep.Rows) {
			t.Errorf("JSON does not round-trip: %v", err)
		}
	})
}

func TestSelectScenarios(t *testing.T) {
	cases := []struct {
		in      []string
		want    string
		wantErr bool
	}{
		{nil, strings.Join(faults.ScenarioNames(), ","), false},
		{[]string{"delayed-accept", "Protocol-Mismatch", "delayed-accept"}, "protocol-mismatch,delayed-accept", false},
		{[]string{"nope"}, "", true},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.in, "+"), func(t *testing.T) {
			got, err := selectScenarios(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrUnknownScenario) {
					t.Fatalf("err = %v, want ErrUnknownScenario", err)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != tc.want {
				t.Fatalf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestShortError(t *testing.T) {
	cases := []struct{ in, want string }{
		{"TLS Handshake failed: cannot read handshake packet: read tcp 127.0.0.1:51234->127.0.0.1:11433: read: connection reset by peer",
			"TLS Handshake failed: cannot read handshake packet: read tcp ...: read: connection reset by peer"},
		{"read tcp [::1]:5->[::1]:6: i/o timeout", "read tcp ...: i/o timeout"},
		{"EOF", "EOF"},
		{strings.Repeat("x", 200), strings.Repeat("x", 117) + "..."},
		{"\"encrypt\" property is set to \"true\" and \"trustServerCertificate\" property is set to \"true\" but the driver could not establish " +
			"a secure connection to SQL Server by using Secure Sockets Layer (SSL) encryption: Error: Connection reset.",
			"...secure connection to SQL Server ... (SSL) encryption: Error: Connection reset."},
	}
	for _, tc := range cases {
		if got := shortError(tc.in); got != tc.want {
			t.Errorf("shortError(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Hold keeps a scenario armed for real clients: the failing client is
// reset at its ClientHello, the fixed one logs in, the sink sees both, and
// the help names every client library.
func TestHold(t *testing.T) {
	var recs []*proxy.Record
	recc := make(chan *proxy.Record, 4)
	h, err := Hold(HoldOptions{Scenario: "protocol-mismatch", Listen: "127.0.0.1:0", Sink: func(r *proxy.Record) { recc <- r }})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var help bytes.Buffer
	if err := h.ConnectionHelp(&help); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{h.Proxy, "sqlserver://sa:", "tls.VersionTLS11", `"maxVersion":"TLSv1.1"`, "tsql -S tdsproxy-lab-before",
		"disabled-version = tls1.2", "BEFORE THE FIX", "AFTER THE FIX",
		"jdbc:sqlserver://127.0.0.1:", "-Djdk.tls.client.protocols=TLSv1,TLSv1.1", "-Djava.security.properties=",
		"Driver={ODBC Driver 18 for SQL Server};Server=tcp:127.0.0.1,", "OPENSSL_CONF=", "MaxProtocol = TLSv1.1"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, help.String())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := goClient{TLSMin: 0x0301, TLSMax: 0x0302}.run(ctx, h.env)
	after := goClient{}.run(ctx, h.env)
	if before.Connected || !strings.Contains(before.Error, "connection reset by peer") {
		t.Errorf("before: %+v", before)
	}
	wantConnected(t, after)
	for range 2 {
		select {
		case r := <-recc:
			recs = append(recs, r)
		case <-ctx.Done():
			t.Fatal("the sink did not get both records")
		}
	}
	if len(recs) != 2 {
		t.Errorf("sink got %d records", len(recs))
	}
}

func TestHoldErrors(t *testing.T) {
	if _, err := Hold(HoldOptions{}); err == nil {
		t.Error("Hold with no scenario: want an error")
	}
	if _, err := Hold(HoldOptions{Scenario: "nope"}); !errors.Is(err, ErrUnknownScenario) {
		t.Errorf("Hold(nope) = %v, want ErrUnknownScenario", err)
	}
}

func rowNames(rep *Report) []string {
	var out []string
	for _, r := range rep.Rows {
		out = append(out, r.Scenario)
	}
	return out
}

func checkOK(t *testing.T, row Row) {
	t.Helper()
	if row.Status != StatusOK {
		t.Fatalf("status %s: %s", row.Status, row.Problem)
	}
	if row.Before.Record == nil || row.After.Record == nil {
		t.Fatalf("missing records: before %v, after %v", row.Before.Record != nil, row.After.Record != nil)
	}
}

func wantErr(t *testing.T, got string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(got, p) {
			t.Errorf("client error %q lacks %q", got, p)
		}
	}
}

func wantInjected(t *testing.T, rec *proxy.Record, rule string, phase proxy.Phase, action string) {
	t.Helper()
	ev := firstInjection(rec, rule)
	if ev == nil || ev.Phase != phase || ev.Action != action {
		t.Errorf("injection %+v, want %s at %s (faults %+v)", ev, action, phase, rec.Faults)
	}
}

func wantClose(t *testing.T, rec *proxy.Record, by proxy.Side, kind proxy.CloseKind, phase proxy.Phase) {
	t.Helper()
	if c := rec.Close; c == nil || c.By != by || c.Kind != kind || c.Phase != phase {
		t.Errorf("close %+v, want %s by %s in %s", rec.Close, kind, by, phase)
	}
}

func wantConnected(t *testing.T, a Attempt) {
	t.Helper()
	if !a.Connected || a.Record == nil {
		t.Fatalf("after the fix: not connected: %s", a.Error)
	}
	if strings.HasPrefix(a.Client, "go-mssqldb") && a.Result != "SELECT 1 = 1" {
		t.Errorf("after the fix: result %q", a.Result)
	}
}

// The lab with every client (--client all): Microsoft's JDBC driver and
// ODBC Driver 18, tedious and FreeTDS beside go-mssqldb, each with its own
// error text per scenario (docs/clients.md). A client that is not
// installed gives skipped rows, which fail the test under
// TDSPROXY_INTEROP=require; FreeTDS's DHE rows are always skipped (no
// strict mode in FreeTDS 1.3).
func TestLabClients(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Clients: []string{ClientAll}, Handshakes: 5})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var table bytes.Buffer
	if err := rep.Table(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("lab report:\n%s", table.String())
	if want := len(faults.ScenarioNames()) * len(ClientNames()); len(rep.Rows) != want {
		t.Fatalf("%d rows, want %d", len(rep.Rows), want)
	}
	require := os.Getenv(interop.EnvRequire) == "require"
	for _, row := range rep.Rows {
		switch {
		case row.Status == StatusOK:
		case row.Status == StatusSkipped && !require && row.Client != goClientName && !strings.HasPrefix(row.Client, engineClientName):
			t.Logf("%s/%s skipped: %s", row.Scenario, row.Client, row.Before.Skipped)
		default:
			t.Errorf("%s/%s: status %s: %s %s", row.Scenario, row.Client, row.Status, row.Problem, row.Before.Skipped)
		}
	}
	// The JDBC and ODBC rows carry each driver's own words.
	for _, row := range rep.Rows {
		if row.Status != StatusOK {
			continue
		}
		switch {
		case strings.HasPrefix(row.Scenario, "dhe-"):
			checkDHERow(t, row, row.Client)
		case row.Client == ClientJDBC && row.Scenario == faults.ScenarioDelayedAccept:
			wantErr(t, row.Before.Error, "Read timed out")
		case row.Client == ClientJDBC:
			wantErr(t, row.Before.Error, "could not establish a secure connection to SQL Server", "Error: Connection reset.")
		case row.Client == ClientODBC && row.Scenario == faults.ScenarioDelayedAccept:
			wantErr(t, row.Before.Error, "[Microsoft]TCP Provider: Timeout error [258].")
		case row.Client == ClientODBC:
			wantErr(t, row.Before.Error, "Driver Error: Client unable to establish connection; DDBC Error: [Microsoft]TCP Provider: Error code 0x68")
		}
	}
}

func TestSelectClients(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, "go"},
		{[]string{"all"}, "go,jdbc,odbc,tedious,tsql"},
		{[]string{"odbc", "JDBC", " go-mssqldb", "jdbc"}, "go,jdbc,odbc"},
	} {
		got, err := selectClients(tc.in)
		if err != nil || strings.Join(got, ",") != tc.want {
			t.Errorf("selectClients(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := selectClients([]string{"sqlcmd"}); !errors.Is(err, ErrUnknownClient) {
		t.Errorf("selectClients(sqlcmd): %v, want ErrUnknownClient", err)
	}
}

// The lab's client names are the faults lab table's keys, so every
// scenario's expected errors reach the rows.
func TestClientNamesMatchFaultsTable(t *testing.T) {
	for lab, tab := range map[string]string{ClientGo: faults.LabGo, ClientJDBC: faults.LabJDBC, ClientODBC: faults.LabODBC,
		ClientTedious: faults.LabTedious, ClientTSQL: faults.LabTSQL} {
		if lab != tab {
			t.Errorf("lab client %q is %q in the faults table", lab, tab)
		}
	}
}

// Every scenario of the table can be held, with its fix and its note in
// the help: hold reads the table, never a scenario's name.
func TestHoldEveryScenario(t *testing.T) {
	for _, s := range faults.Scenarios() {
		t.Run(s.Name, func(t *testing.T) {
			h, err := Hold(HoldOptions{Scenario: s.Name, Listen: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			var help bytes.Buffer
			if err := h.ConnectionHelp(&help); err != nil {
				t.Fatal(err)
			}
			want := []string{s.Fix, h.Proxy}
			want = append(want, s.Lab.HoldNote, "BEFORE THE FIX")
			for _, w := range want {
				if !strings.Contains(help.String(), w) {
					t.Errorf("help lacks %q:\n%s", w, help.String())
				}
			}
		})
	}
}
