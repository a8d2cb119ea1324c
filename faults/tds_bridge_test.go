package faults_test

import (
	"context"
	"crypto/x509"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/msdsn"

	"github.com/tdsproxy/tdsproxy/diagnose"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

// bridgeTDSEnv runs the emulator behind a bridge proxy (docs/bridge.md)
// whose rules the test sets on the returned engine; open gives a
// go-mssqldb pool through it with encrypt (true: TLS for the whole
// session; strict: TDS 8.0; false: login-only; disable: NOT_SUP)
// trusting the bridge's CA.
func bridgeTDSEnv(t *testing.T) (e *faults.Engine, open func(encrypt string) *sql.DB, recs <-chan *proxy.Record, addr string) {
	t.Helper()
	emu := testkit.StartEmulator(t, emulator.Config{Encrypt: tds.EncryptOff, User: testkit.User, Password: testkit.Password})
	dir := t.TempDir()
	upCA := filepath.Join(dir, "up.pem")
	if err := os.WriteFile(upCA, emu.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	e = faults.NewEngine(nil)
	sink, recs := proxykit.Records(64)
	p := proxykit.Start(t, proxy.Config{Name: "p", Upstream: emu.Addr(),
		Bridge: &proxy.BridgeConfig{CAOut: filepath.Join(dir, "ca.pem"), UpstreamCA: upCA}},
		proxy.Options{Decider: e.Decider("p"), Sink: sink})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.BridgeCAPEM())
	open = func(encrypt string) *sql.DB {
		t.Helper()
		cfg, err := msdsn.Parse(testkit.GoDSN(p.Addr().String(), encrypt, nil))
		if err != nil {
			t.Fatal("DSN does not parse")
		}
		if cfg.TLSConfig != nil {
			cfg.TLSConfig.RootCAs = pool
		}
		db := sql.OpenDB(mssql.NewConnectorConfig(cfg))
		db.SetMaxIdleConns(0)
		t.Cleanup(func() { db.Close() })
		return db
	}
	return e, open, recs, p.Addr().String()
}

func setRules(t *testing.T, e *faults.Engine, rules ...faults.RuleSpec) {
	t.Helper()
	if err := e.SetRules("p", rules); err != nil {
		t.Fatal(err)
	}
}

// TDS faults on sessions encrypted on the wire, through a bridge:
// go-mssqldb with encrypt=true and strict (and, through the same bridge,
// login-only and NOT_SUP) sees 40613 at login twice, then
// logs in (times: 2); 1205 at query leaves the connection usable; a rule
// matching LOGIN7's app acts, one matching another app passes, and
// neither records "LOGIN7 not visible".
func TestTDSFaultsInBridgeMode(t *testing.T) {
	e, open, recs, _ := bridgeTDSEnv(t)
	for _, enc := range []string{"true", "strict", "false", "disable"} {
		t.Run(enc+"/40613 at login times 2", func(t *testing.T) {
			setRules(t, e, faults.RuleSpec{Name: "login", Action: "tds_error",
				Options: map[string]string{"at": "login", "number": "40613", "times": "2"}})
			db := open(enc)
			for i := 1; i <= 3; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				err := db.PingContext(ctx)
				cancel()
				want := int32(40613)
				if i == 3 {
					want = 0
				}
				if got := mssqlNumber(err); got != want || (want == 0) != (err == nil) {
					t.Fatalf("login %d: %v (number %d), want %d", i, err, got, want)
				}
				r := proxykit.Next(t, recs, 10*time.Second)
				if r.Bridge == nil || (i < 3) != hasFault(r, "login", faults.TDSError) {
					t.Fatalf("login %d: bridge %v, faults %+v", i, r.Bridge != nil, r.Faults)
				}
			}
		})
		t.Run(enc+"/1205 at query", func(t *testing.T) {
			setRules(t, e, faults.RuleSpec{Name: "q", Action: "tds_error",
				Options: map[string]string{"at": "query", "number": "1205", "query": "(?i)^select", "times": "1"}})
			db := open(enc)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var v int
			err = conn.QueryRowContext(ctx, "SELECT 2").Scan(&v)
			if mssqlNumber(err) != 1205 {
				t.Fatalf("SELECT 2: %v, want error 1205", err)
			}
			if err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&v); err != nil || v != 1 {
				t.Fatalf("SELECT 1 on the same connection after 1205: %v, %v", v, err)
			}
			conn.Close()
			r := proxykit.Next(t, recs, 10*time.Second)
			if !hasFault(r, "q", proxy.ActionArmed) {
				t.Errorf("faults %+v, want q armed", r.Faults)
			}
		})
		t.Run(enc+"/app match", func(t *testing.T) {
			setRules(t, e,
				faults.RuleSpec{Name: "other", Action: "tds_error", Options: map[string]string{"number": "4060", "app": "^not-this-app$"}},
				faults.RuleSpec{Name: "app", Action: "tds_error", Options: map[string]string{"number": "18456", "app": "^" + testkit.AppName + "$"}})
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := open(enc).PingContext(ctx); mssqlNumber(err) != 18456 {
				t.Fatalf("login: %v, want 18456 from the app rule", err)
			}
			r := proxykit.Next(t, recs, 10*time.Second)
			if !hasFault(r, "app", faults.TDSError) || hasFault(r, "other", faults.TDSError) {
				t.Errorf("faults %+v", r.Faults)
			}
			for _, f := range r.Faults {
				if f.Action == proxy.ActionSkip {
					t.Errorf("skip recorded in bridge mode: %+v", f)
				}
			}
		})
	}
}

