package interop

// Real clients through logging proxies, then `tdsproxy report`'s engine
// (package report) over the log lines they produced, and diagnosis
// (package diagnose) of injected and natural failures: issue 15's tests.

import (
	"context"
	"crypto/tls"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tdsproxy/tdsproxy/diagnose"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/report"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// jsonLogger writes tdsproxy's JSON log lines (the encoder `tdsproxy run`
// uses: zap production fields, ISO 8601 times) into buf.
func jsonLogger(buf *testkit.LockedBuffer) *zap.Logger {
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(ec), zapcore.AddSync(buf), zapcore.InfoLevel))
}

// loggedProxy starts an emulator with cfg and a proxy named name in front
// of it, logging into log, with rules; it returns the emulator, the
// proxy's port and its finished records.
func loggedProxy(t *testing.T, name string, cfg emulator.Config, log *zap.Logger, rules ...faults.RuleSpec) (*emulator.Server, int, <-chan *proxy.Record) {
	t.Helper()
	cfg.Listen, cfg.User, cfg.Password = "127.0.0.1:0", emuUser, emuPassword
	emu := testkit.StartEmulator(t, cfg)
	engine := faults.NewEngine(nil)
	if err := engine.SetRules(name, rules); err != nil {
		t.Fatalf("SetRules: %v", err)
	}
	recs := make(chan *proxy.Record, 16)
	p := proxykit.Start(t, proxy.Config{Name: name, Upstream: emu.Addr(), DialTimeout: 5 * time.Second},
		proxy.Options{Logger: log, Decider: engine.Decider(name), Sink: func(r *proxy.Record) {
			select {
			case recs <- r:
			default:
			}
		}})
	return emu, proxykit.Port(p), recs
}

// onlyTLS10 makes go-mssqldb an old client: TLS 1.0 and nothing else.
func onlyTLS10(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS10 }

// goLogin runs go-mssqldb's SELECT 1 through port (login-only encryption).
func goLogin(t *testing.T, port int, password string, edit func(*tls.Config)) error {
	t.Helper()
	dsn := testkit.GoMSSQL{User: emuUser, Password: password, Timeout: 10 * time.Second}.DSN("127.0.0.1:" + strconv.Itoa(port))
	_, err := testkit.SelectOne(t, dsn, testkit.Query{TLS: edit, Timeout: 20 * time.Second})
	return err
}

// waitRecord returns the next finished record of a proxy.
func waitRecord(t *testing.T, recs <-chan *proxy.Record) *proxy.Record {
	t.Helper()
	return proxykit.Next(t, recs, recordWait)
}

