package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
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

// clearEnv hides any TDSPROXY_* setting of the developer's shell (viper
// ignores empty variables).
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range configs.EnvKeys() {
		t.Setenv(configs.EnvVar(k), "")
	}
}

// execute runs tdsproxy in-process with args and returns what it printed.
func execute(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantUsageError checks that err is a usage error (exit 2) whose message
// contains want.
func wantUsageError(t *testing.T, err error, want string) {
	t.Helper()
	var ue usageError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v (%T), want a usage error", err, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q, want it to contain %q", err, want)
	}
}

// Bad flags fail before anything starts, naming the flag.
func TestRunUsageErrors(t *testing.T) {
	clearEnv(t)
	missingDir := filepath.Join(t.TempDir(), "no-such-dir", "tdsproxy.log")
	one := []string{"run", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"run", "--lisen", "127.0.0.1:0"}, "--lisen"},
		{"bad log level", append(one, "--log-level", "loud"), `--log-level: "loud" is not one of debug, info, warn, error`},
		{"bad log format", append(one, "--log-format", "xml"), "--log-format: "},
		{"bad duration", append(one, "--dial-timeout", "10"), "--dial-timeout"},
		{"zero dial timeout", append(one, "--dial-timeout", "0s"), "--dial-timeout: "},
		{"negative drain", append(one, "--drain-timeout", "-1s"), "--drain-timeout: "},
		{"bad upstream", []string{"run", "--listen", "127.0.0.1:0", "--upstream", "db:abc"}, `--upstream: "db:abc" is not host:port`},
		{"bad listen", []string{"run", "--listen", "11433", "--upstream", "db:1433"}, "--listen: "},
		{"bad name", append(one, "--name", "a b"), "--name: "},
		{"listen without upstream", []string{"run", "--listen", "127.0.0.1:0"}, "--listen and --upstream go together"},
		{"nothing to run", []string{"run"}, "nothing to run"},
		{"name without listen", []string{"run", "--config", "x.yaml", "--name", "a"}, "--name and --dial-timeout"},
		{"positional argument", []string{"run", "tdsproxy.yaml"}, "run takes no arguments"},
		{"missing config file", []string{"run", "--config", filepath.Join(t.TempDir(), "nope.yaml")}, "--config: "},
		{"log file in a missing directory", append(one, "--log-file", missingDir), "--log-file: cannot open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := execute(t, ctx, tt.args...)
			wantUsageError(t, err, tt.want)
		})
	}
}

// Errors in the file name the file and the key; errors in the environment
// name the variable.
func TestRunConfigErrors(t *testing.T) {
	clearEnv(t)
	bad := writeFile(t, "bad.yaml", `
proxies:
  - {name: a, listen: "127.0.0.1:0", upstream: "db:1433"}
  - {name: b, listen: "127.0.0.1:0", upstream: "db:abc"}
`)
	good := writeFile(t, "good.yaml", "proxies:\n  - {name: a, listen: \"127.0.0.1:0\", upstream: \"db:1433\"}\n")
	unknown := writeFile(t, "unknown.yaml", "log:\n  levle: debug\n"+"proxies:\n  - {name: a, listen: \"127.0.0.1:0\", upstream: \"db:1433\"}\n")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Run("bad key in file", func(t *testing.T) {
		_, err := execute(t, ctx, "run", "--config", bad)
		wantUsageError(t, err, bad+`: proxies[1].upstream: "db:abc" is not host:port`)
	})
	t.Run("unknown key in file", func(t *testing.T) {
		_, err := execute(t, ctx, "run", "--config", unknown)
		wantUsageError(t, err, unknown+": log.levle: unknown key")
	})
	t.Run("bad environment variable", func(t *testing.T) {
		t.Setenv("TDSPROXY_SHUTDOWN_CLOSE", "slam")
		_, err := execute(t, ctx, "run", "--config", good)
		wantUsageError(t, err, `TDSPROXY_SHUTDOWN_CLOSE: "slam" is not one of fin, rst`)
	})
	t.Run("bad duration in environment", func(t *testing.T) {
		t.Setenv("TDSPROXY_SHUTDOWN_DRAIN_TIMEOUT", "30")
		_, err := execute(t, ctx, "run", "--config", good)
		wantUsageError(t, err, "TDSPROXY_SHUTDOWN_DRAIN_TIMEOUT: ")
	})
	t.Run("file without proxies", func(t *testing.T) {
		empty := writeFile(t, "empty.yaml", "log:\n  level: info\n")
		_, err := execute(t, ctx, "run", "--config", empty)
		wantUsageError(t, err, empty+": proxies: no proxy configured")
	})
}

