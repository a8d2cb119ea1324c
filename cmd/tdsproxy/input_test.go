package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// freePort returns a loopback address nothing listens on (for a moment).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// run --listen X --upstream X exits 2 naming --upstream; the same in a file
// names proxies[0].upstream, in config check too; and a loop only the bound
// address reveals is refused by runProxies as a usage error naming the key
// (issue 18 item 8). Before, run logged "tdsproxy running" and never
// listened.
func TestRunSelfLoop(t *testing.T) {
	clearEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := freePort(t)
	_, err := execute(t, ctx, "run", "--listen", addr, "--upstream", addr, "--admin", "off")
	wantUsageError(t, err, "--upstream: ")

	file := writeFile(t, "loop.yaml", "admin: {listen: \"off\"}\nproxies:\n  - {name: a, listen: \""+addr+"\", upstream: \""+addr+"\"}\n")
	_, err = execute(t, ctx, "config", "check", file)
	wantUsageError(t, err, file+": proxies[0].upstream: ")
	_, err = execute(t, ctx, "run", "--config", file)
	wantUsageError(t, err, file+": proxies[0].upstream: ")

	// Past Validate (a Config built in Go): the bound address decides.
	cfg := &configs.Config{
		Admin:    configs.AdminConfig{Listen: configs.AdminDisabled},
		Proxies:  []configs.ProxyConfig{{Name: "a", Listen: addr, Upstream: addr, DialTimeout: time.Second}},
		Shutdown: configs.ShutdownConfig{DrainTimeout: time.Second, Close: "fin"},
	}
	err = runProxies(ctx, cfg, zap.NewNop(), nil, nil)
	wantUsageError(t, err, "proxies[0].upstream: ")
}

// config check runs every check run --config runs: a non-loopback admin
// address without a token fails both (issue 18 item 9).
func TestConfigCheckMatchesRun(t *testing.T) {
	clearEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	file := writeFile(t, "open.yaml", "admin: {listen: \"0.0.0.0:8475\"}\nproxies:\n  - {name: a, listen: \"127.0.0.1:0\", upstream: \"h:1\"}\n")
	_, err := execute(t, ctx, "config", "check", file)
	wantUsageError(t, err, file+": admin.listen: a non-loopback admin address needs a token")
	_, err = execute(t, ctx, "run", "--config", file)
	wantUsageError(t, err, file+": admin.listen: a non-loopback admin address needs a token")
}