// TestReportFromRealClients: go-mssqldb, tedious and FreeTDS tsql through
// five logging proxies, then the report over the log they wrote. Each
// client the issue names must be named correctly:
//
//	old TLS      go-mssqldb limited to TLS 1.0, against a server allowing
//	             it (succeeds) and one allowing TLS 1.2 only (natural
//	             protocol-mismatch); readiness: "disable TLS 1.0 and 1.1"
//	             breaks it
//	DHE          tsql (GnuTLS offers DHE) against an emulator preferring
//	             DHE; readiness: "remove TLS_DHE_* suites" changes it
//	refused      tsql with encryption off (PRELOGIN NOT_SUP) against a
//	             server forcing encryption: server-refused-encryption
//	wrong pw     go-mssqldb: login-failed 18456
//	delayed      tedious through a rule holding the login response 2.5 s:
//	             slow-login at login.response, injected
//	MD5 cert     go-mssqldb against an MD5-signed certificate (Go accepts
//	             it with TrustServerCertificate): weak-cert-hash, natural
func TestReportFromRealClients(t *testing.T) {
	var buf testkit.LockedBuffer
	log := jsonLogger(&buf)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Old TLS that works, and a wrong password.
	_, oldPort, oldRecs := loggedProxy(t, "old-ok", emulator.Config{Encrypt: tds.EncryptOff, TLSMin: tls.VersionTLS10}, log)
	if err := goLogin(t, oldPort, emuPassword, onlyTLS10); err != nil {
		t.Fatalf("TLS 1.0 client against a TLS 1.0 server: %v", err)
	}
	if r := waitRecord(t, oldRecs); r.TLS == nil || r.TLS.Version != "TLS 1.0" {
		t.Fatalf("old client's record: %s", recordJSON(r))
	}
	if err := goLogin(t, oldPort, "wrong-"+emuPassword, nil); err == nil || !strings.Contains(err.Error(), "Login failed") {
		t.Fatalf("wrong password: %v", err)
	}
	waitRecord(t, oldRecs)

	// The same old client against a TLS 1.2-only server: a natural
	// protocol mismatch.
	_, modPort, modRecs := loggedProxy(t, "modern", emulator.Config{Encrypt: tds.EncryptOff}, log)
	if err := goLogin(t, modPort, emuPassword, onlyTLS10); err == nil {
		t.Fatal("TLS 1.0 client against a TLS 1.2-only server logged in")
	}
	mismatch := waitRecord(t, modRecs)

	// A DHE-offering client.
	_, dhePort, dheRecs := loggedProxy(t, "dhe", emulator.Config{Encrypt: tds.EncryptOff, DHE: emulator.DHEPrefer}, log)
	res, err := tsqlMode("require").run(ctx, t, dhePort, emuPassword, "SELECT 1", nil)
	assertSelectOne(t, res, err)
	if r := waitRecord(t, dheRecs); r.TLS == nil || !strings.HasPrefix(r.TLS.CipherSuite, "TLS_DHE_") {
		t.Fatalf("tsql against a DHE emulator: %s", recordJSON(r))
	}

	// A client refused for encryption.
	_, forcePort, forceRecs := loggedProxy(t, "force", emulator.Config{Encrypt: tds.EncryptReq}, log)
	if res, err := tsqlMode("off").run(ctx, t, forcePort, emuPassword, "SELECT 1", nil); err == nil && res.OK {
		t.Fatal("a NOT_SUP client logged in to a forcing server")
	}
	refused := waitRecord(t, forceRecs)

	// A delayed login.
	_, slowPort, slowRecs := loggedProxy(t, "slow", emulator.Config{Encrypt: tds.EncryptOff}, log, faults.RuleSpec{
		Name: "slow-login", Scenario: faults.ScenarioDelayedAccept, Options: map[string]string{"login_delay": "2500ms"}})
	res, err = tediousMode(false, false).run(ctx, t, slowPort, emuPassword, "SELECT 1", nil)
	assertSelectOne(t, res, err)
	slow := waitRecord(t, slowRecs)

	// An MD5-signed certificate.
	md5, _, _, err := tlsbridge.GenerateCertificate(tlsbridge.CertOptions{Hash: "md5", IPs: nil})
	if err != nil {
		t.Fatal(err)
	}
	_, md5Port, md5Recs := loggedProxy(t, "md5", emulator.Config{Encrypt: tds.EncryptOff, Certificate: &md5}, log)
	if err := goLogin(t, md5Port, emuPassword, nil); err != nil {
		t.Fatalf("go-mssqldb against an MD5 certificate: %v", err)
	}
	weak := waitRecord(t, md5Recs)
	_ = log.Sync()

	// Each record's own diagnosis first, for a readable failure.
	for _, c := range []struct {
		rec      *proxy.Record
		finding  string
		injected bool
	}{
		{mismatch, faults.ScenarioProtocolMismatch, false},
		{refused, diagnose.ServerRefusedEncryption, false},
		{slow, diagnose.SlowLogin, true},
		{weak, faults.ScenarioWeakCertHash, false},
	} {
		fs := diagnose.Record(c.rec, diagnose.Options{})
		if !slices.ContainsFunc(fs, func(f diagnose.Finding) bool { return f.Finding == c.finding && f.Injected == c.injected }) {
			t.Errorf("%s (injected %v) not diagnosed: %+v\n%s", c.finding, c.injected, fs, recordJSON(c.rec))
		}
	}

	b := report.New(report.Options{})
	if err := b.ReadLog(strings.NewReader(buf.String()), "test.log"); err != nil {
		t.Fatal(err)
	}
	r := b.Result()
	in := r.Input()
	if in.Records != 7 || in.Malformed != 0 {
		t.Fatalf("input %+v, want 7 records and nothing malformed", in)
	}
	t.Logf("%s", in.Summary())
	var text strings.Builder
	r.WriteText(&text)
	t.Logf("report:\n%s", text.String())

	// Clients: the old client is one identity (its JA4 says TLS 1.0) over
	// both its servers.
	var old *report.Client
	for i, c := range r.Clients {
		if strings.HasPrefix(c.JA4, "t10") {
			old = &r.Clients[i]
		}
	}
	if old == nil || old.Connections != 2 || old.Failures != 1 || !slices.Equal(old.TLSOffered, []string{"TLS 1.0"}) || !slices.Equal(old.TLSNegotiated, []string{"TLS 1.0"}) {
		t.Fatalf("old client: %+v", old)
	}
	readiness := func(change string) report.Readiness {
		for _, rd := range r.Readiness {
			if rd.Change == change {
				return rd
			}
		}
		t.Fatalf("no readiness %q", change)
		return report.Readiness{}
	}
	if rd := readiness(report.ChangeNoTLS10And11); !slices.Contains(rd.Breaks, old.ID) || len(rd.Breaks) != 1 {
		t.Errorf("disable TLS 1.0 and 1.1: breaks %q, want only %q", rd.Breaks, old.ID)
	}
	rd := readiness(report.ChangeNoDHE)
	dheClients := 0
	for _, c := range r.Clients {
		if slices.ContainsFunc(c.SuitesNegotiated, func(s string) bool { return strings.HasPrefix(s, "TLS_DHE_") }) {
			dheClients++
			if !slices.Contains(rd.Changes, c.ID) {
				t.Errorf("remove DHE: the DHE client %q is not among the changes %q", c.ID, rd.Changes)
			}
		}
	}
	if dheClients != 1 || len(rd.Breaks) != 0 {
		t.Errorf("remove DHE: %d DHE clients, breaks %q", dheClients, rd.Breaks)
	}

	// Failures.
	fails := map[string]report.Failure{}
	for _, f := range r.Failures {
		fails[f.Finding] = f
	}
	for _, w := range []struct {
		finding         string
		count, injected int
	}{
		{faults.ScenarioProtocolMismatch, 1, 0},
		{diagnose.ServerRefusedEncryption, 1, 0},
		{diagnose.LoginFailed, 1, 0},
		{diagnose.SlowLogin, 1, 1},
		{faults.ScenarioWeakCertHash, 1, 0},
		// The rule that delayed the login acted: its scenario is named,
		// as injected.
		{faults.ScenarioDelayedAccept, 1, 1},
	} {
		f, ok := fails[w.finding]
		if !ok || f.Count != w.count || f.Injected != w.injected || f.Fix == "" || len(f.Examples) == 0 {
			t.Errorf("failure %s: %+v, want count %d, injected %d", w.finding, f, w.count, w.injected)
		}
	}
	if f := fails[diagnose.LoginFailed]; f.Number != 18456 {
		t.Errorf("login-failed number %d", f.Number)
	}
	if len(fails) != 6 {
		t.Errorf("findings %v, want exactly the six above", slices.Collect(mapsKeys(fails)))
	}

	// Slow logins: the login response, waiting for the server.
	for _, s := range r.SlowLogins {
		want := int64(0)
		if s.Step == string(proxy.PhaseLoginResponse) {
			want = 1
			if s.Awaited != "server" || s.Max < 2500*time.Millisecond {
				t.Errorf("login.response: %+v", s)
			}
		}
		if s.Slow != want {
			t.Errorf("%s: slowest in %d logins, want %d", s.Step, s.Slow, want)
		}
	}
}