// Flags override the environment, which overrides the file.
func TestRunConfigPrecedence(t *testing.T) {
	clearEnv(t)
	file := writeFile(t, "tdsproxy.yaml", `
log: {level: warn, format: json, file: /tmp/from-file.log}
shutdown: {drain_timeout: 1m, close: rst}
proxies:
  - {name: a, listen: "127.0.0.1:11433", upstream: "db1:1433"}
  - {name: b, listen: "127.0.0.1:11434", upstream: "db2:1433"}
`)
	t.Setenv("TDSPROXY_LOG_LEVEL", "error")
	t.Setenv("TDSPROXY_LOG_FORMAT", "console")

	load := func(t *testing.T, args ...string) *configs.Config {
		t.Helper()
		cmd := &cobra.Command{}
		var f runFlags
		bindRunFlags(cmd, &f)
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadRunConfig(cmd, &f)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	t.Run("file and environment", func(t *testing.T) {
		cfg := load(t, "--config", file)
		want := configs.LogConfig{Level: "error", Format: "console", File: "/tmp/from-file.log"}
		if cfg.Log != want {
			t.Errorf("log = %+v, want %+v", cfg.Log, want)
		}
		if cfg.Shutdown.DrainTimeout != time.Minute || !cfg.Shutdown.ResetOnClose() || len(cfg.Proxies) != 2 {
			t.Errorf("cfg = %+v, want the file's shutdown and two proxies", cfg)
		}
	})
	t.Run("flags win", func(t *testing.T) {
		cfg := load(t, "--config", file, "--log-level", "debug", "--log-file", "", "--drain-timeout", "5s",
			"--listen", "127.0.0.1:0", "--upstream", "db9:1433", "--name", "lab", "--dial-timeout", "3s")
		want := configs.LogConfig{Level: "debug", Format: "console", File: ""}
		if cfg.Log != want {
			t.Errorf("log = %+v, want %+v", cfg.Log, want)
		}
		if cfg.Shutdown.DrainTimeout != 5*time.Second {
			t.Errorf("drain_timeout = %v, want 5s", cfg.Shutdown.DrainTimeout)
		}
		wantProxies := []configs.ProxyConfig{{Name: "lab", Listen: "127.0.0.1:0", Upstream: "db9:1433", DialTimeout: 3 * time.Second,
			MaxConnections: configs.DefaultMaxConnections, NegotiationTimeout: configs.DefaultNegotiationTimeout,
			MaxNegotiationBuffer: configs.DefaultMaxNegotiationBuffer, LimitClose: configs.DefaultLimitClose}}
		if len(cfg.Proxies) != 1 || !reflect.DeepEqual(cfg.Proxies[0], wantProxies[0]) {
			t.Errorf("proxies = %+v, want %+v (the flags replace the file's)", cfg.Proxies, wantProxies)
		}
	})
	t.Run("flags alone", func(t *testing.T) {
		clearEnv(t)
		cfg := load(t, "--listen", "127.0.0.1:0", "--upstream", "db:1433")
		if len(cfg.Proxies) != 1 || cfg.Proxies[0].Name != "default" || cfg.Proxies[0].DialTimeout != configs.DefaultDialTimeout {
			t.Errorf("proxies = %+v, want one named default with the default dial timeout", cfg.Proxies)
		}
		if cfg.Log.Level != "info" || cfg.Shutdown.DrainTimeout != configs.DefaultDrainTimeout {
			t.Errorf("cfg = %+v, want defaults", cfg)
		}
	})
}

// logLines parses the JSON lines of a log file written so far.
func logLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		// A line being written may be incomplete: skip it, the next poll
		// sees it whole.
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			lines = append(lines, m)
		}
	}
	return lines
}

// waitForLog waits until a line with msg (and proxy, when not empty)
// appears in the log file, failing when the run ends first or after 10 s.
func waitForLog(t *testing.T, path, msg, proxyName string, runErr <-chan error) map[string]any {
	t.Helper()
	return waitForLogWhere(t, path, runErr, fmt.Sprintf("a %q line", msg), func(l map[string]any) bool {
		return l["msg"] == msg && (proxyName == "" || l["proxy"] == proxyName)
	})
}

func readAll(t *testing.T, path string) string {
	t.Helper()
	b, _ := os.ReadFile(path)
	return string(b)
}

