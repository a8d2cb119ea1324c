package control_test

import (
	"bufio"
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	wire "github.com/tdsproxy/tdsproxy/control/api"

	"github.com/tdsproxy/tdsproxy/internal/testkit"

	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// attempt is one connection a chaos client made: connect, SELECT 1, close.
type attempt struct {
	client int
	local  string
	err    error
}

// chaosGroups: which clients each rule targets, by index. Clients 30..49
// match no rule at all.
var chaosGroups = map[string][2]int{
	"reject-a":  {0, 10},  // delayed-accept, reject: RST at accept
	"old-tls-b": {10, 20}, // protocol-mismatch: RST (later FIN) at the ClientHello
	"cipher-c":  {20, 30}, // cipher-mismatch with probability 0.5, then 1
}

func groupIPs(name string) []string {
	g := chaosGroups[name]
	var out []string
	for i := g[0]; i < g[1]; i++ {
		out = append(out, chaosIP(i).String())
	}
	return out
}

// chaosIP is client i's local address: 127.0.0.10 and up, so rules can
// match clients by address.
func chaosIP(i int) net.IP { return loopbackIP(10 + i) }

// The chaos test: 50 go-mssqldb clients connect and query in a loop while
// rules are added, patched and removed through the admin API. Every
// connection no rule hit succeeds; every one a rule hit fails with that
// scenario's go-mssqldb error; the records and the metrics agree with what
// the clients saw.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test: about 8 s")
	}
	const clients = 50
	emu := testkit.StartEmulator(t, emulator.Config{})
	// The test's own count of injections, called in the same chain as the
	// metrics (New keeps an OnInject already set): the metric series of a
	// rule go when the rule goes (reset below), so the counts are checked
	// here and the series' removal at the end.
	engine := faults.NewEngine(nil)
	var injMu sync.Mutex
	hooked := map[string]int{}
	engine.OnInject = func(_, rule, _ string, _ proxy.Phase, _ string) {
		injMu.Lock()
		hooked[rule]++
		injMu.Unlock()
	}
	in := newInstance(t, control.Options{RecordRing: 50000, Engine: engine})
	addr := addProxy(t, in, "chaos", emu.Addr())
	api := newClient(serveAdmin(t, in, ""), "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The clients: each connects, runs SELECT 1 and closes, until stop.
	stop := make(chan struct{})
	var mu sync.Mutex
	var attempts []attempt
	var wg sync.WaitGroup
	for i := range clients {
		c := newSQLClient(t, addr, chaosIP(i), "app", "pw", "false")
		wg.Go(func() {
			for n := 0; n < 400; n++ { // bounded; stop normally comes first
				select {
				case <-stop:
					return
				default:
				}
				actx, acancel := context.WithTimeout(ctx, 15*time.Second)
				local, err := c.queryOnce(actx, "SELECT 1")
				acancel()
				mu.Lock()
				attempts = append(attempts, attempt{client: i, local: local, err: err})
				mu.Unlock()
				time.Sleep(15 * time.Millisecond)
			}
		})
	}

	// The chaos, through the API. Before each change every client has
	// finished two more connections under the rules as they are, so each
	// state of the rules is exercised by every client group (no pacing by
	// the clock).
	perClient := func() []int {
		mu.Lock()
		defer mu.Unlock()
		n := make([]int, clients)
		for _, a := range attempts {
			n[a.client]++
		}
		return n
	}
	seen := perClient()
	settle := func(what string) {
		t.Helper()
		testkit.WaitFor(t, func() bool {
			now := perClient()
			for i := range now {
				if now[i] < seen[i]+2 {
					return false
				}
			}
			seen = now
			return true
		}, 40*time.Second, "every client to finish two connections before "+what)
	}
	step := func(what string, f func() error) {
		t.Helper()
		settle(what)
		if err := f(); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	half, seed := 0.5, uint64(7)
	step("add reject-a", func() error {
		_, err := api.AddFault(ctx, "chaos", wire.Rule{Name: "reject-a", Scenario: faults.ScenarioDelayedAccept,
			Options: map[string]string{"reject": "true"}, Match: wire.Match{Clients: groupIPs("reject-a")}})
		return err
	})
	step("add old-tls-b", func() error {
		_, err := api.AddFault(ctx, "chaos", wire.Rule{Name: "old-tls-b", Scenario: faults.ScenarioProtocolMismatch,
			Options: map[string]string{"server_tls": "1.0"}, Match: wire.Match{Clients: groupIPs("old-tls-b")}})
		return err
	})
	step("add cipher-c", func() error {
		_, err := api.AddFault(ctx, "chaos", wire.Rule{Name: "cipher-c", Scenario: faults.ScenarioCipherMismatch,
			Options: map[string]string{"server_ciphers": "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"},
			Match:   wire.Match{Clients: groupIPs("cipher-c"), Probability: &half}, Seed: seed})
		return err
	})
	step("patch old-tls-b to FIN", func() error {
		_, err := api.PatchFault(ctx, "chaos", "old-tls-b", map[string]any{"close": "fin"})
		return err
	})
	step("delete reject-a", func() error { return api.DeleteFault(ctx, "chaos", "reject-a") })
	step("patch cipher-c to always", func() error {
		r, err := api.PatchFault(ctx, "chaos", "cipher-c", map[string]any{"match": map[string]any{"probability": nil}})
		if err == nil && (r.Match.Probability != nil || len(r.Match.Clients) != 10) {
			t.Errorf("patched cipher-c = %+v, want no probability and its 10 clients", r.Match)
		}
		return err
	})
	step("reset", func() error { return api.Reset(ctx) })
	settle("stopping")
	close(stop)
	wg.Wait()

	// Every finished connection's record, through the API, paging.
	var recs []proxy.Record
	var next uint64
	testkit.Poll(func() bool {
		page, err := api.Records(ctx, control.RecordQuery{After: next, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		if page.Missed > 0 {
			t.Fatalf("the ring dropped %d records", page.Missed)
		}
		recs = append(recs, page.Records...)
		next = page.Next
		return len(recs) >= len(attempts)
	}, 15*time.Second)
	if len(recs) != len(attempts) {
		t.Fatalf("%d records for %d client connections", len(recs), len(attempts))
	}

	// Pair each client connection with its record: each client has its own
	// address and connects one connection at a time, and ids count
	// accepts, so the k-th record from a client's address (by id) is its
	// k-th connection. (A reset at accept can fail the client's connect
	// itself, before it learns its port: pair by address, not port.)
	slices.SortFunc(recs, func(a, b proxy.Record) int { return int(a.ID) - int(b.ID) })
	byIP := map[string][]proxy.Record{}
	for _, r := range recs {
		host, _, _ := net.SplitHostPort(r.Client)
		byIP[host] = append(byIP[host], r)
	}
	injected := map[string]int{}
	kinds := map[string]int{}
	succeeded := 0
	for _, a := range attempts {
		ip := chaosIP(a.client).String()
		list := byIP[ip]
		if len(list) == 0 {
			t.Fatalf("client %d: no record for its connection (%v)", a.client, a.err)
		}
		r := list[0]
		byIP[ip] = list[1:]
		if a.local != "" && a.local != r.Client {
			t.Fatalf("client %d: connection from %s paired with record %d from %s", a.client, a.local, r.ID, r.Client)
		}

		var hit *proxy.FaultEvent
		for i := range r.Faults {
			if strings.HasPrefix(r.Faults[i].Action, "close:") {
				hit = &r.Faults[i]
			}
		}
		if hit == nil {
			if a.err != nil {
				t.Errorf("client %d, connection %d: no rule hit it, but it failed: %v", a.client, r.ID, a.err)
			} else {
				succeeded++
			}
			continue
		}
		injected[hit.Rule]++
		if g, ok := chaosGroups[hit.Rule]; !ok || a.client < g[0] || a.client >= g[1] {
			t.Errorf("client %d, connection %d: hit by rule %q, which does not match it", a.client, r.ID, hit.Rule)
		}
		kind := string(hit.Phase) + " " + hit.Action
		kinds[hit.Rule+" "+kind]++
		if a.err == nil {
			t.Errorf("client %d, connection %d: rule %s closed it (%s), but the query succeeded", a.client, r.ID, hit.Rule, kind)
			continue
		}
		if want := expectedError(hit); !want(a.err.Error()) {
			t.Errorf("client %d, connection %d: rule %s (%s): go-mssqldb said %q, not that scenario's error", a.client, r.ID, hit.Rule, kind, a.err)
		}
	}
	t.Logf("%d connections, %d succeeded; injected %v", len(attempts), succeeded, kinds)
	for _, k := range []string{"reject-a tcp.accept close:rst", "old-tls-b tls.client_hello close:rst",
		"old-tls-b tls.client_hello close:fin", "cipher-c tls.client_hello close:rst"} {
		if kinds[k] == 0 {
			t.Errorf("no connection saw %q: the test did not exercise it", k)
		}
	}
	if succeeded == 0 {
		t.Error("no connection succeeded")
	}

	// The injections counted agree with the records.
	injMu.Lock()
	for rule, n := range injected {
		if hooked[rule] != n {
			t.Errorf("%d injections of rule %q counted, the records show %d", hooked[rule], rule, n)
		}
	}
	injMu.Unlock()
	// Every rule is gone (reset): so are their series, once a rule change
	// has swept any an in-flight connection counted after the reset.
	if err := api.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	text, err := api.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, control.MetricFaultsInjected+"{") {
		t.Errorf("%s series remain after every rule was removed", control.MetricFaultsInjected)
	}
	if got := metricSum(t, text, control.MetricConnections, `proxy="chaos"`); got != float64(len(attempts)) {
		t.Errorf("%s = %v, the clients made %d connections", control.MetricConnections, got, len(attempts))
	}
	if got := metricSum(t, text, control.MetricConnections, `proxy="chaos"`, `outcome="ok"`); got != float64(succeeded) {
		t.Errorf("%s{outcome=ok} = %v, %d connections succeeded", control.MetricConnections, got, succeeded)
	}
	if got := metricSum(t, text, control.MetricConnectionsActive, `proxy="chaos"`); got != 0 {
		t.Errorf("%s = %v after every client closed", control.MetricConnectionsActive, got)
	}
	if got := metricSum(t, text, control.MetricTLSHandshakes, `proxy="chaos"`); got != float64(succeeded) {
		t.Errorf("%s = %v, want one per successful connection (%d)", control.MetricTLSHandshakes, got, succeeded)
	}
}

// expectedError is what go-mssqldb reports for a close at that phase in
// that style (docs/protocol.md, "What clients report").
func expectedError(ev *proxy.FaultEvent) func(string) bool {
	has := func(subs ...string) func(string) bool {
		return func(s string) bool {
			for _, sub := range subs {
				if !strings.Contains(s, sub) {
					return false
				}
			}
			return true
		}
	}
	switch {
	case ev.Phase == proxy.PhaseAccept:
		// Reset before the server said anything: the PRELOGIN write or
		// the read of its answer meets the RST.
		return func(s string) bool {
			return !strings.Contains(s, "TLS") && (strings.Contains(s, "connection reset by peer") || strings.Contains(s, "broken pipe"))
		}
	case ev.Action == "close:fin":
		return has("TLS Handshake failed", "EOF")
	default:
		return has("TLS Handshake failed", "connection reset by peer")
	}
}

// metricSum adds up the samples of metric in the Prometheus text format
// whose labels include every one of labels (written name="value").
func metricSum(t *testing.T, text, metric string, labels ...string) float64 {
	t.Helper()
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, metric)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		lbls, val := "", rest
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndex(rest, "}")
			lbls, val = rest[1:end], rest[end+1:]
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(","+lbls+",", ","+l+",") {
				match = false
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}
