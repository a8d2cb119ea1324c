package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/record"
)

// TestTopDiagnosisColumn: recently finished connections show their
// diagnosis, the login error number, the slow step and * for injected.
func TestTopDiagnosisColumn(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	finished := []proxy.Record{
		{ID: 1, Proxy: "p", Client: "127.0.0.1:5000", Start: now.Add(-time.Second), End: now, Phase: proxy.PhaseLoginResponse,
			Diagnosis: []record.Finding{{Finding: "login-failed", Number: 18456}}},
		{ID: 2, Proxy: "p", Client: "127.0.0.1:5001", Start: now.Add(-3 * time.Second), End: now, Phase: proxy.PhaseEstablished,
			Diagnosis: []record.Finding{{Finding: "delayed-accept", Injected: true}, {Finding: "slow-login", Step: "login.response", Injected: true}}},
		{ID: 3, Proxy: "p", Client: "127.0.0.1:5002", Start: now.Add(-time.Second), End: now, Phase: proxy.PhaseEstablished},
	}
	out := renderTop("http://127.0.0.1:8475", now, nil, nil, finished, 10)
	for _, want := range []string{"DIAGNOSIS", "login-failed 18456", "delayed-accept*, slow-login (login.response)*"} {
		if !strings.Contains(out, want) {
			t.Errorf("top lacks %q:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "3 ") && !strings.HasSuffix(strings.TrimSpace(l), "-") {
			t.Errorf("a healthy connection's diagnosis is not -: %q", l)
		}
	}
}