// A busy address names what the user typed: the flag for a flag, and the
// admin API's is found before any proxy starts (issue 18 item 12).
func TestRunBusyAddressNamesTheFlag(t *testing.T) {
	clearEnv(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	logFile := filepath.Join(t.TempDir(), "run.log")
	_, err = execute(t, ctx, "run", "--listen", busy.Addr().String(), "--upstream", "127.0.0.1:1", "--admin", "off", "--log-file", logFile)
	wantUsageError(t, err, "--listen: ")

	_, err = execute(t, ctx, "run", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--admin", busy.Addr().String(), "--log-file", logFile)
	wantUsageError(t, err, "--admin: ")
	if strings.Contains(readAll(t, logFile), "configuration applied") {
		t.Error(`"configuration applied" was logged before the busy admin address failed the start`)
	}
	file := writeFile(t, "busy.yaml", "admin: {listen: \""+busy.Addr().String()+"\"}\nproxies:\n  - {name: a, listen: \"127.0.0.1:0\", upstream: \"h:1\"}\n")
	_, err = execute(t, ctx, "run", "--config", file, "--log-file", logFile)
	wantUsageError(t, err, file+": admin.listen: ")
}

// The admin API's default address, taken (by a second tdsproxy), does not
// stop the proxies: the API moves to a free port and one log line says
// where and how to choose (issue 10 §6). A chosen address fails instead
// (TestRunBusyAddressNamesTheFlag).
func TestRunDefaultAdminBusy(t *testing.T) {
	// Take the default address, unless something already has it: either
	// way it is busy for the run below.
	if ln, err := net.Listen("tcp", configs.DefaultAdminListen); err == nil {
		defer ln.Close()
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Skipf("cannot take %s: %v", configs.DefaultAdminListen, err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := &configs.Config{
		Proxies:  []configs.ProxyConfig{{Name: "p", Listen: "127.0.0.1:0", Upstream: "127.0.0.1:1", DialTimeout: time.Second}},
		Shutdown: configs.ShutdownConfig{DrainTimeout: time.Second, Close: "fin"},
	}
	cfg.ApplyDefaults() // admin.listen: the default, not given
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- runProxies(ctx, cfg, zap.New(core), nil, nil) }()
	moved := waitForObserved(t, logs, "admin API moved to a free port: its default address is in use (another tdsproxy?); choose one with --admin host:port or admin.listen (TDSPROXY_ADMIN_LISTEN), or off", runErr)
	waitForObserved(t, logs, "tdsproxy running", runErr)
	addr, _ := moved.ContextMap()["listen"].(string)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("admin API on the free port %q: %v", addr, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}

	// Chosen by the user (marked as a flag marks it): the same busy
	// address is an error naming admin.listen.
	cfg.MarkSet("admin.listen")
	err = runProxies(context.Background(), cfg, zap.NewNop(), nil, nil)
	wantUsageError(t, err, "admin.listen: ")
}

// --probability NaN is reported against --probability, and the scenario's
// option names read as their flags (issue 18 item 12 and smaller bullets).
func TestScenarioFlagErrorsNameFlags(t *testing.T) {
	clearEnv(t)
	base := []string{"run", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(base, "--scenario", "protocol-mismatch", "--probability", "NaN"), "--probability: NaN"},
		{append(base, "--scenario", "delayed-accept"), "--scenario delayed-accept: set one of --accept-delay, --backlog, --reject, --prelogin-delay, --login-delay"},
	} {
		_, err := execute(t, context.Background(), tc.args...)
		wantUsageError(t, err, tc.want)
		if err != nil && strings.Contains(err.Error(), "accept_delay") {
			t.Errorf("%v: names a config key, not a flag", err)
		}
	}
}

// Two SIGTERMs at once (GNU timeout sends two) are one request: the drain
// goes on; a second signal after the grace forces the exit.
func TestNotifyShutdownRepeatedSignal(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no signals to self on Windows")
	}
	self, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		grace time.Duration
		force bool
	}{{time.Minute, false}, {0, true}} {
		core, logs := observer.New(zapcore.InfoLevel)
		forced := make(chan struct{}, 1)
		ctx, stop := notifyShutdownWith(context.Background(), zap.New(core), tc.grace, func() { forced <- struct{}{} })
		if err := self.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("context not cancelled 10s after SIGTERM")
		}
		// The second once the first was taken (two pending SIGTERMs
		// would merge into one in the kernel).
		if err := self.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if tc.force {
			select {
			case <-forced:
			case <-time.After(10 * time.Second):
				t.Error("a second signal after the grace did not force the exit")
			}
		} else {
			waitForObserved(t, logs, "signal repeated at once: taken as the same request; still draining", nil)
			select {
			case <-forced:
				t.Error("a repeated signal within the grace forced the exit")
			default:
			}
		}
		stop()
	}
}

// top escapes control characters in everything the API sends: a rule
// named with ANSI escapes (set before names were checked, or by another
// version) cannot recolour the terminal.
func TestRenderTopEscapes(t *testing.T) {
	now := time.Now()
	evil := "r\x1b[2J\x1b[31m\r\nx"
	out := renderTop("http://127.0.0.1:8475", now,
		[]control.ProxyInfo{{Name: "p", Addr: "127.0.0.1:1", Upstream: "db:1", Faults: nil}},
		nil, []proxy.Record{{ID: 1, Proxy: "p", Start: now, End: now,
			Faults: []proxy.FaultEvent{{Rule: evil, Action: "close:rst", Detail: "d\x1b]0;title\x07"}}}}, 10)
	if strings.ContainsAny(out, "\x1b\r\x07") {
		t.Errorf("frame holds raw control characters: %q", out)
	}
	if !strings.Contains(out, `r\x1b[2J\x1b[31m\x0d\x0ax`) {
		t.Errorf("frame does not show the escaped rule name: %q", out)
	}
}
