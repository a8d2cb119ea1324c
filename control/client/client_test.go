package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/control/api"

	"github.com/tdsproxy/tdsproxy/internal/testkit"

	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/control/client"
)

// Every client method against a running instance.
func TestClient(t *testing.T) {
	echo := testkit.StartEcho(t)
	in, err := control.New(control.Options{Version: "test-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	addr, err := in.ServeAdmin("127.0.0.1:0", "tok")
	if err != nil {
		t.Fatal(err)
	}
	c := client.New("http://"+addr.String()+"/", "tok")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	if err := c.Health(ctx); err != nil {
		t.Errorf("Health: %v", err)
	}
	if v, err := c.Version(ctx); err != nil || v.Version != "test-1" || !strings.HasPrefix(v.Go, "go") {
		t.Errorf("Version = %+v, %v", v, err)
	}
	p, err := c.AddProxy(ctx, control.ProxyRequest{Name: "e", Listen: "127.0.0.1:0", Upstream: echo,
		DialTimeout: api.Duration(2 * time.Second)})
	must(err)
	if p.Addr == "" || p.DialTimeout != api.Duration(2*time.Second) {
		t.Errorf("AddProxy = %+v", p)
	}
	if ps, err := c.Proxies(ctx); err != nil || len(ps) != 1 || ps[0].Name != "e" {
		t.Errorf("Proxies = %+v, %v", ps, err)
	}
	if got, err := c.Proxy(ctx, "e"); err != nil || got.Addr != p.Addr {
		t.Errorf("Proxy = %+v, %v", got, err)
	}

	slow := api.Rule{Name: "slow", Action: "latency", Options: map[string]string{"latency": "1ms"}}
	r, err := c.AddFault(ctx, "e", slow)
	must(err)
	if r.Seed == 0 {
		t.Error("AddFault: the installed rule has no seed")
	}
	if got, err := c.Fault(ctx, "e", "slow"); err != nil || got.Seed != r.Seed {
		t.Errorf("Fault = %+v, %v", got, err)
	}
	if got, err := c.PatchFault(ctx, "e", "slow", map[string]any{"direction": "downstream"}); err != nil || got.Direction != "downstream" {
		t.Errorf("PatchFault = %+v, %v", got, err)
	}
	set, err := c.SetFaults(ctx, "e", []api.Rule{slow, {Name: "b", Action: "bandwidth", Options: map[string]string{"rate": "1MB/s"}}})
	if err != nil || len(set) != 2 {
		t.Errorf("SetFaults = %+v, %v", set, err)
	}
	must(c.DeleteFault(ctx, "e", "b"))
	if rs, err := c.Faults(ctx, "e"); err != nil || len(rs) != 1 {
		t.Errorf("Faults = %+v, %v", rs, err)
	}
	must(c.Reset(ctx))
	if rs, err := c.SetFaults(ctx, "e", nil); err != nil || len(rs) != 0 {
		t.Errorf("SetFaults(nil) = %+v, %v", rs, err)
	}

	// A live connection through the proxy.
	conn, err := net.DialTimeout("tcp", p.Addr, 5*time.Second)
	must(err)
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Write([]byte("ping"))
	must(err)
	_, err = io.ReadFull(conn, make([]byte, 4))
	must(err)
	live, err := c.Connections(ctx)
	if err != nil || len(live) != 1 {
		t.Fatalf("Connections = %+v, %v", live, err)
	}
	if one, err := c.Connection(ctx, live[0].ID); err != nil || one.Proxy != "e" {
		t.Errorf("Connection = %+v, %v", one, err)
	}
	must(c.CloseConnection(ctx, live[0].ID, "rst"))
	if _, err := c.Connection(ctx, live[0].ID); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Connection after close = %v, want ErrNotFound", err)
	}
	var page *client.RecordPage
	testkit.Poll(func() bool {
		page, err = c.Records(ctx, control.RecordQuery{})
		return err != nil || len(page.Records) > 0
	}, 5*time.Second)
	if err != nil || len(page.Records) != 1 || page.Records[0].ID != live[0].ID || page.Next != 1 {
		t.Fatalf("Records = %+v, %v", page, err)
	}
	if more, err := c.Records(ctx, control.RecordQuery{After: page.Next}); err != nil || len(more.Records) != 0 {
		t.Errorf("Records after the last cursor = %+v, %v", more, err)
	}
	if since, err := c.Records(ctx, control.RecordQuery{Since: time.Now().Add(-time.Hour), Last: 1, Limit: 1}); err != nil || len(since.Records) != 1 {
		t.Errorf("Records since an hour ago = %+v, %v", since, err)
	}
	m, err := c.Metrics(ctx)
	if err != nil || !strings.Contains(m, control.MetricConnections) {
		t.Errorf("Metrics: %v, %.200s", err, m)
	}

	must(c.DeleteProxyDrain(ctx, "e", 10*time.Millisecond, "rst"))
	if err := c.DeleteProxy(ctx, "e"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("DeleteProxy again = %v, want ErrNotFound", err)
	}
	if _, err := client.New("http://"+addr.String(), "").Proxies(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("no token: %v, want ErrUnauthorized", err)
	}
	if err := client.New("http://127.0.0.1:1", "").Health(ctx); err == nil {
		t.Error("Health of nothing succeeded")
	}
}
