package control

import (
	"fmt"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/diagnose"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// The control plane's work per finished connection (issue 17: CPU per
// login): the retry tracker and the metrics. Run with:
// go test -run '^$' -bench 'RetryObserve|MetricsFinished' ./control/

// loginRecord is the record of a go-mssqldb TDS 7.x login that succeeded
// and that the client closed, as the sink gets it (diagnosis applied).
func loginRecord(id uint64, port int) *proxy.Record {
	start := time.Unix(1_700_000_000, 0).Add(time.Duration(id) * time.Millisecond)
	ms := func(n int) time.Duration { return time.Duration(n) * 100 * time.Microsecond }
	rec := &proxy.Record{
		ID: id, Proxy: "sql", Client: fmt.Sprintf("127.0.0.1:%d", port), Listener: "127.0.0.1:11433",
		Upstream: "127.0.0.1:1433", Start: start, End: start.Add(ms(30)),
		Protocol: proxy.ProtocolTDS7, Phase: proxy.PhaseEstablished,
		Login: &proxy.LoginInfo{Outcome: proxy.LoginOK, Visible: false},
		TLS: &proxy.TLSInfo{Version: "TLS 1.2", CipherSuite: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
			ClientHello: &proxy.ClientHelloInfo{HighestVersion: "TLS 1.3"},
			ServerHello: &proxy.ServerHelloInfo{Version: "TLS 1.2", CipherSuite: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}},
		Close:               &proxy.CloseInfo{By: proxy.SideClient, Kind: proxy.CloseFIN, Phase: proxy.PhaseEstablished},
		BytesClientToServer: 1500, BytesServerToClient: 3000,
	}
	for i, p := range proxy.Phases {
		rec.Phases = append(rec.Phases, proxy.PhaseMark{Phase: p, At: ms(i * 3), Encrypted: i >= 5})
	}
	diagnose.Apply(rec, diagnose.Options{})
	return rec
}

// BenchmarkRetryObserve is the retry tracker's work per connection, with
// its chains full (every login of a busy client is a chain of its own).
func BenchmarkRetryObserve(b *testing.B) {
	t := newRetryTracker(nil)
	recs := make([]*proxy.Record, 2*maxChains)
	for i := range recs {
		recs[i] = loginRecord(uint64(i+1), 10000+i)
	}
	for _, r := range recs[:maxChains] {
		t.observe(r)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := recs[i%len(recs)]
		r.Retry = nil
		t.observe(r)
		i++
	}
}

// BenchmarkMetricsFinished is the metrics' work per connection.
func BenchmarkMetricsFinished(b *testing.B) {
	m, err := newMetrics(&Instance{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	rec := loginRecord(1, 10000)
	b.ReportAllocs()
	for b.Loop() {
		m.finished(rec)
	}
}
