package faults_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

// tdsEnv is an emulator (NOT_SUP: plaintext, or OFF: login-only) behind a
// proxy with rules.
func tdsEnv(t *testing.T, enc tds.Encryption, rules ...faults.RuleSpec) (addr string, recs <-chan *proxy.Record) {
	t.Helper()
	emu := testkit.StartEmulator(t, emulator.Config{Encrypt: enc, User: testkit.User, Password: testkit.Password})
	p, recs := startProxy(t, emu.Addr(), rules...)
	return p.Addr().String(), recs
}

// goEncrypt is go-mssqldb's encrypt value for the server setting:
// "disable" sends ENCRYPT_NOT_SUP (plaintext), "false" ENCRYPT_OFF
// (login-only against a server that has TLS).
func goEncrypt(enc tds.Encryption) string {
	if enc == tds.EncryptNotSup {
		return "disable"
	}
	return "false"
}

func mssqlNumber(err error) int32 {
	var me mssql.Error
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// TestTDSErrorAtLoginGoMSSQL: go-mssqldb sees each known error at login
// as an mssql.Error with the number and the server's text, plaintext and
// login-only; with times: 2 the third login passes; go-mssqldb does not
// retry by itself (each SelectOne is one attempt).
func TestTDSErrorAtLoginGoMSSQL(t *testing.T) {
	for _, enc := range []tds.Encryption{tds.EncryptNotSup, tds.EncryptOff} {
		for _, n := range []string{"18456", "40613", "1205", "40501"} {
			t.Run(enc.String()+"/"+n, func(t *testing.T) {
				addr, recs := tdsEnv(t, enc, faults.RuleSpec{Name: "e", Action: "tds_error",
					Options: map[string]string{"at": "login", "number": n, "times": "2"}})
				dsn := testkit.GoDSN(addr, goEncrypt(enc), nil)
				for i := range 2 {
					_, err := testkit.SelectOne(t, dsn, testkit.Query{})
					if got := mssqlNumber(err); itoa(got) != n {
						t.Fatalf("attempt %d: error %v (number %d), want mssql.Error %s", i+1, err, got, n)
					}
					rec := proxykit.Next(t, recs, 10*time.Second)
					if !hasFault(rec, "e", "tds_error") {
						t.Fatalf("attempt %d: faults %+v", i+1, rec.Faults)
					}
				}
				if v, err := testkit.SelectOne(t, dsn, testkit.Query{}); err != nil || v != 1 {
					t.Fatalf("third attempt: %v, %v; times: 2 should let it pass", v, err)
				}
			})
		}
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// goConn opens one go-mssqldb connection to dsn, logged in, with a context
// bounded by limit; the test's cleanup closes both.
func goConn(t *testing.T, dsn string, limit time.Duration) (context.Context, *sql.Conn) {
	t.Helper()
	db, err := sql.Open("sqlserver", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ctx, conn
}

func hasFault(rec *proxy.Record, rule, action string) bool {
	for _, f := range rec.Faults {
		if f.Rule == rule && f.Action == action {
			return true
		}
	}
	return false
}

// TestTDSErrorAtQueryGoMSSQL: a batch matching the rule's query gets the
// error; the connection stays usable (the next query on the same
// connection works) and unmatched batches pass.
func TestTDSErrorAtQueryGoMSSQL(t *testing.T) {
	for _, enc := range []tds.Encryption{tds.EncryptNotSup, tds.EncryptOff} {
		for _, n := range []string{"1205", "40501", "18456", "40613"} {
			t.Run(enc.String()+"/"+n, func(t *testing.T) {
				addr, _ := tdsEnv(t, enc, faults.RuleSpec{Name: "q", Action: "tds_error",
					Options: map[string]string{"at": "query", "number": n, "query": `(?i)^\s*update`}})
				ctx, conn := goConn(t, testkit.GoDSN(addr, goEncrypt(enc), nil), 15*time.Second)
				_, err := conn.ExecContext(ctx, "UPDATE t SET x = 1")
				if got := itoa(mssqlNumber(err)); got != n {
					t.Fatalf("UPDATE: %v (number %s), want %s", err, got, n)
				}
				var v int
				if err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&v); err != nil || v != 1 {
					t.Fatalf("SELECT 1 on the same connection after the error: %v, %v", v, err)
				}
			})
		}
	}
}

// TestTDSLoginMatchNeedsVisibleLogin: a rule matching LOGIN7's app acts
// when LOGIN7 is plaintext and records the skip when it is encrypted.
func TestTDSLoginMatchNeedsVisibleLogin(t *testing.T) {
	rule := faults.RuleSpec{Name: "app", Action: "tds_error", Options: map[string]string{"number": "18456", "app": "^" + testkit.AppName + "$"}}
	addr, recs := tdsEnv(t, tds.EncryptNotSup, rule)
	if _, err := testkit.SelectOne(t, testkit.GoDSN(addr, "disable", nil), testkit.Query{}); mssqlNumber(err) != 18456 {
		t.Fatalf("plaintext: %v, want 18456", err)
	}
	proxykit.Next(t, recs, 10*time.Second)
	addr, recs = tdsEnv(t, tds.EncryptOff, rule)
	if _, err := testkit.SelectOne(t, testkit.GoDSN(addr, "false", nil), testkit.Query{}); err != nil {
		t.Fatalf("login-only: %v; the rule cannot see the app name and must pass", err)
	}
	rec := proxykit.Next(t, recs, 10*time.Second)
	found := false
	for _, f := range rec.Faults {
		found = found || f.Action == proxy.ActionSkip && f.Detail == faults.SkipLoginHidden
	}
	if !found {
		t.Fatalf("faults %+v, want skip %q", rec.Faults, faults.SkipLoginHidden)
	}
}

// TestCutResultGoMSSQL: the connection is cut after 1000 rows; go-mssqldb
// reports the lost connection.
func TestCutResultGoMSSQL(t *testing.T) {
	addr, recs := tdsEnv(t, tds.EncryptNotSup, faults.RuleSpec{Name: "cut", Action: "cut_result",
		Options: map[string]string{"query": "(?i)large", "rows": "1000"}})
	db, err := sql.Open("sqlserver", testkit.GoDSN(addr, "disable", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT large(5000, 20)")
	n := 0
	if err == nil {
		for rows.Next() {
			n++
		}
		err = rows.Err()
		rows.Close()
	}
	if err == nil || n >= 5000 {
		t.Fatalf("read %d rows, error %v; want the connection cut after about 1000", n, err)
	}
	t.Logf("go-mssqldb after %d rows: %v", n, err)
	rec := proxykit.Next(t, recs, 10*time.Second)
	if rec.Close == nil {
		t.Fatal("no close recorded")
	}
}

// TestAttentionGoMSSQL measures how go-mssqldb handles its own cancel
// (context deadline → ATTENTION) when the server's reply is slow (a
// downstream latency rule) and the ATTENTION is passed, dropped, or its
// DONE(attention) held for 2 s. With the ATTENTION dropped the server
// never acknowledges it; the time until go-mssqldb returns is logged.
func TestAttentionGoMSSQL(t *testing.T) {
	if testing.Short() {
		t.Skip("attention: several seconds")
	}
	slow := faults.RuleSpec{Name: "slow", Action: "latency", Direction: "downstream", Phase: "established", Options: map[string]string{"delay": "700ms"}}
	cases := []struct {
		name string
		rule *faults.RuleSpec
	}{
		{"passed", nil},
		{"dropped", &faults.RuleSpec{Name: "attn", Action: "attention", Options: map[string]string{"mode": "drop"}}},
		{"delayed 2s", &faults.RuleSpec{Name: "attn", Action: "attention", Options: map[string]string{"mode": "delay", "delay": "2s"}}},
	}
	took := map[string]time.Duration{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rules := []faults.RuleSpec{slow}
			if tc.rule != nil {
				rules = append(rules, *tc.rule)
			}
			addr, recs := tdsEnv(t, tds.EncryptNotSup, rules...)
			db, err := sql.Open("sqlserver", testkit.GoDSN(addr, "disable", nil))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			bg, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := db.Conn(bg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, qcancel := context.WithTimeout(bg, 200*time.Millisecond)
			defer qcancel()
			start := time.Now()
			var v int
			err = conn.QueryRowContext(ctx, "SELECT 1").Scan(&v)
			took[tc.name] = time.Since(start)
			t.Logf("attention %s: go-mssqldb returned after %v: %v", tc.name, took[tc.name].Round(10*time.Millisecond), err)
			if err == nil {
				t.Fatal("the query outlived its 200 ms deadline without an error")
			}
			if tc.name == "dropped" && !strings.Contains(err.Error(), "did not get cancellation confirmation from the server") {
				t.Errorf("dropped ATTENTION: %v, want go-mssqldb's missing cancellation confirmation", err)
			}
			conn.Close()
			db.Close()
			rec := proxykit.Next(t, recs, 20*time.Second)
			if tc.rule != nil && !hasFault(rec, "attn", proxy.ActionArmed) {
				t.Errorf("faults %+v", rec.Faults)
			}
		})
	}
	if took["delayed 2s"] < took["passed"]+time.Second {
		t.Errorf("with DONE(attention) held 2 s go-mssqldb returned after %v, without after %v", took["delayed 2s"], took["passed"])
	}
}

// TestIdleKillGoMSSQL: a connection idle for 300 ms is reset by the proxy;
// go-mssqldb's next query on it fails, and the record says why.
func TestIdleKillGoMSSQL(t *testing.T) {
	addr, recs := tdsEnv(t, tds.EncryptNotSup, faults.RuleSpec{Name: "idle", Action: "idle_kill", Options: map[string]string{"idle": "300ms"}})
	ctx, conn := goConn(t, testkit.GoDSN(addr, "disable", nil), 15*time.Second)
	var v int
	if err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&v); err != nil {
		t.Fatal(err)
	}
	rec := proxykit.Next(t, recs, 10*time.Second) // the reset ends the connection
	if rec.Close == nil || rec.Close.By != proxy.SideProxy || rec.Close.Kind != proxy.CloseRST || !strings.Contains(rec.Close.Reason+fmt.Sprint(rec.Faults), "idle_kill") {
		t.Fatalf("close %+v faults %+v", rec.Close, rec.Faults)
	}
	err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&v)
	if err == nil {
		t.Fatal("a query on the reset connection succeeded")
	}
	t.Logf("go-mssqldb after idle_kill: %v", err)
}

// TestFailoverRuleGoMSSQL: the rule form of failover. A connection open
// when the failover starts (1 s after the rule was set) is reset; a login
// during it gets 40613; logins pass again once its second is over.
func TestFailoverRuleGoMSSQL(t *testing.T) {
	set := time.Now()
	addr, recs := tdsEnv(t, tds.EncryptNotSup, faults.RuleSpec{Name: "fo", Action: "failover", Options: map[string]string{"after": "1s", "duration": "1s"}})
	ctx, conn := goConn(t, testkit.GoDSN(addr, "disable", nil), 20*time.Second)
	var v int
	if err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&v); err != nil {
		t.Fatal(err)
	}
	rec := proxykit.Next(t, recs, 10*time.Second)
	if rec.Close == nil || rec.Close.Kind != proxy.CloseRST || !strings.Contains(rec.Close.Reason, "failover") {
		t.Fatalf("open connection at the failover: close %+v", rec.Close)
	}
	dsn := testkit.GoDSN(addr, "disable", nil)
	if _, err := testkit.SelectOne(t, dsn, testkit.Query{}); mssqlNumber(err) != 40613 {
		t.Fatalf("login during the failover: %v, want 40613", err)
	}
	testkit.WaitFor(t, func() bool {
		_, err := testkit.QuerySelectOne(dsn, testkit.Query{})
		return err == nil
	}, 10*time.Second, "a login passing after the failover")
	if d := time.Since(set); d < 2*time.Second {
		t.Errorf("a login passed %v after the rule was set, inside the failover", d)
	}
}
