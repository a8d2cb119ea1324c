package report

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/record"
)

var base = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)

// build reads a generated log of n records (every profile n/len times).
func build(t *testing.T, n int) *Report {
	t.Helper()
	var buf bytes.Buffer
	writeLog(t, &buf, n, base)
	b := New(Options{})
	if err := b.ReadLog(&buf, "gen"); err != nil {
		t.Fatal(err)
	}
	return b.Result()
}

// idsOf returns the client ids of a profile (its address's third byte).
func hasProfile(ids []string, name string) bool {
	i := slices.IndexFunc(profiles, func(p profile) bool { return p.name == name })
	prefix := "10.0." + itoa(int64(i)) + "."
	return slices.ContainsFunc(ids, func(id string) bool { return strings.HasPrefix(id, prefix) })
}

func onlyProfiles(t *testing.T, what string, ids []string, want ...string) {
	t.Helper()
	for i, p := range profiles {
		got := hasProfile(ids, p.name)
		if got != slices.Contains(want, p.name) {
			t.Errorf("%s: profile %s (10.0.%d.*) listed=%v, want %v; ids %q", what, p.name, i, got, !got, ids)
		}
	}
}

func readinessOf(t *testing.T, r *Report, change string) Readiness {
	t.Helper()
	for _, rd := range r.Readiness {
		if rd.Change == change {
			return rd
		}
	}
	t.Fatalf("no readiness entry %q", change)
	return Readiness{}
}

func TestReadinessVerdicts(t *testing.T) {
	r := build(t, len(profiles)*3)
	if len(r.Clients) != len(profiles)*3 {
		t.Fatalf("clients: %d, want %d (one per address and configuration)", len(r.Clients), len(profiles)*3)
	}
	cases := []struct {
		change          string
		breaks, changes []string
	}{
		{ChangeNoTLS10And11, []string{"old-tls"}, nil},
		{ChangeTLS13Only, []string{"modern", "old-tls", "dhe-only", "dhe-pref", "wrong-password", "not-sup", "slow"}, nil},
		{ChangeNoDHE, []string{"dhe-only"}, []string{"dhe-pref"}},
		{ChangeNoRSAKex, nil, []string{"old-tls"}},
		{ChangeCertSHA256, nil, nil},
		{ChangeCertSHA512, []string{"dhe-only"}, []string{"modern", "dhe-pref", "wrong-password", "slow"}},
		{ChangeStrictOnly, []string{"modern", "old-tls", "dhe-only", "dhe-pref", "wrong-password", "not-sup", "slow"}, nil},
	}
	for _, c := range cases {
		t.Run(c.change, func(t *testing.T) {
			rd := readinessOf(t, r, c.change)
			onlyProfiles(t, "breaks", rd.Breaks, c.breaks...)
			onlyProfiles(t, "changes", rd.Changes, c.changes...)
			if got, want := rd.Unaffected, len(r.Clients)-len(rd.Breaks)-len(rd.Changes); got != want {
				t.Errorf("unaffected %d, want %d", got, want)
			}
			for _, id := range append(slices.Clone(rd.Breaks), rd.Changes...) {
				if rd.Evidence[id] == "" {
					t.Errorf("%s: no evidence", id)
				}
			}
		})
	}
}

func TestFailuresAndSlowLogins(t *testing.T) {
	n := len(profiles) * 5
	r := build(t, n)
	byName := map[string]Failure{}
	for _, f := range r.Failures {
		byName[f.Finding] = f
	}
	if f := byName["login-failed"]; f.Count != 5 || f.Number != 18456 || !strings.Contains(f.Fix, "password") || len(f.Examples) != 3 {
		t.Errorf("login-failed: %+v", f)
	}
	if f := byName["server-refused-encryption"]; f.Count != 5 || !strings.Contains(f.Examples[0].Evidence, "NOT_SUP") {
		t.Errorf("server-refused-encryption: %+v", f)
	}
	if f := byName["slow-login"]; f.Count != 5 || f.FirstSeen.After(f.LastSeen) || f.FirstSeen.IsZero() {
		t.Errorf("slow-login: %+v", f)
	}
	if len(r.Failures) != 3 {
		t.Errorf("failures: %+v, want exactly login-failed, server-refused-encryption and slow-login", r.Failures)
	}
	var lr *SlowStep
	for i := range r.SlowLogins {
		if r.SlowLogins[i].Step == "login.response" {
			lr = &r.SlowLogins[i]
		}
	}
	if lr == nil || lr.Slow != 5 || lr.Awaited != "server" || lr.Max < 3*time.Second || len(lr.Examples) == 0 {
		t.Fatalf("login.response step: %+v", lr)
	}
	for _, s := range r.SlowLogins {
		if s.Step == "tls.client_finished" && s.Inferred == 0 {
			t.Errorf("tls.client_finished: not marked inferred: %+v", s)
		}
		if s.Step != "login.response" && s.Slow != 0 {
			t.Errorf("%s: %d slow logins named it", s.Step, s.Slow)
		}
	}
}

