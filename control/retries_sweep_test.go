package control

import (
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// The sweep looks only at chains that may still be retrying (issue 17):
// a chain whose retry connected is never a give-up, a chain pushed out
// by maxChains is no longer swept (as when the sweep walked the list),
// and chains that are done leave the sweep's list.
func TestRetrySweepOnlyRetrying(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tr := newRetryTracker(prometheus.NewRegistry())
	tr.now = func() time.Time { return now }
	rec := func(id uint64, host string, start time.Time, ok bool) *proxy.Record {
		r := &proxy.Record{ID: id, Proxy: "p", Client: host + ":" + strconv.FormatUint(40000+id, 10), Protocol: proxy.ProtocolTDS7,
			Start: start, End: start.Add(10 * time.Millisecond), Login: &proxy.LoginInfo{}}
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
	// 10.0.0.1 fails, then connects: done. 10.0.0.2 fails twice, then is
	// pushed out by maxChains successful clients. 10.0.0.3 fails last.
	tr.observe(rec(3, "10.0.0.2", now, false))
	tr.observe(rec(4, "10.0.0.2", now.Add(time.Second), false))
	tr.observe(rec(1, "10.0.0.1", now, false))
	tr.observe(rec(2, "10.0.0.1", now.Add(time.Second), true))
	for i := range maxChains - 2 {
		tr.observe(rec(uint64(10+i), "10.1.0."+strconv.Itoa(i%250), now.Add(2*time.Second), true))
	}
	tr.observe(rec(9, "10.0.0.3", now.Add(2*time.Second), false))
	tr.list("", 1) // sweeps
	if len(tr.retrying) != 1 || tr.retrying[0].Identity != "10.0.0.3" {
		t.Fatalf("sweep list holds %d chains, want only 10.0.0.3's", len(tr.retrying))
	}
	now = now.Add(time.Minute)
	chains := tr.list("p", 2)
	if len(chains) != 1 || chains[0].Identity != "10.0.0.1" || chains[0].Outcome != "connected" {
		t.Fatalf("chains with a retry: %+v, want 10.0.0.1 connected", chains)
	}
	if n := counterValue(t, tr.giveUps.WithLabelValues("p", "")); n != 1 {
		t.Errorf("give-ups %v, want 1 (10.0.0.3)", n)
	}
	if len(tr.retrying) != 0 {
		t.Errorf("sweep list holds %d chains after every chain ended", len(tr.retrying))
	}
}
