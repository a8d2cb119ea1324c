package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/record"
)

// reportExec runs `tdsproxy report args...` in-process with stdin.
func reportExec(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"report"}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

// reportLog is a small tdsproxy log: a TLS 1.0 client that logged in, a
// wrong password, tdsproxy's startup line and a line from elsewhere.
func reportLog(t *testing.T) string {
	t.Helper()
	at := time.Now().Add(-time.Hour).UTC()
	mk := func(id uint64, client, version string, login *proxy.LoginInfo) string {
		r := proxy.Record{ID: id, Proxy: "default", Client: client, Start: at, End: at.Add(20 * time.Millisecond),
			Protocol: record.ProtocolTDS7, Phase: proxy.PhaseEstablished,
			Phases: []proxy.PhaseMark{{Phase: proxy.PhaseAccept}, {Phase: proxy.PhasePreloginRequest, At: time.Millisecond},
				{Phase: proxy.PhasePreloginResponse, At: 2 * time.Millisecond}, {Phase: proxy.PhaseTLSClientHello, At: 3 * time.Millisecond},
				{Phase: proxy.PhaseTLSServerHello, At: 4 * time.Millisecond}, {Phase: proxy.PhaseLogin7, At: 6 * time.Millisecond},
				{Phase: proxy.PhaseLoginResponse, At: 8 * time.Millisecond}},
			Prelogin: &proxy.PreloginInfo{Client: &proxy.PreloginSide{Encryption: "OFF"}, Server: &proxy.PreloginSide{Encryption: "OFF"}, Scope: "login-only"},
			TLS: &proxy.TLSInfo{ClientHello: &proxy.ClientHelloInfo{LegacyVersion: version, HighestVersion: version, CipherSuites: []string{"TLS_RSA_WITH_AES_128_CBC_SHA"}, JA4: "ja4-" + version},
				ServerHello: &proxy.ServerHelloInfo{Version: version, CipherSuite: "TLS_RSA_WITH_AES_128_CBC_SHA"}, Version: version, CipherSuite: "TLS_RSA_WITH_AES_128_CBC_SHA"},
			Login: login,
			Close: &proxy.CloseInfo{By: proxy.SideClient, Kind: proxy.CloseFIN, Phase: proxy.PhaseEstablished},
		}
		b, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		return `{"level":"info","ts":"` + at.Format(time.RFC3339) + `","msg":"connection closed","conn":1,"record":` + string(b) + "}\n"
	}
	return `{"level":"info","ts":"x","msg":"proxy listening","listen":"127.0.0.1:1433"}` + "\n" +
		mk(1, "10.0.0.7:5000", "TLS 1.0", &proxy.LoginInfo{Outcome: "ok"}) +
		mk(2, "10.0.0.8:5001", "TLS 1.2", &proxy.LoginInfo{Outcome: "failed", ErrorNumber: 18456, ErrorMessage: "Login failed for user 'app'."}) +
		"kernel: eth0 link up\n"
}

func TestReportCommand(t *testing.T) {
	log := reportLog(t)

	out, errOut, err := reportExec(t, log, "-")
	if err != nil {
		t.Fatalf("report -: %v\n%s", err, errOut)
	}
	for _, want := range []string{"CLIENTS (2)", "disable TLS 1.0 and 1.1: 1 break", "10.0.0.7", "login-failed 18456", "LOGIN STEPS"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "report: 4 lines, 2 connection records, 1 other tdsproxy lines, 1 malformed lines skipped") ||
		!strings.Contains(errOut, "stdin:4: not a JSON object") {
		t.Errorf("stderr: %q", errOut)
	}

	// --json from a gzip file, --html beside it.
	dir := t.TempDir()
	gz := filepath.Join(dir, "tdsproxy.log.gz")
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write([]byte(log))
	zw.Close()
	if err := os.WriteFile(gz, zb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(dir, "report.html")
	out, errOut, err = reportExec(t, "", gz, "--json", "--html", page, "--since", "24h")
	if err != nil {
		t.Fatalf("report --json: %v\n%s", err, errOut)
	}
	var js map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &js); err != nil || len(js) != 4 || js["clients"] == nil || js["readiness"] == nil || js["failures"] == nil || js["slow_logins"] == nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if h, err := os.ReadFile(page); err != nil || !bytes.Contains(h, []byte("<svg")) {
		t.Fatalf("--html: %v", err)
	}

	// --since leaves out what ended before it.
	_, errOut, err = reportExec(t, log, "-", "--since", "30m")
	if err != nil || !strings.Contains(errOut, "2 records before --since") {
		t.Errorf("--since 30m: %v %q", err, errOut)
	}
}

func TestReportUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "LOGFILE"},
		{[]string{"-", "--since", "-1h"}, "--since"},
		{[]string{"-", "--bogus"}, "bogus"},
	} {
		_, _, err := reportExec(t, "", tc.args...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("report %q: %v, want a usage error naming %q", tc.args, err, tc.want)
		}
	}
	if _, _, err := reportExec(t, "", filepath.Join(t.TempDir(), "missing.log")); err == nil || errors.As(err, new(usageError)) {
		t.Errorf("a missing file: %v, want an error (exit 1)", err)
	}
}