// The JSON's top-level keys are read by tests outside the repository.
func TestJSONKeys(t *testing.T) {
	r := build(t, len(profiles))
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"clients", "failures", "readiness", "slow_logins"}; !slices.Equal(keys, want) {
		t.Fatalf("keys %q, want %q", keys, want)
	}
	var rd []map[string]json.RawMessage
	if err := json.Unmarshal(m["readiness"], &rd); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"change", "breaks", "changes", "unaffected"} {
		if _, ok := rd[0][k]; !ok {
			t.Errorf("readiness entry without %q", k)
		}
	}
	if string(rd[0]["change"]) != `"disable TLS 1.0 and 1.1"` {
		t.Errorf("first change %s", rd[0]["change"])
	}
	var fs []map[string]json.RawMessage
	if err := json.Unmarshal(m["failures"], &fs); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"finding", "count", "fix", "examples"} {
		if _, ok := fs[0][k]; !ok {
			t.Errorf("failure entry without %q", k)
		}
	}
}

func TestMalformedLines(t *testing.T) {
	var buf bytes.Buffer
	writeLog(t, &buf, 4, base)
	good := buf.String()
	lines := strings.SplitAfter(good, "\n")
	var in strings.Builder
	in.WriteString(lines[0])
	in.WriteString(lines[1][:len(lines[1])/2] + "\n") // truncated JSON
	in.WriteString("Dec  3 17:00:01 host sshd[123]: Accepted publickey for root\n")
	in.WriteString(`{"level":"info","ts":"2026-05-01T08:00:00.000Z","msg":"proxy listening","listen":"127.0.0.1:1433"}` + "\n")
	in.WriteString(`{"some":"other program"}` + "\n")
	in.WriteString("\n")
	in.WriteString(`{"msg":"connection closed","record":` + strings.Repeat(" ", MaxLine) + "}\n") // huge
	in.WriteString(lines[2])
	in.WriteString(strings.TrimSuffix(lines[3], "\n")) // last line without newline
	b := New(Options{})
	if err := b.ReadLog(strings.NewReader(in.String()), "mixed.log"); err != nil {
		t.Fatal(err)
	}
	got := b.Input()
	if got.Records != 3 || got.Other != 1 || got.Malformed != 4 || got.TooLong != 1 || got.Lines != 8 {
		t.Fatalf("input %+v: want 3 records, 1 other, 4 malformed (1 too long), 8 lines", got)
	}
	if len(got.Examples) != 4 || !strings.HasPrefix(got.Examples[0], "mixed.log:2: not JSON") {
		t.Errorf("examples %q", got.Examples)
	}
	if !strings.Contains(got.Summary(), "4 malformed lines skipped") {
		t.Errorf("summary %q", got.Summary())
	}
	if len(b.Result().Clients) != 3 {
		t.Errorf("clients %d, want 3", len(b.Result().Clients))
	}
}

func TestGzipFileAndSince(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "tdsproxy.log.1")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	writeLog(t, zw, 100, base)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	since := genRecord(60, base).End
	var before int64
	for i := range 100 {
		if genRecord(i, base).End.Before(since) {
			before++
		}
	}
	b := New(Options{Since: since})
	if err := b.ReadFile(name, nil); err != nil {
		t.Fatal(err)
	}
	in := b.Input()
	if in.Records != 100 || in.Filtered != before || before < 50 || in.Malformed != 0 {
		t.Fatalf("input %+v", in)
	}
	var conns int
	for _, c := range b.Result().Clients {
		conns += c.Connections
	}
	if int64(conns) != 100-before {
		t.Fatalf("connections counted %d, want %d", conns, 100-before)
	}
}

func TestTextAndHTMLRender(t *testing.T) {
	r := build(t, len(profiles)*2)
	var text, page bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CLIENTS", "READINESS", "disable TLS 1.0 and 1.1: 2 break", "login-failed 18456", "LOGIN STEPS", "login.response"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	if err := r.WriteHTML(&page, base); err != nil {
		t.Fatal(err)
	}
	h := page.String()
	for _, want := range []string{"<svg", "TLS versions offered over time", "default-src 'none'", "login time per step", "remove TLS_DHE_* suites"} {
		if !strings.Contains(h, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	// No reference to anything outside the page.
	for _, bad := range []string{"<script", "src=", "href=", "@import", "url("} {
		if strings.Contains(h, bad) {
			t.Errorf("HTML contains %q", bad)
		}
	}
}

// TestSlimCoversRecord: every JSON field of record.Record is decoded by
// slimRecord or listed in slimSkipped, so a new field is a decision here,
// not a silent loss; and a record decoded the slim way gives the same
// report as the full decode.
func TestSlimCoversRecord(t *testing.T) {
	full, err := json.Marshal(record.Record{})
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]any
	json.Unmarshal(full, &all)
	fields := map[string]bool{}
	for _, f := range reflect.VisibleFields(reflect.TypeOf(record.Record{})) {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		fields[name] = true
	}
	slim := map[string]bool{}
	for _, f := range reflect.VisibleFields(reflect.TypeOf(slimRecord{})) {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		slim[name] = true
	}
	for name := range fields {
		if !slim[name] && !slices.Contains(slimSkipped, name) {
			t.Errorf("record field %q is neither decoded by slimRecord nor listed in slimSkipped", name)
		}
	}

	var buf bytes.Buffer
	writeLog(t, &buf, len(profiles)*4, base)
	viaLog := New(Options{})
	if err := viaLog.ReadLog(bytes.NewReader(buf.Bytes()), "gen"); err != nil {
		t.Fatal(err)
	}
	direct := New(Options{})
	for i := range len(profiles) * 4 {
		direct.Add(genRecord(i, base))
	}
	a, _ := json.Marshal(viaLog.Result())
	b, _ := json.Marshal(direct.Result())
	if !bytes.Equal(a, b) {
		t.Fatalf("slim decode and full records give different reports:\n%s\n%s", a, b)
	}
}
