package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/testkit"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/control/client"
)

// A non-loopback admin address without a token refuses to start, naming
// where the address came from; with a token it is accepted (not bound
// here: no traffic leaves loopback).
func TestRunAdminNeedsToken(t *testing.T) {
	clearEnv(t)
	load := func(args ...string) error {
		cmd := &cobra.Command{}
		var f runFlags
		bindRunFlags(cmd, &f)
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		_, err := loadRunConfig(cmd, &f)
		return err
	}
	one := []string{"--listen", "127.0.0.1:0", "--upstream", "db:1433"}
	wantUsageError(t, load(append(one, "--admin", "0.0.0.0:8475")...), "--admin: a non-loopback admin address needs a token")
	t.Run("from the environment", func(t *testing.T) {
		t.Setenv("TDSPROXY_ADMIN_LISTEN", ":8475")
		wantUsageError(t, load(one...), "TDSPROXY_ADMIN_LISTEN: a non-loopback")
	})
	t.Run("with a token", func(t *testing.T) {
		t.Setenv("TDSPROXY_ADMIN_TOKEN", "s3cret")
		if err := load(append(one, "--admin", "0.0.0.0:8475")...); err != nil {
			t.Errorf("non-loopback admin with a token: %v", err)
		}
	})
	if err := load(append(one, "--admin", "off")...); err != nil {
		t.Errorf("--admin off: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := execute(t, ctx, append([]string{"run", "--admin", "[::]:0"}, one...)...)
	wantUsageError(t, err, "--admin: ")
}

// Shutdown with connections in flight: they keep working during the
// drain, finish by themselves, and runProxies returns nil without cutting
// anything.
func TestRunProxiesDrainsInFlight(t *testing.T) {
	upstream := testkit.StartEcho(t)
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := &configs.Config{
		Admin:    configs.AdminConfig{Listen: configs.AdminDisabled},
		Proxies:  []configs.ProxyConfig{{Name: "p", Listen: "127.0.0.1:0", Upstream: upstream, DialTimeout: 5 * time.Second}},
		Shutdown: configs.ShutdownConfig{DrainTimeout: 20 * time.Second, Close: "rst"},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- runProxies(ctx, cfg, zap.New(core), nil, nil) }()
	addr := waitForObserved(t, logs, "proxy listening", runErr).ContextMap()["listen"].(string)

	const n = 5
	conns := make([]net.Conn, n)
	roundTrip := func(c net.Conn) error {
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, 4))
		return err
	}
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if err := roundTrip(c); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	cancel() // SIGINT/SIGTERM
	waitForObserved(t, logs, "shutting down: no new connections, draining open ones", nil)
	for i, c := range conns {
		if err := roundTrip(c); err != nil {
			t.Errorf("connection %d during the drain: %v", i, err)
		}
		c.Close()
	}
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("runProxies: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("runProxies did not return once every connection had ended")
	}
	if n := logs.FilterMessage("drain timeout: closed the connections still open").Len(); n != 0 {
		t.Error("the drain timed out although every connection ended by itself")
	}
}

// waitForLogWhere waits (10 s) until a line of the JSON log satisfies ok,
// failing at once if the run ends first; on failure the log is printed.
func waitForLogWhere(t *testing.T, path string, runErr <-chan error, what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", readAll(t, path))
		}
	}()
	var found map[string]any
	testkit.WaitForBeforeExit(t, func() bool {
		for _, l := range logLines(t, path) {
			if ok(l) {
				found = l
				return true
			}
		}
		return false
	}, runErr, 10*time.Second, what+" in the log")
	return found
}