// cut_result and idle_kill on a bridged encrypt=true session: the cut
// comes after about 1000 rows of the decrypted result, and the idle reset
// from the stage's own clock (proxy.StageCloser); both are the record's
// close, by the proxy.
func TestTDSCutsInBridgeMode(t *testing.T) {
	e, open, recs, _ := bridgeTDSEnv(t)
	t.Run("cut_result", func(t *testing.T) {
		setRules(t, e, faults.RuleSpec{Name: "cut", Action: "cut_result", Options: map[string]string{"query": "(?i)large", "rows": "1000"}})
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		rows, err := open("true").QueryContext(ctx, "SELECT large(5000, 20)")
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
		t.Logf("go-mssqldb (encrypt=true, bridged) after %d rows: %v", n, err)
		r := proxykit.Next(t, recs, 10*time.Second)
		if r.Close == nil || r.Close.By != proxy.SideProxy || !hasFault(r, "cut", proxy.ActionArmed) {
			t.Fatalf("close %+v faults %+v", r.Close, r.Faults)
		}
	})
	t.Run("idle_kill", func(t *testing.T) {
		setRules(t, e, faults.RuleSpec{Name: "idle", Action: "idle_kill", Options: map[string]string{"idle": "300ms"}})
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		conn, err := open("true").Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var v int
		if err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&v); err != nil {
			t.Fatal(err)
		}
		r := proxykit.Next(t, recs, 10*time.Second) // the reset ends the connection
		if r.Close == nil || r.Close.By != proxy.SideProxy || r.Close.Kind != proxy.CloseRST {
			t.Fatalf("close %+v faults %+v", r.Close, r.Faults)
		}
		if err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&v); err == nil {
			t.Fatal("a query on the reset connection succeeded")
		}
	})
}

// redirect on a bridged encrypt=true session: the decrypted login response
// carries the ROUTING ENVCHANGE (times: 1, to the bridge itself), and
// go-mssqldb reconnects there and logs in.
func TestTDSRedirectInBridgeMode(t *testing.T) {
	e, open, recs, addr := bridgeTDSEnv(t)
	setRules(t, e, faults.RuleSpec{Name: "gw", Action: "redirect", Options: map[string]string{"to": addr, "times": "1"}})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var v int
	if err := open("true").QueryRowContext(ctx, "SELECT 1").Scan(&v); err != nil || v != 1 {
		t.Fatalf("SELECT 1 through the redirect: %v, %v", v, err)
	}
	first, second := proxykit.Next(t, recs, 10*time.Second), proxykit.Next(t, recs, 10*time.Second)
	// The bridge's decoder sees the server's own login response; the
	// routing the client got is the fault's detail.
	if !hasFault(first, "gw", faults.TDSRedirect) || first.Bridge == nil || !strings.Contains(fmt.Sprint(first.Faults), addr) {
		t.Errorf("first leg: faults %+v bridge %+v", first.Faults, first.Bridge)
	}
	if hasFault(second, "gw", faults.TDSRedirect) || second.Login == nil || second.Login.Outcome != proxy.LoginOK {
		t.Errorf("second leg: faults %+v login %+v", second.Faults, second.Login)
	}
}

// failover on a bridge: during the failover a go-mssqldb encrypt=true
// login gets 40613 in the server's place (the decrypted login response is
// replaced), not the reset an encrypted passthrough session gets.
func TestTDSFailoverInBridgeMode(t *testing.T) {
	e, open, recs, _ := bridgeTDSEnv(t)
	setRules(t, e, faults.RuleSpec{Name: "fo", Action: "failover", Options: map[string]string{"duration": "1m"}})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := open("true").PingContext(ctx); mssqlNumber(err) != 40613 {
		t.Fatalf("login during the failover: %v, want 40613", err)
	}
	r := proxykit.Next(t, recs, 10*time.Second)
	if n, rule, ok := faults.LoginErrorInjected(r); !ok || n != 40613 || rule != "fo" {
		t.Errorf("faults %+v", r.Faults)
	}
}

// delayed-accept's prelogin_delay in bridge mode: the bridge holds the
// upstream's PRELOGIN answer (TDS 7.x), so go-mssqldb's login takes the
// hold, and the record's prelogin.response step says the proxy held it.
// Under TDS 8.0 strict PRELOGIN is inside TLS and nothing is held.
func TestPreloginDelayInBridgeMode(t *testing.T) {
	const hold = 700 * time.Millisecond
	e, open, recs, _ := bridgeTDSEnv(t)
	setRules(t, e, faults.RuleSpec{Name: "slow-prelogin", Scenario: "delayed-accept",
		Options: map[string]string{"prelogin_delay": hold.String()}})
	for _, enc := range []string{"true", "false", "strict"} {
		t.Run(enc, func(t *testing.T) {
			db := open(enc)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			start := time.Now()
			if err := db.PingContext(ctx); err != nil {
				t.Fatalf("login: %v", err)
			}
			took := time.Since(start)
			r := proxykit.Next(t, recs, 10*time.Second)
			var held time.Duration
			for _, s := range diagnose.Steps(r) {
				if s.Step == string(proxy.PhasePreloginResponse) {
					held = s.Held
				}
			}
			if enc == "strict" {
				if held != 0 || took >= hold {
					t.Errorf("strict: login took %v, prelogin.response held %v; want no hold", took, held)
				}
				return
			}
			if took < hold || held != hold || !hasFault(r, "slow-prelogin", faults.ActionDelay) {
				t.Errorf("login took %v, prelogin.response held %v, faults %+v; want %v held by slow-prelogin", took, held, r.Faults, hold)
			}
		})
	}
}
