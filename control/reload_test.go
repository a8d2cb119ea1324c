package control_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/testkit"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
)

// testConfig returns a valid configuration with these proxies.
func testConfig(proxies ...configs.ProxyConfig) *configs.Config {
	cfg := &configs.Config{Admin: configs.AdminConfig{Listen: configs.AdminDisabled}, Proxies: proxies}
	cfg.ApplyDefaults()
	for i := range cfg.Proxies {
		if cfg.Proxies[i].DialTimeout == 0 {
			cfg.Proxies[i].DialTimeout = 5 * time.Second
		}
	}
	return cfg
}

// streamer is a client holding one connection and streaming SELECT large
// on it until stop.
type streamer struct {
	queries atomic.Int64
	err     atomic.Pointer[error]
}

func (s *streamer) run(ctx context.Context, c *sqlClient, stop <-chan struct{}, ready *sync.WaitGroup) {
	conn, err := c.connect(ctx)
	if err != nil {
		s.err.Store(&err)
		ready.Done()
		return
	}
	defer conn.Close()
	for n := 0; n < 10000; n++ { // bounded; stop comes first
		if _, err := query(ctx, conn, "SELECT large(100, 1000)", 2*time.Millisecond); err != nil {
			s.err.Store(&err)
			if n == 0 {
				ready.Done()
			}
			return
		}
		if s.queries.Add(1) == 1 {
			ready.Done()
		}
		select {
		case <-stop:
			return
		default:
		}
	}
}

