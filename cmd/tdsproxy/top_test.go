package main

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/testkit"

	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// tdsproxy top --once prints one frame from a running instance's admin
// API: its proxies and rules, the open connection, the finished one and
// the fault injected into it.
func TestTopOnce(t *testing.T) {
	upstream := testkit.StartEcho(t)
	in, err := control.New(control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := in.AddProxy(proxy.Config{Name: "lab", Listen: "127.0.0.1:0", Upstream: upstream}, nil); err != nil {
		t.Fatal(err)
	}
	pi, _ := in.Proxy("lab")
	admin, err := in.ServeAdmin("127.0.0.1:0", "tok")
	if err != nil {
		t.Fatal(err)
	}

	// One connection reset by a rule, then one left open.
	if _, err := in.AddFault("lab", faults.RuleSpec{Name: "refuse-first", Scenario: faults.ScenarioDelayedAccept,
		Options: map[string]string{"reject": "true"}, Match: faults.Match{First: 1}}); err != nil {
		t.Fatal(err)
	}
	// The reset may even beat the dial's return.
	if first, err := net.DialTimeout("tcp", pi.Addr, 5*time.Second); err == nil {
		_ = first.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.ReadAll(first)
		first.Close()
	}
	live, err := net.DialTimeout("tcp", pi.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	_ = live.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := live.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(live, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, func() bool { return len(in.Records(control.RecordQuery{}).Records) > 0 },
		5*time.Second, "the first connection's record")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := execute(t, ctx, "top", "--once", "--admin", admin.String(), "--token", "tok")
	if err != nil {
		t.Fatalf("top --once: %v\n%s", err, out)
	}
	for _, want := range []string{
		"1 proxies, 1 open connections",
		"refuse-first (delayed-accept)",
		"OPEN CONNECTIONS", live.LocalAddr().String(),
		"RECENTLY FINISHED", "tcp.accept", "rst",
		"INJECTED FAULTS", "close:rst",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("top --once output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("top --once printed terminal control codes")
	}

	t.Run("errors", func(t *testing.T) {
		_, err := execute(t, ctx, "top", "--once", "--admin", admin.String(), "--token", "wrong")
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("top with a wrong token: %v, want the 401", err)
		}
		_, err = execute(t, ctx, "top", "--interval", "0s")
		wantUsageError(t, err, "--interval")
	})
}

// A frame's layout, from fixed records.
func TestRenderTop(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	live := []proxy.Record{{
		ID: 7, Proxy: "p", Client: "10.0.0.5:50000", Phase: proxy.PhaseEstablished, Start: now.Add(-95 * time.Second),
		TLS:                 &proxy.TLSInfo{Version: "TLS 1.2", CipherSuite: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
		BytesClientToServer: 2048, BytesServerToClient: 5 << 20,
	}}
	done := []proxy.Record{{
		ID: 6, Proxy: "p", Client: "10.0.0.6:50001", Phase: proxy.PhaseTLSClientHello, Start: now.Add(-2 * time.Second), End: now.Add(-1500 * time.Millisecond),
		Close:  &proxy.CloseInfo{By: proxy.SideProxy, Kind: proxy.CloseRST, Phase: proxy.PhaseTLSClientHello},
		Faults: []proxy.FaultEvent{{Rule: "old", Scenario: "protocol-mismatch", Phase: proxy.PhaseTLSClientHello, Action: "close:rst", Detail: "client offers TLS 1.2, TLS 1.3; emulated server allows only TLS 1.0", At: 100 * time.Millisecond}},
	}}
	out := renderTop("http://127.0.0.1:8475", now, []control.ProxyInfo{{Name: "p", Addr: "127.0.0.1:11433", Upstream: "db:1433", Connections: 1}}, live, done, 10)
	for _, want := range []string{
		"p      127.0.0.1:11433  db:1433   1     -",
		"7   p      10.0.0.5:50000  established  TLS 1.2  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384  2.0KiB  5.0MiB  1m35s",
		"6   p      10.0.0.6:50001  tls.client_hello  proxy      rst  tls.client_hello  -    500ms     old",
		"1s ago  6     p      old   protocol-mismatch  tls.client_hello  close:rst",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("frame lacks %q:\n%s", want, out)
		}
	}
}
