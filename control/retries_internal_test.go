package control

import (
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// A failed attempt with no new one within the window is a give-up,
// counted once; an attempt after a success starts a new chain; a failed
// attempt and a quick retry make one chain.
func TestRetryTrackerChainsAndGiveUps(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tr := newRetryTracker(prometheus.NewRegistry())
	tr.now = func() time.Time { return now }
	rec := func(id uint64, start time.Time, ok bool) *proxy.Record {
		r := &proxy.Record{ID: id, Proxy: "p", Client: "10.0.0.1:" + strconv.FormatUint(40000+id, 10), Protocol: proxy.ProtocolTDS7, Start: start, End: start.Add(10 * time.Millisecond),
			Login: &proxy.LoginInfo{Visible: true, Host: "h", App: "a"}}
		r.Phases = []proxy.PhaseMark{{Phase: proxy.PhaseAccept}}
		if ok {
			r.Login.Outcome = proxy.LoginOK
			r.Phases = append(r.Phases, proxy.PhaseMark{Phase: proxy.PhaseEstablished})
			r.Close = &proxy.CloseInfo{By: proxy.SideClient, Kind: proxy.CloseFIN, Phase: proxy.PhaseEstablished}
		} else {
			r.Login.Outcome, r.Login.ErrorNumber = proxy.LoginFailed, 40613
			r.Close = &proxy.CloseInfo{By: proxy.SideServer, Kind: proxy.CloseFIN, Phase: proxy.PhaseLoginResponse}
		}
		return r
	}
	r1 := rec(1, now, false)
	tr.observe(r1)
	r2 := rec(2, now.Add(500*time.Millisecond), false)
	tr.observe(r2)
	if r2.Retry == nil || r2.Retry.Attempt != 2 || r2.Retry.Previous != 1 || r2.Retry.PreviousEnded != "error 40613" || r2.Retry.AfterPrevious != 490*time.Millisecond {
		t.Fatalf("attempt 2: %+v", r2.Retry)
	}
	now = now.Add(11 * time.Second)
	chains := tr.list("p", 1)
	if len(chains) != 1 || chains[0].Outcome != "gave up" || len(chains[0].Attempts) != 2 {
		t.Fatalf("chains %+v, want one given up after two attempts", chains)
	}
	tr.list("", 1) // a second look counts nothing more
	if n := counterValue(t, tr.giveUps.WithLabelValues("p", "")); n != 1 {
		t.Errorf("give-ups %v, want 1", n)
	}
	r3 := rec(3, now, true)
	tr.observe(r3)
	r4 := rec(4, now.Add(time.Second), true)
	tr.observe(r4)
	if r3.Retry.Attempt != 1 || r4.Retry.Attempt != 1 || !r4.Retry.OK {
		t.Errorf("after a give-up and after a success, new chains: %+v, %+v", r3.Retry, r4.Retry)
	}
	if n := counterValue(t, tr.retries.WithLabelValues("p", "")); n != 1 {
		t.Errorf("retries %v, want 1", n)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
