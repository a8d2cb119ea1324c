package control_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/tds"
)

func errNumber(err error) int32 {
	var me mssql.Error
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// An application retrying by hand (go-mssqldb does not retry a failed
// login itself) through a tds_error 40613 rule with times: 2: GET
// /retries shows one chain of three attempts, the first two ended with
// error 40613 from the rule, the third connected; each record carries its
// attempt number; the retries metric counts two retries for the rule.
func TestRetryChainAfterTransientLoginErrors(t *testing.T) {
	in := newInstance(t, control.Options{})
	emu := testkit.StartEmulator(t, emulator.Config{Encrypt: tds.EncryptNotSup, User: testkit.User, Password: testkit.Password})
	addr := addProxy(t, in, "p", emu.Addr())
	if _, err := in.AddFault("p", faults.RuleSpec{Name: "transient", Action: "tds_error",
		Options: faults.OptionValues{"at": "login", "number": "40613", "times": "2"}}); err != nil {
		t.Fatal(err)
	}
	base := serveAdmin(t, in, "")
	c := newSQLClient(t, addr, loopbackIP(3), testkit.User, testkit.Password, "disable")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var errs []int32
	for range 3 {
		_, err := c.queryOnce(ctx, "SELECT 1")
		errs = append(errs, errNumber(err))
		if err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond) // the application's retry interval
	}
	if len(errs) != 3 || errs[0] != 40613 || errs[1] != 40613 || errs[2] != 0 {
		t.Fatalf("error numbers per attempt = %v, want [40613 40613 0]", errs)
	}
	var chains []control.RetryChain
	testkit.WaitFor(t, func() bool {
		var err error
		chains, err = newClient(base, "").Retries(ctx, "p", true)
		return err == nil && len(chains) == 1 && len(chains[0].Attempts) == 3
	}, 5*time.Second, "one chain of three attempts in GET /retries")
	ch := chains[0]
	if ch.Outcome != "connected" || ch.Rule != "transient" {
		t.Errorf("chain outcome %q rule %q, want connected, transient", ch.Outcome, ch.Rule)
	}
	for i, a := range ch.Attempts[:2] {
		if a.Ended != "error 40613" || a.Rule != "transient" || a.OK {
			t.Errorf("attempt %d: %+v", i+1, a)
		}
	}
	if a := ch.Attempts[1]; a.AfterPreviousMS < 150 || a.AfterPreviousMS > 5000 {
		t.Errorf("attempt 2 came %.0f ms after attempt 1, want about the 200 ms the client slept", a.AfterPreviousMS)
	}
	if !ch.Attempts[2].OK {
		t.Errorf("attempt 3: %+v, want ok", ch.Attempts[2])
	}
	page := in.Records(control.RecordQuery{})
	found := 0
	for _, r := range page.Records {
		if r.Retry != nil && r.Retry.Attempt == 3 && r.Retry.PreviousEnded == "error 40613" && r.Retry.PreviousRule == "transient" {
			found++
		}
	}
	if found != 1 {
		t.Errorf("%d records say attempt 3 after error 40613 from rule transient, want 1", found)
	}
	if m := scrapeMatching(t, base, `tdsproxy_faults_injected_total{`, `action="tds_error"`, `rule="transient"`); m != "2" {
		t.Errorf("tdsproxy_faults_injected_total for the rule's tds_error = %q, want 2", m)
	}
	if got := scrapeValue(t, base, `tdsproxy_retries_total{proxy="p",rule="transient"}`); got != "2" {
		t.Errorf("tdsproxy_retries_total for the rule = %q, want 2", got)
	}
}

// scrapeMatching returns the value of the one series whose line holds
// every part, "" when none does.
func scrapeMatching(t *testing.T, base string, parts ...string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return line[strings.LastIndexByte(line, ' ')+1:]
		}
	}
	return ""
}

