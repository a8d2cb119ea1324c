package control_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// freeAddr returns a loopback address no one listens on (for a moment).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// An upstream equal to the proxy's own listen address is refused when it is
// set, naming upstream: in the API (400), AddProxy and Apply (issue 18
// item 8). Before, the proxy was listed as bound and never served.
func TestSelfLoopRefused(t *testing.T) {
	in := newInstance(t, control.Options{})
	base := serveAdmin(t, in, "")
	addr := freeAddr(t)
	status, body := call(t, "POST", base+"/proxies", `{"name": "loop", "listen": "`+addr+`", "upstream": "`+addr+`"}`, "")
	wantStatus(t, status, body, 400, "upstream: ")

	err := in.AddProxy(proxy.Config{Name: "loop", Listen: addr, Upstream: addr}, nil)
	var ie *control.InvalidError
	if !errors.As(err, &ie) || !errors.Is(err, proxy.ErrSelfLoop) || !strings.HasPrefix(err.Error(), "upstream: ") {
		t.Errorf("AddProxy: %v, want an InvalidError naming upstream", err)
	}
	err = in.Apply(testConfig(configs.ProxyConfig{Name: "loop", Listen: addr, Upstream: addr}))
	kes := configs.KeyErrors(err)
	if len(kes) != 1 || kes[0].Key != "proxies[0].upstream" {
		t.Errorf("Apply: %v, want proxies[0].upstream", err)
	}
	if n := len(in.Proxies()); n != 0 {
		t.Errorf("%d proxies running after the refusals", n)
	}
	// The port is free again: nothing kept it bound.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the refused proxy's address is still bound: %v", err)
	}
	ln.Close()
}

// The API takes the option values YAML takes, and every error names the
// key by its whole path, never a Go type (issue 18 item 11 and the smaller
// bullets: a trailing second JSON value, nested PATCH keys, rule names).
func TestAPIRuleInput(t *testing.T) {
	in := newInstance(t, control.Options{})
	base := serveAdmin(t, in, "")
	addr := freeAddr(t)
	status, body := call(t, "POST", base+"/proxies", `{"name": "p", "listen": "127.0.0.1:0", "upstream": "`+addr+`",
		"faults": [{"name": "r", "scenario": "delayed-accept", "options": {"reject": true}}]}`, "")
	wantStatus(t, status, body, 201, `"reject": "true"`)

	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/proxies", `{"name": "q", "listen": "127.0.0.1:0", "upstream": "` + addr + `", "faults": [{"name": "r", "scenario": "delayed-accept", "options": {"login_delay": 20}}]}`, 400, "faults[0].options.login_delay: "},
		{"POST", "/proxies", `{"name": "q", "listen": "127.0.0.1:0", "upstream": "` + addr + `", "faults": [{"name": "r", "scenario": "delayed-accept", "options": {"reject": [1]}}]}`, 400, "faults[0].options.reject: "},
		{"POST", "/proxies/p/faults", `{"name": "s", "scenario": "delayed-accept", "options": {"login_delay": "20s"}} {"name": "t"}`, 400, "more than one JSON value"},
		{"POST", "/proxies/p/faults", `{"name": "a/b", "scenario": "delayed-accept", "options": {"reject": true}}`, 400, "name: "},
		{"POST", "/proxies/p/faults", `{"name": "x\u001b[31m", "scenario": "delayed-accept", "options": {"reject": true}}`, 400, "name: "},
		{"POST", "/proxies/p/faults", `{"name": "w", "scenario": "delayed-accept", "options": {"reject": true}, "match": {"window": {"every": "1e9h", "for": "1s"}}}`, 400, "match.window.every: "},
		{"PUT", "/proxies/p/faults", `[{"name": "ok", "scenario": "delayed-accept", "options": {"reject": true}}, {"name": "bad", "scenario": "delayed-accept", "match": {"first": "x"}}]`, 400, "faults[1].match.first: must be a whole number"},
		{"PUT", "/proxies/p/faults", `[{"name": "ok", "scenario": "delayed-accept", "options": {"reject": true}}, {"name": "bad", "scenario": "delayed-accept", "options": {"reject": true}, "match": {"probability": 2}}]`, 400, "faults[1].match.probability: "},
		{"PATCH", "/proxies/p/faults/r", `{"match": {"a": 1}}`, 400, "match.a: unknown key"},
		{"PATCH", "/proxies/p/faults/r", `{"options": {"backlog": 4, "accept_delay": "1s"}}`, 200, `"backlog": "4"`},
	} {
		status, body := call(t, tc.method, base+tc.path, tc.body, "")
		wantStatus(t, status, body, tc.status, tc.want)
		for _, goType := range []string{"uint64", "float64", "string, got", "faults.", "ProxyRequest"} {
			if tc.status >= 400 && strings.Contains(string(body), goType) {
				t.Errorf("%s %s: %s names a Go type", tc.method, tc.path, body)
			}
		}
	}
	rules, err := in.Faults("p")
	if err != nil || len(rules) != 1 || rules[0].Name != "r" {
		t.Errorf("rules after the refusals: %v, %v", rules, err)
	}
}

