package interop

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

// clientErrNumber is the server error number as each client reports it:
// tedious's err.number, tsql's "Msg N", go-mssqldb's mssql.Error.Number.
func clientErrNumber(res *Result) int {
	if res == nil {
		return 0
	}
	switch res.Client {
	case ClientTedious:
		return res.Number
	case ClientJDBC:
		return res.Number // SQLException.getErrorCode
	case ClientTSQL:
		for _, m := range res.Messages {
			if m.Kind == "error" {
				return m.Number
			}
		}
		return 0
	}
	n, _ := strconv.Atoi(res.Code)
	return n
}

// engineProxy runs a proxy to upstream whose rules the test sets on the
// returned engine (proxy name "p").
func engineProxy(t *testing.T, upstream string) (*faults.Engine, int, <-chan *proxy.Record) {
	t.Helper()
	e := faults.NewEngine(nil)
	sink, recs := proxykit.Records(256)
	p := proxykit.Start(t, proxy.Config{Name: "p", Upstream: upstream}, proxy.Options{Decider: e.Decider("p"), Sink: sink})
	return e, proxykit.Port(p), recs
}

// TestTDSErrorEachClient: each client's own error for 18456, 40613, 1205
// and 40501 answered by tdsproxy at login and at query, over plaintext
// TDS (tedious encrypt=false, tsql off, go-mssqldb disable) and the
// plaintext part of login-only sessions (tsql request, go-mssqldb false).
// After a query error the client is still connected (go-mssqldb runs
// SELECT 1 next on the same connection in TestTDSErrorAtQueryGoMSSQL).
func TestTDSErrorEachClient(t *testing.T) {
	emu, _ := startEmulator(t, tds.EncryptOff)
	e, port, _ := engineProxy(t, emu.Addr())
	// JDBC and ODBC Driver 18 have no NOT_SUP: encrypt=false / no is
	// login-only.
	modes := []clientMode{tediousMode(false, false), tediousMode(false, true), tsqlMode("off"), tsqlMode("request"), mssqlMode("disable"), mssqlMode("false"),
		jdbcMode("false"), odbcMode("no")}
	for _, at := range []string{"login", "query"} {
		for _, n := range []int{18456, 40613, 1205, 40501} {
			opts := faults.OptionValues{"at": at, "number": strconv.Itoa(n)}
			q := "SELECT 1"
			if at == "query" {
				opts["query"] = `(?i)^\s*update|sp_executesql`
				q = "UPDATE t SET x = 1"
			}
			if err := e.SetRules("p", []faults.RuleSpec{{Name: "e", Action: "tds_error", Options: opts}}); err != nil {
				t.Fatal(err)
			}
			for _, cm := range modes {
				t.Run(at+"/"+strconv.Itoa(n)+"/"+cm.client+"/"+cm.mode, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					res, err := cm.run(ctx, t, port, emuPassword, q, nil)
					if err != nil {
						t.Fatalf("run: %v", err)
					}
					if cm.client == ClientODBC {
						// mssql-python reports the SQLSTATE and the
						// server's text, not the native number.
						if res.OK || !strings.Contains(res.Error, "[Microsoft][SQL Server]"+serverText[n]) {
							t.Fatalf("OK %v, error %q; want the server's text for %d", res.OK, res.Error, n)
						}
					} else if res.OK || clientErrNumber(res) != n {
						t.Fatalf("OK %v, number %d, error %q; want error %d", res.OK, clientErrNumber(res), res.Error, n)
					}
					if at == "query" && cm.client == ClientTedious && res.Phase != "query" {
						t.Errorf("tedious failed in phase %q, want query", res.Phase)
					}
					t.Logf("%s %s: %q (code %q)", cm.client, cm.mode, res.Error, res.Code)
				})
			}
		}
	}
}

// serverText is the start of each error's text as the server words it.
var serverText = map[int]string{
	18456: "Login failed for user",
	40613: "Database 'master' on server",
	1205:  "Transaction (Process ID 52) was deadlocked",
	40501: "The service is currently busy",
}

