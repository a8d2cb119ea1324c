package control_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/control/api"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/record"
	"github.com/tdsproxy/tdsproxy/report"
)

// TestDiagnosisEverywhere: a finished record's diagnosis and login steps
// are in the log line, GET /records and the metrics, and the report reads
// the log back. Two connections: one to an upstream nobody listens on
// (upstream-unreachable), one whose login response a rule holds past
// slow_login (slow-login at login.response, injected).
func TestDiagnosisEverywhere(t *testing.T) {
	var logBuf testkit.LockedBuffer
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(ec), zapcore.AddSync(&logBuf), zapcore.InfoLevel))
	in := newInstance(t, control.Options{Logger: log, SlowLogin: 200 * time.Millisecond})
	base := serveAdmin(t, in, "")

	// Nobody listens on a port just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	downAddr := addProxy(t, in, "down", dead)
	// The proxy closes once its dial fails, maybe before connect(2)
	// returns here (a reset): either way a record follows.
	if c, err := net.Dial("tcp", downAddr); err == nil {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		c.Read(make([]byte, 1))
		c.Close()
	}

	emu := testkit.StartEmulator(t, emulator.Config{})
	if err := in.AddProxy(proxyConfig("slow", emu.Addr()), []faults.RuleSpec{{
		Name: "hold-login", Scenario: faults.ScenarioDelayedAccept, Options: map[string]string{"login_delay": "300ms"}}}); err != nil {
		t.Fatal(err)
	}
	pi, err := in.Proxy("slow")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testkit.SelectOne(t, testkit.GoDSN(pi.Addr, "false", nil), testkit.Query{}); err != nil {
		t.Fatalf("SELECT 1 through the slow proxy: %v", err)
	}

	var recs []record.Record
	testkit.WaitFor(t, func() bool {
		page, err := newClient(base, "").Records(context.Background(), api.RecordQuery{})
		if err != nil {
			t.Fatal(err)
		}
		recs = page.Records
		return len(recs) == 2
	}, 10*time.Second, "two finished records")
	want := map[string]struct {
		finding  string
		injected bool
		step     string
	}{
		"down": {"upstream-unreachable", false, ""},
		"slow": {"slow-login", true, "login.response"},
	}
	for _, r := range recs {
		w := want[r.Proxy]
		if !slices.ContainsFunc(r.Diagnosis, func(f record.Finding) bool {
			return f.Finding == w.finding && f.Injected == w.injected && f.Step == w.step && f.Evidence != "" && f.Fix != ""
		}) {
			t.Errorf("%s: diagnosis %+v, want %s (injected %v, step %q)", r.Proxy, r.Diagnosis, w.finding, w.injected, w.step)
		}
		if r.Proxy == "slow" {
			i := slices.IndexFunc(r.Steps, func(s record.Step) bool { return s.Step == "login.response" })
			if i < 0 || r.Steps[i].Awaited != "server" || r.Steps[i].Held < 300*time.Millisecond || r.Steps[i].Duration < r.Steps[i].Held {
				t.Errorf("slow: steps %+v", r.Steps)
			}
		}
	}

	m, err := newClient(base, "").Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`tdsproxy_diagnoses_total{finding="upstream-unreachable"} 1`,
		`tdsproxy_diagnoses_total{finding="slow-login"} 1`,
		`tdsproxy_diagnoses_total{finding="protocol-mismatch"} 0`,
		`tdsproxy_login_step_seconds_count{step="login.response"} 1`,
	} {
		if !strings.Contains(m, line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}

	// The log line: finding names at the top, the whole diagnosis in the
	// record.
	var lines int
	sc := bufio.NewScanner(strings.NewReader(logBuf.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			Msg       string       `json:"msg"`
			Proxy     string       `json:"proxy"`
			Diagnosis []string     `json:"diagnosis"`
			Record    proxy.Record `json:"record"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "connection closed" {
			continue
		}
		lines++
		if w := want[l.Proxy]; !slices.Contains(l.Diagnosis, w.finding) || len(l.Record.Diagnosis) != len(l.Diagnosis) {
			t.Errorf("%s: log line diagnosis %q, record's %+v", l.Proxy, l.Diagnosis, l.Record.Diagnosis)
		}
	}
	if lines != 2 {
		t.Fatalf("%d connection lines in the log:\n%s", lines, logBuf.String())
	}
	b := report.New(report.Options{})
	if err := b.ReadLog(strings.NewReader(logBuf.String()), "log"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range b.Result().Failures {
		got = append(got, f.Finding)
	}
	slices.Sort(got)
	// The rule that held the login is named too (delayed-accept, injected).
	want2 := []string{"delayed-accept", "slow-login", "upstream-unreachable"}
	if !slices.Equal(got, want2) {
		t.Errorf("report failures %q, want %q", got, want2)
	}

	// tdsproxy report --from: the same from GET /records.
	fromAPI := report.New(report.Options{})
	if err := fromAPI.ReadAPI(context.Background(), base, "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, f := range fromAPI.Result().Failures {
		got = append(got, f.Finding)
	}
	slices.Sort(got)
	if !slices.Equal(got, want2) || fromAPI.Input().Records != 2 {
		t.Errorf("report --from: failures %q from %d records, want %q from 2", got, fromAPI.Input().Records, want2)
	}
}

// TestApplySlowLogin: diagnosis.slow_login comes from each applied
// configuration; 0s turns the slow-login finding off.
func TestApplySlowLogin(t *testing.T) {
	in := newInstance(t, control.Options{})
	emu := testkit.StartEmulator(t, emulator.Config{})
	hold := map[string]any{"name": "hold", "scenario": faults.ScenarioDelayedAccept, "options": map[string]any{"login_delay": "300ms"}}
	login := func(slow time.Duration) record.Record {
		t.Helper()
		cfg := testConfig(configs.ProxyConfig{Name: "p", Listen: "127.0.0.1:0", Upstream: emu.Addr(), Faults: []map[string]any{hold}})
		cfg.Diagnosis.SlowLogin = slow
		if err := in.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		pi, err := in.Proxy("p")
		if err != nil {
			t.Fatal(err)
		}
		before := in.Records(api.RecordQuery{}).Next
		if _, err := testkit.SelectOne(t, testkit.GoDSN(pi.Addr, "false", nil), testkit.Query{}); err != nil {
			t.Fatal(err)
		}
		var page api.RecordPage
		testkit.WaitFor(t, func() bool {
			page = in.Records(api.RecordQuery{After: before})
			return len(page.Records) == 1
		}, 10*time.Second, "the login's record")
		return *page.Records[0]
	}
	slowLogin := func(r record.Record) bool {
		return slices.ContainsFunc(r.Diagnosis, func(f record.Finding) bool { return f.Finding == "slow-login" })
	}
	if r := login(100 * time.Millisecond); !slowLogin(r) {
		t.Errorf("slow_login 100ms, login held 300ms: diagnosis %+v", r.Diagnosis)
	}
	if r := login(0); slowLogin(r) || len(r.Steps) == 0 {
		t.Errorf("slow_login 0s: diagnosis %+v, steps %+v", r.Diagnosis, r.Steps)
	}
}