func mapsKeys(m map[string]report.Failure) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestInjectedScenariosDiagnosed: every scenario of the table, injected by
// its rule against a real client, is diagnosed as that scenario and marked
// injected; the DHE scenarios with tsql against an emulator preferring DHE
// (go-mssqldb offers no DHE suite), the rest with go-mssqldb.
func TestInjectedScenariosDiagnosed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cases := map[string]struct {
		opts map[string]string
		dhe  bool
	}{
		faults.ScenarioProtocolMismatch: {opts: map[string]string{"server_tls": "1.0"}},
		faults.ScenarioCipherMismatch:   {opts: map[string]string{"server_ciphers": "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"}},
		faults.ScenarioWeakCertHash:     {opts: map[string]string{"cert_hash": "md5"}},
		faults.ScenarioDHEEnabled:       {opts: map[string]string{"rate": "always"}, dhe: true},
		faults.ScenarioDHELeadingZero:   {opts: map[string]string{"rate": "always"}, dhe: true},
		faults.ScenarioDelayedAccept:    {opts: map[string]string{"reject": "true"}},
	}
	for _, name := range faults.ScenarioNames() {
		c, ok := cases[name]
		if !ok {
			t.Errorf("scenario %s has no case here", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			cfg := emulator.Config{Encrypt: tds.EncryptOff}
			if c.dhe {
				cfg.DHE = emulator.DHEPrefer
			}
			_, port, recs := loggedProxy(t, "p", cfg, zap.NewNop(), faults.RuleSpec{Name: "r-" + name, Scenario: name, Options: c.opts})
			if c.dhe {
				if res, err := tsqlMode("require").run(ctx, t, port, emuPassword, "SELECT 1", nil); err == nil && res.OK {
					t.Fatal("tsql logged in through the rule")
				}
			} else if err := goLogin(t, port, emuPassword, nil); err == nil {
				t.Fatal("go-mssqldb logged in through the rule")
			}
			rec := waitRecord(t, recs)
			fs := diagnose.Record(rec, diagnose.Options{})
			if !slices.ContainsFunc(fs, func(f diagnose.Finding) bool {
				return f.Finding == name && f.Injected && f.Rule == "r-"+name && strings.Contains(f.Evidence, "injected by rule r-"+name)
			}) {
				t.Fatalf("not diagnosed as injected %s: %+v\n%s", name, fs, recordJSON(rec))
			}
			// The injected close explains itself: no natural scenario
			// beside it.
			for _, f := range fs {
				if !f.Injected && slices.Contains(faults.ScenarioNames(), f.Finding) {
					t.Errorf("natural %s beside the injected %s: %+v", f.Finding, name, f)
				}
			}
		})
	}
}