// tediousWithRetries is tedious with its own retry of transient login
// errors left at the default (maxRetriesOnTransientErrors 3,
// connectionRetryInterval 500 ms); client.js turns it off otherwise.
func tediousWithRetries(t *testing.T, port int) *Result {
	t.Helper()
	td, err := FindTedious()
	Require(t, ClientTedious, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := td.Run(ctx, TediousConfig{Port: port, User: emuUser, Password: emuPassword, Encrypt: false, Timeout: time.Minute,
		Options: map[string]any{"maxRetriesOnTransientErrors": 3}})
	if err != nil {
		t.Fatalf("tedious: %v", err)
	}
	return res
}

// tedious retries 40613 at login by itself: with times: 2 it connects on
// its third attempt, and the retry chain shows three attempts about its
// retry interval apart; with times: 4 it gives up after four attempts
// (1 + 3 retries) with 40613. go-mssqldb does not retry: one attempt, the
// application sees the error.
func TestTediousRetriesTransientLogin(t *testing.T) {
	emu, _ := startEmulator(t, tds.EncryptOff)
	in, err := control.New(control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	add := func(name string, times int) int {
		t.Helper()
		if err := in.AddProxy(proxy.Config{Name: name, Listen: "127.0.0.1:0", Upstream: emu.Addr()}, []faults.RuleSpec{{Name: "transient-" + name, Action: "tds_error",
			Options: faults.OptionValues{"at": "login", "number": "40613", "times": strconv.Itoa(times)}}}); err != nil {
			t.Fatal(err)
		}
		pi, err := in.Proxy(name)
		if err != nil {
			t.Fatal(err)
		}
		return testkit.Port(t, pi.Addr)
	}
	chainOf := func(name string, attempts int) control.RetryChain {
		t.Helper()
		var ch []control.RetryChain
		testkit.WaitFor(t, func() bool {
			ch = in.Retries(name, false)
			return len(ch) == 1 && len(ch[0].Attempts) == attempts
		}, 10*time.Second, name+": one chain of "+strconv.Itoa(attempts)+" attempts")
		return ch[0]
	}
	t.Run("times 2: connects on the third attempt", func(t *testing.T) {
		res := tediousWithRetries(t, add("two", 2))
		if !res.OK {
			t.Fatalf("tedious: %q (number %d); want it to retry past two 40613s", res.Error, res.Number)
		}
		ch := chainOf("two", 3)
		if ch.Outcome != "connected" || ch.Rule != "transient-two" {
			t.Errorf("chain %+v", ch)
		}
		for i, a := range ch.Attempts {
			t.Logf("attempt %d: +%.0f ms, %s (rule %q)", i+1, a.AfterPreviousMS, a.Ended, a.Rule)
			if i < 2 && a.Ended != "error 40613" {
				t.Errorf("attempt %d ended %q, want error 40613", i+1, a.Ended)
			}
			if i > 0 && (a.AfterPreviousMS < 300 || a.AfterPreviousMS > 5000) {
				t.Errorf("attempt %d came %.0f ms after the previous, want about tedious's 500 ms retry interval", i+1, a.AfterPreviousMS)
			}
		}
	})
	t.Run("times 4: gives up", func(t *testing.T) {
		res := tediousWithRetries(t, add("four", 4))
		if res.OK || res.Number != 40613 {
			t.Fatalf("tedious: OK %v, number %d, %q; want 40613 after its retries", res.OK, res.Number, res.Error)
		}
		ch := chainOf("four", 4)
		for i, a := range ch.Attempts {
			if a.Ended != "error 40613" || a.Rule != "transient-four" {
				t.Errorf("attempt %d: %+v", i+1, a)
			}
		}
		if ch.Outcome == "connected" {
			t.Errorf("outcome %q", ch.Outcome)
		}
		t.Logf("tedious gave up: %q", res.Error)
	})
	t.Run("go-mssqldb does not retry", func(t *testing.T) {
		port := add("go", 2)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := RunMSSQL(ctx, MSSQLConfig{Port: port, User: emuUser, Password: emuPassword, Encrypt: "disable", Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if res.OK || clientErrNumber(res) != 40613 {
			t.Fatalf("go-mssqldb: OK %v, %q; want its application to see 40613", res.OK, res.Error)
		}
		if ch := chainOf("go", 1); ch.Attempts[0].Ended != "error 40613" {
			t.Errorf("chain %+v", ch)
		}
	})
}

// A redirect (Azure SQL's gateway in Redirect mode): the login response
// from proxy "gw" carries a ROUTING ENVCHANGE to proxy "node"; tedious,
// go-mssqldb (plaintext and login-only), the JDBC driver, ODBC Driver 18
// and tsql reconnect there and run their query; both legs are recorded.
func TestRedirectFollowed(t *testing.T) {
	emu, _ := startEmulator(t, tds.EncryptOff)
	_, nodePort, nodeRecs := engineProxy(t, emu.Addr())
	e, gwPort, gwRecs := engineProxy(t, emu.Addr())
	if err := e.SetRules("p", []faults.RuleSpec{{Name: "gateway", Action: "redirect",
		Options: faults.OptionValues{"to": "127.0.0.1:" + strconv.Itoa(nodePort)}}}); err != nil {
		t.Fatal(err)
	}
	for _, cm := range []clientMode{tediousMode(false, false), mssqlMode("disable"), mssqlMode("false"), jdbcMode("false"), odbcMode("no"), tsqlMode("off")} {
		t.Run(cm.client+"/"+cm.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := cm.run(ctx, t, gwPort, emuPassword, "SELECT 1", nil)
			if err != nil || !res.OK || len(res.Rows) != 1 || res.Rows[0][0] != "1" {
				t.Fatalf("through the redirect: %v, %+v", err, res)
			}
			gw := nextRecord(t, gwRecs)
			found := false
			for _, f := range gw.Faults {
				found = found || f.Action == "redirect" && strings.Contains(f.Detail, strconv.Itoa(nodePort))
			}
			if !found {
				t.Errorf("gateway record faults %+v", gw.Faults)
			}
			node := nextRecord(t, nodeRecs)
			if !node.Reached(proxy.PhaseEstablished) {
				t.Errorf("node leg: phases %v", recPhases(node))
			}
		})
	}
}

// TestCutResultEachClient: what each client reports when the connection
// is cut after 1000 rows of a 5000-row result (cut_result, RST).
func TestCutResultEachClient(t *testing.T) {
	emu, _ := startEmulator(t, tds.EncryptOff)
	e, port, _ := engineProxy(t, emu.Addr())
	if err := e.SetRules("p", []faults.RuleSpec{{Name: "cut", Action: "cut_result", Options: faults.OptionValues{"query": "(?i)large", "rows": "1000"}}}); err != nil {
		t.Fatal(err)
	}
	for _, cm := range []clientMode{tediousMode(false, false), tsqlMode("off"), mssqlMode("disable"), jdbcMode("false"), odbcMode("no")} {
		t.Run(cm.client+"/"+cm.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := cm.run(ctx, t, port, emuPassword, "SELECT large(5000, 20)", nil)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if len(res.Rows) >= 5000 || res.OK && cm.client != ClientTSQL {
				t.Fatalf("OK %v with %d rows; want the connection lost mid-result", res.OK, len(res.Rows))
			}
			// tsql prints the rows it got and exits 0: the lost
			// connection shows only in its stderr, if at all.
			t.Logf("%s %s: OK %v, %d rows, then %q (code %q, cause %q, stderr %q, exit %d)", cm.client, cm.mode, res.OK, len(res.Rows),
				oneLineText(res.Error), res.Code, res.Cause, oneLineText(res.Stderr), res.ExitCode)
		})
	}
}

func oneLineText(s string) string { return strings.ReplaceAll(s, "\n", " | ") }

// TestAttentionTedious: tedious cancels a request at its requestTimeout
// (an ATTENTION) while a latency rule holds the reply; with the
// ATTENTION dropped the server never acknowledges it, and tedious's own
// cancelTimeout (5 s) ends the wait.
func TestAttentionTedious(t *testing.T) {
	if testing.Short() {
		t.Skip("attention: several seconds")
	}
	td, err := FindTedious()
	Require(t, ClientTedious, err)
	emu, _ := startEmulator(t, tds.EncryptOff)
	slow := faults.RuleSpec{Name: "slow", Action: "latency", Direction: "downstream", Phase: "established", Options: faults.OptionValues{"delay": "700ms"}}
	for _, tc := range []struct {
		name string
		rule *faults.RuleSpec
	}{
		{"passed", nil},
		{"dropped", &faults.RuleSpec{Name: "attn", Action: "attention", Options: faults.OptionValues{"mode": "drop"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, port, _ := engineProxy(t, emu.Addr())
			rules := []faults.RuleSpec{slow}
			if tc.rule != nil {
				rules = append(rules, *tc.rule)
			}
			if err := e.SetRules("p", rules); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := td.Run(ctx, TediousConfig{Port: port, User: emuUser, Password: emuPassword, Encrypt: false, RequestTimeout: 200, Timeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if res.OK {
				t.Fatal("the request outlived its 200 ms requestTimeout")
			}
			t.Logf("attention %s: tedious after %v: %q (code %q)", tc.name, res.Elapsed.Round(10*time.Millisecond), res.Error, res.Code)
		})
	}
}
