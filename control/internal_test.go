package control

import (
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

func TestRingQuery(t *testing.T) {
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	r := newRing(4)
	for i := 1; i <= 6; i++ { // cursors 1..6; the ring keeps 3..6
		r.add(&proxy.Record{ID: uint64(100 + i), End: base.Add(time.Duration(i) * time.Second)})
	}
	ids := func(p RecordPage) []uint64 {
		var out []uint64
		for _, rec := range p.Records {
			out = append(out, rec.ID-100)
		}
		return out
	}
	tests := []struct {
		name       string
		q          RecordQuery
		want       []uint64
		next, miss uint64
	}{
		{"all kept", RecordQuery{}, []uint64{3, 4, 5, 6}, 6, 2},
		{"after a cursor", RecordQuery{After: 4}, []uint64{5, 6}, 6, 0},
		{"after the newest", RecordQuery{After: 6}, nil, 6, 0},
		{"cursor from the future", RecordQuery{After: 99}, nil, 6, 0},
		{"dropped ones counted", RecordQuery{After: 1}, []uint64{3, 4, 5, 6}, 6, 1},
		{"limit pages", RecordQuery{After: 2, Limit: 3}, []uint64{3, 4, 5}, 5, 0},
		{"last", RecordQuery{Last: 2}, []uint64{5, 6}, 6, 2},
		{"since a time", RecordQuery{Since: base.Add(4 * time.Second)}, []uint64{5, 6}, 6, 2},
		{"since and limit", RecordQuery{Since: base.Add(2 * time.Second), Limit: 1}, []uint64{3}, 3, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := r.query(tt.q)
			got := ids(p)
			if len(got) != len(tt.want) {
				t.Fatalf("records %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("records %v, want %v", got, tt.want)
				}
			}
			if p.Next != tt.next || p.Missed != tt.miss {
				t.Errorf("next %d missed %d, want %d and %d", p.Next, p.Missed, tt.next, tt.miss)
			}
		})
	}
}

// Label values come from fixed vocabularies: anything else is "other".
func TestMetricLabels(t *testing.T) {
	for _, tt := range []struct {
		name, got, want string
	}{
		{"IANA suite", suiteLabel("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"), "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
		{"unassigned suite", suiteLabel("0x1A2B"), other},
		{"made-up suite", suiteLabel("TLS_MADE_UP"), other},
		{"TLS version", versionLabel("TLS 1.2"), "TLS 1.2"},
		{"draft version", versionLabel("TLS 1.3 draft 28"), other},
		{"GREASE", versionLabel("GREASE"), other},
		{"phase", phaseLabel(proxy.PhaseTLSClientHello), "tls.client_hello"},
		{"bad phase", phaseLabel("nowhere"), other},
		{"close kind", closeKind(proxy.CloseRST), "rst"},
		{"limit close kind", closeKind(proxy.CloseLimit), "limit"}, // issue 18: was "other"
		{"bad close kind", closeKind("slam"), other},
		{"action", actionLabel("close:rst"), "close:rst"},
		{"stage action", actionLabel("latency"), "latency"},
		{"free text action", actionLabel("skip: unparseable"), other},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestOutcome(t *testing.T) {
	marks := func(ps ...proxy.Phase) []proxy.PhaseMark {
		var out []proxy.PhaseMark
		for _, p := range ps {
			out = append(out, proxy.PhaseMark{Phase: p})
		}
		return out
	}
	for _, tt := range []struct {
		name string
		rec  proxy.Record
		want string
	}{
		{"ok", proxy.Record{Login: &proxy.LoginInfo{Outcome: "ok"}, Phases: marks(proxy.PhaseAccept, proxy.PhaseLoginResponse, proxy.PhaseEstablished)}, OutcomeOK},
		{"failed", proxy.Record{Login: &proxy.LoginInfo{Outcome: "failed"}, Phases: marks(proxy.PhaseAccept, proxy.PhaseLoginResponse)}, OutcomeFailed},
		{"encrypted", proxy.Record{Login: &proxy.LoginInfo{Outcome: "unknown"}, Phases: marks(proxy.PhaseAccept, proxy.PhaseLoginResponse)}, OutcomeUnknown},
		{"reset at hello", proxy.Record{Phases: marks(proxy.PhaseAccept, proxy.PhaseTLSClientHello)}, OutcomeIncomplete},
		{"dial failed", proxy.Record{Close: &proxy.CloseInfo{Kind: proxy.CloseDialFailed}}, OutcomeDialFailed},
		{"not tds", proxy.Record{Protocol: "not-tds"}, OutcomeNotTDS},
	} {
		if got := Outcome(&tt.rec); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