// Reload under load: 50 clients stream results while the configuration
// is replaced (a proxy's upstream changed, one proxy removed, one added,
// rules changed), then two invalid configurations are refused. No
// established connection drops; the running configuration survives the
// invalid ones.
func TestApplyUnderLoad(t *testing.T) {
	const clients = 50
	emu1 := testkit.StartEmulator(t, emulator.Config{})
	emu2 := testkit.StartEmulator(t, emulator.Config{ServerName: "EMU2"})
	in := newInstance(t, control.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	v1 := testConfig(
		configs.ProxyConfig{Name: "main", Listen: "127.0.0.1:0", Upstream: emu1.Addr()},
		configs.ProxyConfig{Name: "side", Listen: "127.0.0.1:0", Upstream: emu1.Addr()},
	)
	if err := in.Apply(v1); err != nil {
		t.Fatalf("Apply(v1): %v", err)
	}
	mainPI, _ := in.Proxy("main")
	sidePI, _ := in.Proxy("side")

	stop := make(chan struct{})
	var ready, done sync.WaitGroup
	streams := make([]*streamer, clients)
	for i := range clients {
		addr := mainPI.Addr
		if i%5 == 0 {
			addr = sidePI.Addr
		}
		c := newSQLClient(t, addr, nil, "app", "pw", "false")
		streams[i] = &streamer{}
		ready.Add(1)
		done.Go(func() { streams[i].run(ctx, c, stop, &ready) })
	}
	ready.Wait()
	for i, s := range streams {
		if e := s.err.Load(); e != nil {
			t.Fatalf("client %d failed before the reload: %v", i, *e)
		}
	}
	before := make([]int64, clients)
	for i, s := range streams {
		before[i] = s.queries.Load()
	}

	// v2: main moves to emu2 (same listen: it takes over the socket), a
	// rule for one client address, side removed, extra added.
	v2 := testConfig(
		configs.ProxyConfig{Name: "main", Listen: "127.0.0.1:0", Upstream: emu2.Addr(), Faults: []map[string]any{
			{"name": "old-tls", "scenario": "protocol-mismatch", "options": map[string]any{"server_tls": "1.0"},
				"match": map[string]any{"clients": []any{"127.0.0.200"}}},
		}},
		configs.ProxyConfig{Name: "extra", Listen: "127.0.0.1:0", Upstream: emu1.Addr()},
	)
	if err := in.Apply(v2); err != nil {
		t.Fatalf("Apply(v2): %v", err)
	}
	names := []string{}
	for _, p := range in.Proxies() {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "extra,main" {
		t.Errorf("proxies after v2 = %v, want extra,main", names)
	}
	newMain, _ := in.Proxy("main")
	if newMain.Addr != mainPI.Addr || newMain.Upstream != emu2.Addr() {
		t.Errorf("main after v2 = %+v, want the same address %s relaying to emu2", newMain, mainPI.Addr)
	}
	if n := len(in.Connections()); n != clients {
		t.Errorf("%d open connections after v2, want all %d (side's included)", n, clients)
	}

	// New connections follow v2; the old ones go on.
	emu2Before := emu2.Stats().LoginsOK
	if _, err := newSQLClient(t, mainPI.Addr, nil, "app", "pw", "false").queryOnce(ctx, "SELECT 1"); err != nil {
		t.Errorf("a new connection to main after v2: %v", err)
	} else if emu2.Stats().LoginsOK != emu2Before+1 {
		t.Error("a new connection to main after v2 did not reach the new upstream")
	}
	if _, err := newSQLClient(t, mainPI.Addr, loopbackIP(200), "app", "pw", "false").queryOnce(ctx, "SELECT 1"); err == nil ||
		!strings.Contains(err.Error(), "TLS Handshake failed") {
		t.Errorf("a connection from 127.0.0.200 after v2 = %v, want the protocol-mismatch reset", err)
	}
	if c, err := net.DialTimeout("tcp", sidePI.Addr, 2*time.Second); err == nil {
		c.Close()
		t.Error("the removed proxy side still accepts")
	}

	// Invalid configurations: refused, naming the key; v2 stays.
	for _, tt := range []struct {
		name string
		cfg  *configs.Config
		key  string
	}{
		{"bad upstream", testConfig(configs.ProxyConfig{Name: "main", Listen: "127.0.0.1:0", Upstream: "db:abc"}), "proxies[0].upstream"},
		{"bad rule", testConfig(configs.ProxyConfig{Name: "main", Listen: "127.0.0.1:0", Upstream: emu1.Addr(), Faults: []map[string]any{
			{"name": "x", "scenario": "protocol-mismatch", "options": map[string]any{"server_tls": "9.9"}},
		}}), "proxies[0].faults[0].options.server_tls"},
	} {
		err := in.Apply(tt.cfg)
		var ie *control.InvalidError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("Apply(%s) = %v, want an InvalidError naming %s", tt.name, err, tt.key)
		}
		if kes := configs.KeyErrors(err); len(kes) == 0 || kes[0].Key != tt.key {
			t.Errorf("Apply(%s): KeyErrors = %v, want %s", tt.name, kes, tt.key)
		}
		if p, err := in.Proxy("main"); err != nil || p.Upstream != emu2.Addr() || len(p.Faults) != 1 {
			t.Errorf("after Apply(%s) main = %+v, %v; want v2's", tt.name, p, err)
		}
	}

	// Let every stream run a few more queries, then stop.
	testkit.WaitFor(t, func() bool {
		for i := range clients {
			if streams[i].queries.Load() < before[i]+2 && streams[i].err.Load() == nil {
				return false
			}
		}
		return true
	}, 20*time.Second, "every stream to run two more queries")
	close(stop)
	done.Wait()
	for i, s := range streams {
		if e := s.err.Load(); e != nil {
			t.Errorf("client %d: its connection dropped: %v", i, *e)
		} else if s.queries.Load() < before[i]+2 {
			t.Errorf("client %d: %d queries after the reload, want at least 2", i, s.queries.Load()-before[i])
		}
	}

	text := metricsText(t, in)
	if got := metricSum(t, text, control.MetricConfigReloads, `result="ok"`); got != 2 {
		t.Errorf("reloads ok = %v, want 2", got)
	}
	if got := metricSum(t, text, control.MetricConfigReloads, `result="rejected"`); got != 2 {
		t.Errorf("reloads rejected = %v, want 2", got)
	}
}

// metricsText scrapes the instance's /metrics through its handler.
func metricsText(t *testing.T, in *control.Instance) string {
	t.Helper()
	base := serveAdmin(t, in, "")
	_, b := call(t, "GET", base+"/metrics", "", "")
	return string(b)
}

// Apply keeps rules changed through the API unless the file changed them,
// and a proxy's rules in the file are swapped as a set.
func TestApplyRules(t *testing.T) {
	emu := testkit.StartEmulator(t, emulator.Config{})
	in := newInstance(t, control.Options{})
	rule := func(name string) map[string]any {
		return map[string]any{"name": name, "action": "latency", "options": map[string]any{"latency": "1ms"}}
	}
	cfg := func(rules ...map[string]any) *configs.Config {
		return testConfig(configs.ProxyConfig{Name: "p", Listen: "127.0.0.1:0", Upstream: emu.Addr(), Faults: rules})
	}
	ruleNames := func() string {
		rs, err := in.Faults("p")
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, r := range rs {
			n = append(n, r.Name)
		}
		return strings.Join(n, ",")
	}
	if err := in.Apply(cfg(rule("a"))); err != nil {
		t.Fatal(err)
	}
	if err := in.DeleteFault("p", "a"); err != nil {
		t.Fatal(err)
	}
	if err := in.Apply(cfg(rule("a"))); err != nil {
		t.Fatal(err)
	}
	if got := ruleNames(); got != "" {
		t.Errorf("rules after an unchanged reload = %q, want the API's change kept (none)", got)
	}
	if err := in.Apply(cfg(rule("a"), rule("b"))); err != nil {
		t.Fatal(err)
	}
	if got := ruleNames(); got != "a,b" {
		t.Errorf("rules after the file changed them = %q, want a,b", got)
	}
	pi, _ := in.Proxy("p")
	// A proxy added through the API and absent from the file goes.
	if err := in.AddProxy(proxyConfig("api", emu.Addr()), nil); err != nil {
		t.Fatal(err)
	}
	if err := in.Apply(cfg(rule("a"), rule("b"))); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Proxy("api"); !errors.Is(err, control.ErrNoProxy) {
		t.Errorf("proxy api after a reload without it: %v, want ErrNoProxy", err)
	}
	if again, _ := in.Proxy("p"); again.Addr != pi.Addr {
		t.Errorf("unchanged proxy moved from %s to %s", pi.Addr, again.Addr)
	}
	// A proxy renamed on a fixed address takes the old one's socket over.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fixed := free.Addr().String()
	free.Close()
	withFixed := func(name string) *configs.Config {
		c := cfg(rule("a"), rule("b"))
		c.Proxies = append(c.Proxies, configs.ProxyConfig{Name: name, Listen: fixed, Upstream: emu.Addr(), DialTimeout: time.Second})
		return c
	}
	if err := in.Apply(withFixed("old-name")); err != nil {
		t.Fatal(err)
	}
	if err := in.Apply(withFixed("new-name")); err != nil {
		t.Fatalf("renaming the proxy on %s: %v", fixed, err)
	}
	if p, err := in.Proxy("new-name"); err != nil || p.Addr != fixed {
		t.Errorf("renamed proxy = %+v, %v; want it on %s", p, err, fixed)
	}
	if _, err := in.Proxy("old-name"); !errors.Is(err, control.ErrNoProxy) {
		t.Errorf("old-name after the rename: %v, want ErrNoProxy", err)
	}
	if _, err := newSQLClient(t, fixed, nil, "app", "pw", "false").queryOnce(context.Background(), "SELECT 1"); err != nil {
		t.Errorf("a connection to the renamed proxy: %v", err)
	}

	// An address that cannot be bound refuses the whole configuration.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bad := cfg()
	bad.Proxies = append(bad.Proxies, configs.ProxyConfig{Name: "q", Listen: busy.Addr().String(), Upstream: emu.Addr(), DialTimeout: time.Second})
	if err := in.Apply(bad); err == nil || !strings.Contains(err.Error(), "proxies[1].listen") {
		t.Errorf("Apply with a busy address = %v, want an error naming proxies[1].listen", err)
	}
	if got := ruleNames(); got != "a,b" {
		t.Errorf("rules after a refused reload = %q, want a,b", got)
	}
}
