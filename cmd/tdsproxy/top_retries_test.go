package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/record"
)

// top shows the retry chains of finished connections, and no retry
// section when nothing retried.
func TestTopRetries(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	finished := []proxy.Record{
		{ID: 41, Proxy: "p", Client: "10.0.0.1:5000", Start: now.Add(-3 * time.Second), Retry: &record.RetryInfo{Attempt: 1, Ended: "error 40613"}},
		{ID: 42, Proxy: "p", Client: "10.0.0.1:5001", Start: now.Add(-2 * time.Second), Retry: &record.RetryInfo{Identity: "10.0.0.1 host=app01 app=billing",
			Attempt: 2, Previous: 41, AfterPrevious: 536 * time.Millisecond, PreviousEnded: "error 40613", PreviousRule: "transient", Ended: "fin by client at established", OK: true}},
	}
	out := renderTop("http://127.0.0.1:8475", now, nil, nil, finished, 10)
	i := strings.Index(out, "RETRIES (latest)")
	if i < 0 {
		t.Fatalf("no RETRIES section:\n%s", out)
	}
	for _, want := range []string{"42", "10.0.0.1 host=app01 app=billing", "536ms", "error 40613", "transient", "fin by client at established"} {
		if !strings.Contains(out[i:], want) {
			t.Errorf("RETRIES section lacks %q:\n%s", want, out[i:])
		}
	}
	if out := renderTop("http://127.0.0.1:8475", now, nil, nil, finished[:1], 10); strings.Contains(out, "RETRIES") {
		t.Errorf("a RETRIES section without retries:\n%s", out)
	}
}