// TestReportStrictClients: the Microsoft drivers (JDBC and ODBC, when
// installed) and go-mssqldb in TDS 8.0 strict, beside go-mssqldb in TDS
// 7.x, through one logging proxy. The report sees the strict clients as
// strict TLS 1.3 clients: "require TDS 8.0 strict" and "disable TLS 1.2
// below 1.3 (strict only)" leave them unaffected and break the TDS 7.x one.
func TestReportStrictClients(t *testing.T) {
	var buf testkit.LockedBuffer
	log := jsonLogger(&buf)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	emu, port, recs := loggedProxy(t, "strict", emulator.Config{Encrypt: tds.EncryptOff}, log)
	strict := []clientMode{mssqlMode("strict"), jdbcMode("strict"), odbcMode("strict")}
	for _, cm := range strict {
		res, err := cm.run(ctx, t, port, emuPassword, "SELECT 1", emu.CertificatePEM())
		assertSelectOne(t, res, err)
		if r := waitRecord(t, recs); r.Protocol != proxy.ProtocolStrict || r.TLS == nil || r.TLS.Version != "TLS 1.3" {
			t.Fatalf("%s strict: %s", cm.client, recordJSON(r))
		}
	}
	if err := goLogin(t, port, emuPassword, nil); err != nil {
		t.Fatalf("go-mssqldb TDS 7.x: %v", err)
	}
	tds7 := waitRecord(t, recs)
	_ = log.Sync()

	b := report.New(report.Options{})
	if err := b.ReadLog(strings.NewReader(buf.String()), "strict.log"); err != nil {
		t.Fatal(err)
	}
	r := b.Result()
	if len(r.Clients) != len(strict)+1 {
		t.Fatalf("%d clients, want %d: %+v", len(r.Clients), len(strict)+1, r.Clients)
	}
	var tds7ID string
	for _, c := range r.Clients {
		if c.JA4 == tds7.TLS.ClientHello.JA4 && slices.Equal(c.Protocols, []string{"tds7"}) {
			tds7ID = c.ID
		}
	}
	if tds7ID == "" {
		t.Fatalf("no TDS 7.x client among %+v", r.Clients)
	}
	for _, rd := range r.Readiness {
		switch rd.Change {
		case report.ChangeStrictOnly, report.ChangeTLS13Only:
			if !slices.Equal(rd.Breaks, []string{tds7ID}) || len(rd.Changes) != 0 || rd.Unaffected != len(strict) {
				t.Errorf("%s: breaks %q, changes %q, unaffected %d; want only the TDS 7.x client to break", rd.Change, rd.Breaks, rd.Changes, rd.Unaffected)
			}
		}
	}
	if len(r.Failures) != 0 {
		t.Errorf("failures: %+v", r.Failures)
	}
}