// gather returns the series of name whose labels include want.
func gather(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []*dto.Metric
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			out = append(out, m)
		}
	}
	return out
}

// A deleted rule's series and a removed proxy's series go with them, so
// churn does not grow the label sets (issue 18, metric series bullet).
func TestMetricSeriesOfDeletedRulesAndProxies(t *testing.T) {
	in := newInstance(t, control.Options{})
	reg := in.Registry()
	upstream := freeAddr(t)
	addr := addProxy(t, in, "p", upstream)
	reject := faults.RuleSpec{Name: "cut", Scenario: faults.ScenarioDelayedAccept, Options: faults.OptionValues{"reject": "true"}}
	if _, err := in.AddFault("p", reject); err != nil {
		t.Fatal(err)
	}
	// The rule resets the connection at accept; the dial may see it.
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
	}
	testkit.WaitFor(t, func() bool { return len(in.Records(control.RecordQuery{}).Records) > 0 }, 10*time.Second, "the rejected connection's record")
	if n := len(gather(t, reg, control.MetricFaultsInjected, map[string]string{"rule": "cut"})); n == 0 {
		t.Fatal("no injection counted for rule cut")
	}
	if err := in.DeleteFault("p", "cut"); err != nil {
		t.Fatal(err)
	}
	if n := len(gather(t, reg, control.MetricFaultsInjected, map[string]string{"rule": "cut"})); n != 0 {
		t.Errorf("%d series of the deleted rule remain", n)
	}
	if n := len(gather(t, reg, control.MetricCloses, map[string]string{"proxy": "p"})); n == 0 {
		t.Fatal("no close counted for proxy p")
	}
	if err := in.RemoveProxy(context.Background(), "p", ""); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, func() bool {
		for _, name := range []string{control.MetricCloses, control.MetricConnections, control.MetricBytes, control.MetricAcceptWaitSeconds} {
			if len(gather(t, reg, name, map[string]string{"proxy": "p"})) > 0 {
				return false
			}
		}
		return true
	}, 10*time.Second, "the removed proxy's series to go")
}

// GET /proxies/{name} counts the connections still draining on a proxy of
// that name that a reload replaced (issue 18, smaller bullets).
func TestProxyInfoCountsDrainingConnections(t *testing.T) {
	in := newInstance(t, control.Options{})
	listen := freeAddr(t)
	if err := in.Apply(testConfig(configs.ProxyConfig{Name: "p", Listen: listen, Upstream: testkit.StartEcho(t)})); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if err := in.Apply(testConfig(configs.ProxyConfig{Name: "p", Listen: listen, Upstream: testkit.StartEcho(t)})); err != nil {
		t.Fatal(err)
	}
	pi, err := in.Proxy("p")
	if err != nil {
		t.Fatal(err)
	}
	if pi.Connections != 1 {
		t.Errorf("connections = %d after the replacement, want the 1 still draining", pi.Connections)
	}
}

// A configuration refused before Apply (a file that does not load) counts
// as a rejected reload (issue 18 item 10).
func TestReloadRejectedCounted(t *testing.T) {
	in := newInstance(t, control.Options{})
	in.ReloadRejected()
	_ = in.Apply(testConfig()) // no proxies: refused by validation
	ms := gather(t, in.Registry(), control.MetricConfigReloads, map[string]string{"result": "rejected"})
	if len(ms) != 1 || ms[0].GetCounter().GetValue() != 2 {
		t.Errorf("rejected reloads = %v, want 2", ms)
	}
}
