package main

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/tds"
)

// The TDS-fault flags that cannot apply, or carry a bad value, are usage
// errors naming the flag.
func TestTDSFlagErrors(t *testing.T) {
	clearEnv(t)
	base := []string{"run", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"}
	cases := []struct {
		args []string
		want string
	}{
		{append(base, "--at", "login"), "--at: needs --tds-error"},
		{append(base, "--query-match", "x"), "--query-match: needs --tds-error"},
		{append(base, "--tds-error", "40613", "--at", "later"), `--at: "later" is not login or query`},
		{append(base, "--tds-error", "40613", "--times", "-1"), "--times: -1: must be 0 (always) or more"},
		{append(base, "--tds-error", "1205", "--at", "query", "--query-match", "(?i"), "--query-match: invalid regular expression"},
		{append(base, "--tds-error", "50123"), "--tds-message: is required for error 50123"},
		{append(base, "--tds-error", "-2"), "--tds-error: -2 is a client-side timeout"},
		{append(base, "--tds-error", "40613", "--scenario", "protocol-mismatch"), "--tds-error: one one-liner rule at a time"},
		{[]string{"run", "--config", "x.yaml", "--tds-error", "40613"}, "--tds-error: goes with --listen"},
	}
	for _, tc := range cases {
		_, err := execute(t, context.Background(), tc.args...)
		wantUsageError(t, err, tc.want)
	}
}

// The one-liners of the issue, exactly: --tds-error 40613 --at login
// --times 2 fails two logins then lets the third pass; --tds-error 1205
// --at query --query-match '(?i)^update' answers UPDATE with 1205 and
// leaves SELECT alone.
func TestRunTDSErrorOneLiners(t *testing.T) {
	clearEnv(t)
	emu := testkit.StartEmulator(t, emulator.Config{Encrypt: tds.EncryptNotSup, User: testkit.User, Password: testkit.Password})
	start := func(t *testing.T, args ...string) string {
		t.Helper()
		logFile := filepath.Join(t.TempDir(), "tdsproxy.log")
		ctx, cancel := context.WithCancel(context.Background())
		runErr := make(chan error, 1)
		go func() {
			_, err := execute(t, ctx, append([]string{"run", "--listen", "127.0.0.1:0", "--upstream", emu.Addr(),
				"--log-file", logFile, "--drain-timeout", "1s", "--admin", "off"}, args...)...)
			runErr <- err
		}()
		t.Cleanup(func() {
			cancel()
			select {
			case <-runErr:
			case <-time.After(15 * time.Second):
				t.Error("run did not stop")
			}
		})
		addr, _ := waitForLog(t, logFile, "proxy listening", "default", runErr)["listen"].(string)
		return addr
	}
	number := func(err error) int32 {
		var me mssql.Error
		if errors.As(err, &me) {
			return me.Number
		}
		return 0
	}
	t.Run("login", func(t *testing.T) {
		dsn := testkit.GoDSN(start(t, "--tds-error", "40613", "--at", "login", "--times", "2"), "disable", nil)
		for i := range 2 {
			if _, err := testkit.SelectOne(t, dsn, testkit.Query{}); number(err) != 40613 {
				t.Fatalf("login %d: %v, want 40613", i+1, err)
			}
		}
		if _, err := testkit.SelectOne(t, dsn, testkit.Query{}); err != nil {
			t.Fatalf("third login: %v", err)
		}
	})
	t.Run("query", func(t *testing.T) {
		db, err := sql.Open("sqlserver", testkit.GoDSN(start(t, "--tds-error", "1205", "--at", "query", "--query-match", "(?i)^update"), "disable", nil))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "update t set x = 1"); number(err) != 1205 {
			t.Fatalf("update: %v, want 1205", err)
		}
		var v int
		if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&v); err != nil || v != 1 {
			t.Fatalf("SELECT 1: %v, %v", v, err)
		}
	})
}
