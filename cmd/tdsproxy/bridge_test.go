package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/interop"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/tds"
)

// tdsproxy run --bridge, in process: the flags reach the proxy, a
// go-mssqldb client gets through, the log line's record has the bridge
// section, and the generated CA and key log are where the flags say.
func TestRunBridge(t *testing.T) {
	clearEnv(t)
	emu := testkit.StartEmulator(t, emulator.Config{Encrypt: tds0(), User: "u", Password: "Pa55-word!"})
	dir := t.TempDir()
	upCA := filepath.Join(dir, "up.pem")
	os.WriteFile(upCA, emu.CertificatePEM(), 0o600)
	logFile := filepath.Join(dir, "tdsproxy.log")
	caOut := filepath.Join(dir, "ca.pem")
	keylog := filepath.Join(dir, "keys.log")
	t.Setenv("TDSPROXY_RECORD_QUERIES", "text") // TDSPROXY_* reaches the bridge flags
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() {
		_, err := execute(t, ctx, "run", "--listen", "127.0.0.1:0", "--upstream", emu.Addr(), "--bridge",
			"--bridge-ca-out", caOut, "--upstream-ca", upCA, "--upstream-hello", "mirror", "--keylog", keylog,
			"--log-file", logFile, "--admin", "off")
		runErr <- err
	}()
	addr, _ := waitForLog(t, logFile, "proxy listening", "default", runErr)["listen"].(string)
	ca, err := os.ReadFile(caOut)
	if err != nil {
		t.Fatalf("the generated CA: %v", err)
	}
	if fi, err := os.Stat(caOut + ".key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key %v %v", fi, err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	res, err := interop.RunMSSQL(ctx, interop.MSSQLConfig{Port: p, User: "u", Password: "Pa55-word!", Encrypt: "true",
		Query: "SELECT 1", Timeout: 20 * time.Second, TLS: func(c *tls.Config) { c.RootCAs = pool }})
	if err != nil || !res.OK {
		t.Fatalf("through the bridge: %v %q", err, res.Error)
	}
	closed := waitForLog(t, logFile, "connection closed", "default", runErr)
	rec, _ := closed["record"].(map[string]any)
	b, _ := rec["bridge"].(map[string]any)
	if b == nil || b["keylog"] != true || b["upstream_insecure"] != false || b["record_queries"] != "text" ||
		b["upstream_hello"] != "mirror" || b["client_ja4"] != b["upstream_ja4"] {
		t.Fatalf("bridge section %v", b)
	}
	if strings.Contains(readAll(t, logFile), "Pa55-word!") {
		t.Fatal("the password reached the log")
	}
	if !strings.Contains(readAll(t, logFile), caOut) {
		t.Error("the log does not say where the generated CA is")
	}
	cancel()
	select {
	case <-runErr:
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return")
	}
}

func TestRunBridgeUsageErrors(t *testing.T) {
	clearEnv(t)
	ctx := context.Background()
	_, err := execute(t, ctx, "run", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--keylog", "k")
	wantUsageError(t, err, "--keylog needs --bridge")
	cfg := writeFile(t, "c.yaml", "proxies:\n  - name: a\n    listen: 127.0.0.1:0\n    upstream: 127.0.0.1:1\n")
	_, err = execute(t, ctx, "run", "--config", cfg, "--bridge")
	wantUsageError(t, err, "bridge: section")
	_, err = execute(t, ctx, "run", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--bridge", "--upstream-hello", "chrome")
	wantUsageError(t, err, "upstream_hello")
	t.Setenv("TDSPROXY_BRIDGE", "maybe")
	_, err = execute(t, ctx, "run", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1")
	wantUsageError(t, err, "TDSPROXY_BRIDGE")
}

func tds0() tds.Encryption { return tds.EncryptOff }
