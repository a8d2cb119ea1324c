package main

import (
	"context"
	"crypto/tls"
	"database/sql"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/msdsn"
	"github.com/spf13/cobra"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
)

// Fault flags that cannot apply are usage errors naming the flag, never
// silently ignored.
func TestScenarioFlagErrors(t *testing.T) {
	clearEnv(t)
	base := []string{"run", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"}
	cases := []struct {
		args []string
		want string
	}{
		{append(base, "--server-tls", "1.2"), "--server-tls: needs --scenario"},
		{append(base, "--seed", "3"), "--seed: needs --scenario"},
		{append(base, "--scenario", "nope"), `--scenario: "nope" is not one of protocol-mismatch`},
		{append(base, "--scenario", "cipher-mismatch", "--server-tls", "1.2"), "--server-tls: applies to protocol-mismatch, not to --scenario cipher-mismatch"},
		{append(base, "--scenario", "protocol-mismatch", "--server-tls", "2.0"), "--server-tls: \"2.0\" is not a TLS version"},
		{append(base, "--scenario", "cipher-mismatch"), "--scenario cipher-mismatch: --server-ciphers: required"},
		{append(base, "--scenario", "weak-cert-hash", "--cert-hash", "sha3"), "--cert-hash:"},
		{append(base, "--scenario", "dhe-enabled", "--dhe-rate", "often"), "--dhe-rate:"},
		{append(base, "--scenario", "delayed-accept"), "--scenario delayed-accept: set one of --accept-delay, --backlog, --reject, --prelogin-delay, --login-delay"},
		{append(base, "--scenario", "delayed-accept", "--backlog", "4"), "--backlog: needs --accept-delay"},
		{append(base, "--scenario", "protocol-mismatch", "--close", "slam"), "--close:"},
		{append(base, "--scenario", "protocol-mismatch", "--probability", "2"), "--probability:"},
		{append(base, "--scenario", "protocol-mismatch", "--clients", "10.0.0.0/33"), "--clients:"},
		{[]string{"run", "--config", "x.yaml", "--scenario", "protocol-mismatch"}, "--scenario: goes with --listen"},
	}
	for _, tc := range cases {
		_, err := execute(t, context.Background(), tc.args...)
		wantUsageError(t, err, tc.want)
	}
}

// A bad rule in a file is an error naming proxies[i].faults[j].key.
func TestConfigFaultErrors(t *testing.T) {
	clearEnv(t)
	f := writeFile(t, "f.yaml", `proxies:
  - name: a
    listen: 127.0.0.1:0
    upstream: 127.0.0.1:1
    faults:
      - {name: ok, scenario: protocol-mismatch}
      - {name: bad, scenario: weak-cert-hash, options: {cert_hash: sha3}}
`)
	_, err := execute(t, context.Background(), "config", "check", f)
	wantUsageError(t, err, "proxies[0].faults[1].options.cert_hash")
	_, err = execute(t, context.Background(), "run", "--config", f)
	wantUsageError(t, err, "proxies[0].faults[1].options.cert_hash")

	ex := writeFile(t, "ex.yaml", string(configs.FaultsExample()))
	out, err := execute(t, context.Background(), "config", "check", ex)
	if err != nil || !strings.Contains(out, "(6 fault rules)") {
		t.Fatalf("config check of the faults example: %v\n%s", err, out)
	}
}

// The one-liner reproduces scenario 1 against a real client: a go-mssqldb
// client limited to TLS 1.1 is reset at the ClientHello, with go-mssqldb's
// own error, and the log line names the rule; a TLS 1.2 client gets through.
func TestRunScenarioOneLiner(t *testing.T) {
	clearEnv(t)
	emu, err := emulator.New(emulator.Config{Listen: "127.0.0.1:0", TLSMin: tls.VersionTLS10})
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	logFile := filepath.Join(t.TempDir(), "tdsproxy.log")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() {
		_, err := execute(t, ctx, "run", "--listen", "127.0.0.1:0", "--upstream", emu.Addr(),
			"--scenario", "protocol-mismatch", "--server-tls", "1.2", "--log-file", logFile, "--drain-timeout", "1s", "--admin", "off")
		runErr <- err
	}()
	addr, _ := waitForLog(t, logFile, "proxy listening", "default", runErr)["listen"].(string)

	query := func(maxTLS uint16) error {
		host, port, _ := net.SplitHostPort(addr)
		u := url.URL{Scheme: "sqlserver", User: url.UserPassword("sa", "x"), Host: net.JoinHostPort(host, port),
			RawQuery: url.Values{"encrypt": {"true"}, "TrustServerCertificate": {"true"}, "connection timeout": {"5"}}.Encode()}
		cfg, err := msdsn.Parse(u.String())
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLSConfig.MinVersion, cfg.TLSConfig.MaxVersion = tls.VersionTLS10, maxTLS
		db := sql.OpenDB(mssql.NewConnectorConfig(cfg))
		defer db.Close()
		qctx, qcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer qcancel()
		var v int
		return db.QueryRowContext(qctx, "SELECT 1").Scan(&v)
	}
	err = query(tls.VersionTLS11)
	if err == nil || !strings.Contains(err.Error(), "TLS Handshake failed") || !strings.Contains(err.Error(), "connection reset by peer") {
		t.Fatalf("TLS 1.1 client: error %v, want go-mssqldb's TLS handshake reset", err)
	}
	line := waitForLog(t, logFile, "connection closed", "default", runErr)
	if line["fault"] != "protocol-mismatch" || line["close_kind"] != "rst" || line["close_phase"] != "tls.client_hello" || line["close_by"] != "proxy" {
		t.Errorf("log line = %v", line)
	}
	if err := query(tls.VersionTLS12); err != nil {
		t.Fatalf("TLS 1.2 client (the fix): %v", err)
	}
	cancel()
	select {
	case <-runErr:
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop")
	}
}

// Every scenario option of the faults table is a run flag of its type, and
// a flag sets its scenario's option by name.
func TestScenarioOptionFlagsFromTable(t *testing.T) {
	for _, s := range faults.Scenarios() {
		for _, o := range s.Options {
			cmd := &cobra.Command{Use: "run"}
			var sf scenarioFlags
			bindScenarioFlags(cmd, &sf)
			cmd.Flags().String("listen", "", "")
			fl := cmd.Flags().Lookup(o.Flag)
			if fl == nil {
				t.Errorf("%s.%s: no flag --%s", s.Name, o.Name, o.Flag)
				continue
			}
			if !strings.Contains(fl.Usage, s.Name) {
				t.Errorf("--%s: usage %q does not name %s", o.Flag, fl.Usage, s.Name)
			}
			value := map[faults.OptionType]string{faults.OptDuration: "2s", faults.OptInt: "3", faults.OptBool: "true"}[o.Type]
			if value == "" {
				value = "x"
			}
			if err := cmd.Flags().Parse([]string{"--listen", "127.0.0.1:0", "--scenario", s.Name, "--" + o.Flag, value}); err != nil {
				t.Errorf("--%s %s: %v", o.Flag, value, err)
				continue
			}
			rule, err := scenarioRule(cmd, &sf)
			if rule == nil {
				// A value that is not valid for the option is refused
				// naming the flag or the scenario, never silently dropped.
				if err == nil || !strings.Contains(err.Error(), "--") {
					t.Errorf("--%s %s: rule nil, error %v", o.Flag, value, err)
				}
				continue
			}
			if got := rule["options"].(map[string]any)[o.Name]; got == nil {
				t.Errorf("--%s: options %v lack %s", o.Flag, rule["options"], o.Name)
			}
		}
	}
}