// scrapeValue returns a series' value from GET /metrics, "" when absent.
func scrapeValue(t *testing.T, base, series string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.WriteString(string(buf[:n]))
		if err != nil {
			break
		}
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// A failover with 20 clients running queries: POST
// /proxies/p/failover?duration=3s resets every open connection at once,
// logins get 40613 for 3 s, then every client reconnects; no query ever
// returns a wrong result, and every client's reconnect is a recorded retry.
func TestFailoverTwentyClients(t *testing.T) {
	if testing.Short() {
		t.Skip("failover: about 5 s")
	}
	in := newInstance(t, control.Options{})
	emu := testkit.StartEmulator(t, emulator.Config{Encrypt: tds.EncryptNotSup, User: testkit.User, Password: testkit.Password})
	addr := addProxy(t, in, "p", emu.Addr())
	base := serveAdmin(t, in, "")
	const clients = 20
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	type result struct {
		resetSeen, refused int
		wrong              int
		reconnectedAt      time.Time
	}
	results := make([]result, clients)
	var failoverAt time.Time
	var mu sync.Mutex
	started := make(chan struct{}, clients)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newSQLClient(t, addr, loopbackIP(100+i), testkit.User, testkit.Password, "disable")
			var conn driver.Conn
			first := true
			for ctx.Err() == nil {
				select {
				case <-stop:
					if conn != nil {
						conn.Close()
					}
					return
				default:
				}
				if conn == nil {
					var err error
					conn, err = c.connect(ctx)
					if err != nil {
						conn = nil // Connect returns a typed nil with its error
						if errNumber(err) == 40613 {
							mu.Lock()
							results[i].refused++
							mu.Unlock()
						}
						time.Sleep(100 * time.Millisecond)
						continue
					}
					mu.Lock()
					if results[i].resetSeen > 0 && results[i].reconnectedAt.IsZero() {
						results[i].reconnectedAt = time.Now()
					}
					mu.Unlock()
					if first {
						first = false
						started <- struct{}{}
					}
				}
				n, err := query(ctx, conn, "SELECT 1", 0)
				if err != nil {
					conn.Close()
					conn = nil
					mu.Lock()
					results[i].resetSeen++
					mu.Unlock()
					continue
				}
				if n != 1 {
					mu.Lock()
					results[i].wrong++
					mu.Unlock()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	for range clients {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("clients did not all connect")
		}
	}
	info, err := newClient(base, "").Failover(ctx, "p", 3*time.Second, 0)
	mu.Lock()
	failoverAt = time.Now()
	mu.Unlock()
	if err != nil || info.Reset != clients || info.Number != 40613 {
		t.Fatalf("failover answer %+v, %v; want %d connections reset", info, err, clients)
	}
	if _, err := newClient(base, "").Failover(ctx, "nope", time.Second, 0); err == nil {
		t.Error("a failover of a proxy that does not exist was accepted")
	}
	testkit.WaitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range results {
			if r.reconnectedAt.IsZero() {
				return false
			}
		}
		return true
	}, 20*time.Second, "every client reconnected after the failover")
	close(stop)
	wg.Wait()
	refusedClients := 0
	for i, r := range results {
		if r.wrong > 0 {
			t.Errorf("client %d: %d wrong results", i, r.wrong)
		}
		if r.resetSeen == 0 {
			t.Errorf("client %d saw no reset", i)
		}
		if r.refused > 0 {
			refusedClients++
		}
		if d := r.reconnectedAt.Sub(failoverAt); d < 2500*time.Millisecond {
			t.Errorf("client %d reconnected %v after the failover began, before its 3 s were over", i, d)
		}
	}
	if refusedClients != clients {
		t.Errorf("%d of %d clients were refused with 40613 during the failover", refusedClients, clients)
	}
	// Each client's reconnect is a retry in its chain.
	connected := func() int {
		ok := 0
		for _, ch := range in.Retries("p", true) {
			if ch.Outcome == "connected" && len(ch.Attempts) >= 2 && strings.HasPrefix(ch.Attempts[0].Ended, "rst by proxy") {
				ok++
			}
		}
		return ok
	}
	if !testkit.Poll(func() bool { return connected() >= clients }, 10*time.Second) {
		t.Errorf("%d connected retry chains starting with the failover's reset, want %d", connected(), clients)
		for _, ch := range in.Retries("p", false) {
			t.Logf("%s %s %d attempts: first %+v last %+v", ch.Identity, ch.Outcome, len(ch.Attempts), ch.Attempts[0], ch.Attempts[len(ch.Attempts)-1])
		}
	}
	if rules, _ := in.Faults("p"); len(rules) != 0 {
		t.Errorf("rules after the failover: %+v, want none", rules)
	}
}