// Hot reload in tdsproxy run: a change of the file is applied (a proxy
// added, rules changed) while a connection stays up; an invalid file is
// rejected with the key named and the running configuration stays;
// SIGHUP reloads too.
func TestRunReload(t *testing.T) {
	clearEnv(t)
	upstream := testkit.StartEcho(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "tdsproxy.yaml")
	logFile := filepath.Join(dir, "tdsproxy.log")
	write := func(content string) {
		t.Helper()
		// Write then rename, as editors and config management do.
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	head := "admin: {listen: \"127.0.0.1:0\"}\nlog: {format: json}\nshutdown: {drain_timeout: 1s}\nproxies:\n"
	proxyA := "  - {name: a, listen: \"127.0.0.1:0\", upstream: \"" + upstream + "\"}\n"
	write(head + proxyA)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() {
		_, err := execute(t, ctx, "run", "--config", file, "--log-file", logFile)
		runErr <- err
	}()
	addrA, _ := waitForLog(t, logFile, "proxy listening", "a", runErr)["listen"].(string)
	adminAddr, _ := waitForLog(t, logFile, "admin API listening", "", runErr)["listen"].(string)
	waitForLog(t, logFile, "tdsproxy running", "", runErr)
	api := client.New("http://"+adminAddr, "")

	conn, err := net.DialTimeout("tcp", addrA, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	echo := func() error {
		if _, err := conn.Write([]byte("ping")); err != nil {
			return err
		}
		_, err := io.ReadFull(conn, make([]byte, 4))
		return err
	}
	if err := echo(); err != nil {
		t.Fatal(err)
	}

	reloaded := func(trigger string) func(map[string]any) bool {
		return func(l map[string]any) bool { return l["msg"] == "configuration reloaded" && l["trigger"] == trigger }
	}
	write(head + "  - {name: a, listen: \"127.0.0.1:0\", upstream: \"" + upstream + "\", faults: [{name: slow, action: latency, options: {latency: 1ms}}]}\n" +
		"  - {name: b, listen: \"127.0.0.1:0\", upstream: \"" + upstream + "\"}\n")
	waitForLogWhere(t, logFile, runErr, "a file-change reload", reloaded("file changed"))
	ps, err := api.Proxies(ctx)
	if err != nil || len(ps) != 2 || ps[0].Name != "a" || ps[0].Addr != addrA || len(ps[0].Faults) != 1 || ps[1].Name != "b" {
		t.Errorf("proxies after the reload = %+v, %v; want a (same address, one rule) and b", ps, err)
	}
	if err := echo(); err != nil {
		t.Errorf("the open connection after the reload: %v", err)
	}

	write(head + proxyA + "  - {name: b, listen: \"127.0.0.1:0\", upstream: \"db:abc\"}\n")
	rejected := waitForLogWhere(t, logFile, runErr, "a rejected reload", func(l map[string]any) bool {
		return l["msg"] == "configuration reload rejected; the running configuration stays"
	})
	if msg, _ := rejected["error"].(string); !strings.Contains(msg, file+": proxies[1].upstream") || rejected["level"] != "error" {
		t.Errorf("rejected reload line = %v, want an error naming %s: proxies[1].upstream", rejected, file)
	}
	// One clear line: no Go stack trace (issue 18 item 10).
	if st, ok := rejected["stacktrace"]; ok {
		t.Errorf("rejected reload line carries a stack trace: %v", st)
	}
	// A file refused before it could be applied counts as rejected.
	if got := scrape(t, adminAddr, `tdsproxy_config_reloads_total{result="rejected"}`); got != "1" {
		t.Errorf(`tdsproxy_config_reloads_total{result="rejected"} = %q after a bad file, want 1`, got)
	}
	if ps, err := api.Proxies(ctx); err != nil || len(ps) != 2 || len(ps[0].Faults) != 1 {
		t.Errorf("proxies after a rejected reload = %+v, %v; want the running ones", ps, err)
	}

	write(head + proxyA)
	waitForLogWhere(t, logFile, runErr, "a second file-change reload", func(l map[string]any) bool {
		return l["msg"] == "configuration reloaded" && l["proxies"] == float64(1)
	})
	self, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Not syscall.Kill, which Windows lacks: the file must build there.
	if err := self.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForLogWhere(t, logFile, runErr, "a SIGHUP reload", reloaded("SIGHUP"))
	if err := echo(); err != nil {
		t.Errorf("the open connection after three reloads: %v", err)
	}

	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
}

// scrape returns the value of one series in the admin API's /metrics.
func scrape(t *testing.T, adminAddr, series string) string {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}