// tdsproxy run, end to end and in-process: flags in, a connection relayed to
// a real upstream on loopback, the JSON log line out, shutdown by context.
func TestRunEndToEnd(t *testing.T) {
	clearEnv(t)
	upstream := testkit.StartEcho(t)
	logFile := filepath.Join(t.TempDir(), "tdsproxy.log")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() {
		_, err := execute(t, ctx, "run", "--listen", "127.0.0.1:0", "--upstream", upstream,
			"--log-file", logFile, "--log-format", "auto", "--drain-timeout", "5s", "--admin", "127.0.0.1:0")
		runErr <- err
	}()

	listening := waitForLog(t, logFile, "proxy listening", "default", runErr)
	addr, _ := listening["listen"].(string)
	if addr == "" {
		t.Fatalf("proxy listening line has no listen address: %v", listening)
	}
	adminAddr, _ := waitForLog(t, logFile, "admin API listening", "", runErr)["listen"].(string)
	ps, err := client.New("http://"+adminAddr, "").Proxies(ctx)
	if err != nil || len(ps) != 1 || ps[0].Name != "default" || ps[0].Addr != addr {
		t.Errorf("admin API proxies = %+v, %v; want the one named default at %s", ps, err, addr)
	}

	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte("hello through tdsproxy")
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("echo = %q, want %q", got, msg)
	}
	conn.Close()

	closed := waitForLog(t, logFile, "connection closed", "default", runErr)
	if closed["level"] != "info" || closed["bytes_c2s"] != float64(len(msg)) || closed["bytes_s2c"] != float64(len(msg)) {
		t.Errorf("connection closed line = %v, want level info and %d bytes each way", closed, len(msg))
	}
	if ts, _ := closed["ts"].(string); len(ts) < len("2006-01-02T15:04:05") || ts[10] != 'T' {
		t.Errorf("ts = %v, want ISO 8601", closed["ts"])
	}

	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return 15s after its context was cancelled")
	}
	waitForLog(t, logFile, "tdsproxy stopped", "", nil)
}

// Connections still open when the drain timeout ends are closed, and
// runProxies returns.
func TestRunProxiesDrainTimeout(t *testing.T) {
	upstream := testkit.StartEcho(t)
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := &configs.Config{
		Admin:    configs.AdminConfig{Listen: configs.AdminDisabled},
		Proxies:  []configs.ProxyConfig{{Name: "drain", Listen: "127.0.0.1:0", Upstream: upstream, DialTimeout: 5 * time.Second}},
		Shutdown: configs.ShutdownConfig{DrainTimeout: 50 * time.Millisecond, Close: "rst"},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- runProxies(ctx, cfg, zap.New(core), nil, nil) }()

	addr := waitForObserved(t, logs, "proxy listening", runErr).ContextMap()["listen"]
	conn, err := net.DialTimeout("tcp", addr.(string), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	// A round trip proves the connection is relayed (live) before shutdown.
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}

	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("runProxies: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("runProxies did not return after the drain timeout")
	}
	if n := logs.FilterMessage("drain timeout: closed the connections still open").Len(); n != 1 {
		t.Errorf("drain timeout lines = %d, want 1", n)
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("the client's connection is still open after shutdown")
	}
}

// A proxy that cannot listen fails the run, and the proxies already started
// are closed.
func TestRunProxiesStartFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := &configs.Config{
		Admin: configs.AdminConfig{Listen: configs.AdminDisabled},
		Proxies: []configs.ProxyConfig{
			{Name: "ok", Listen: "127.0.0.1:0", Upstream: "127.0.0.1:1", DialTimeout: time.Second},
			{Name: "busy", Listen: busy.Addr().String(), Upstream: "127.0.0.1:1", DialTimeout: time.Second},
		},
		Shutdown: configs.ShutdownConfig{DrainTimeout: time.Second, Close: "fin"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = runProxies(ctx, cfg, zap.New(core), nil, nil)
	if err == nil || !strings.Contains(err.Error(), `"busy"`) {
		t.Fatalf("err = %v, want it to name proxy \"busy\"", err)
	}
	if logs.FilterMessage("tdsproxy running").Len() != 0 {
		t.Error("logged running although a proxy failed to start")
	}
}

func waitForObserved(t *testing.T, logs *observer.ObservedLogs, msg string, runErr <-chan error) observer.LoggedEntry {
	t.Helper()
	var e observer.LoggedEntry
	testkit.WaitForBeforeExit(t, func() bool {
		es := logs.FilterMessage(msg).All()
		if len(es) > 0 {
			e = es[0]
		}
		return len(es) > 0
	}, runErr, 10*time.Second, fmt.Sprintf("a %q log entry", msg))
	return e
}

// The first SIGTERM cancels the run's context (and does not kill the test
// process: the signal is caught).
func TestNotifyShutdown(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no signals to self on Windows")
	}
	core, logs := observer.New(zapcore.InfoLevel)
	ctx, stop := notifyShutdown(context.Background(), zap.New(core), func() {})
	defer stop()
	self, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := self.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("context not cancelled 10s after SIGTERM")
	}
	if logs.FilterMessageSnippet("shutting down").Len() != 1 {
		t.Errorf("logs = %v, want one shutting-down line", logs.All())
	}
}
