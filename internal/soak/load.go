package soak

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// pace waits until the client's next query is due.
type pace func(ctx context.Context) bool

// cleanSession runs n queries on one clean connection and checks each
// answer. It returns how many were answered correctly; the error is the
// first failure.
func (e *env) cleanSession(ctx context.Context, mode string, n int, wait pace, seq *int) (int, error) {
	db, err := e.open(mode, 0, netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0, 0)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := db.Conn(cctx)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("connect (%s): %w", mode, err)
	}
	defer conn.Close()
	ok := 0
	spid := int64(-1)
	for i := range n {
		if wait != nil && !wait(ctx) {
			return ok, nil
		}
		k := i
		if seq != nil {
			k = *seq
			*seq++
		}
		if err := runQuery(ctx, conn, k, &spid); err != nil {
			return ok, fmt.Errorf("query %d (%s): %w", i, mode, err)
		}
		ok++
	}
	return ok, nil
}

// errWrong marks a wrong answer, as opposed to a failed query.
var errWrong = errors.New("wrong result")

// runQuery runs the k-th query of a rotation and checks its answer.
func runQuery(ctx context.Context, conn *sql.Conn, k int, spid *int64) error {
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch k % 3 {
	case 0:
		var v int
		if err := conn.QueryRowContext(qctx, "SELECT 1").Scan(&v); err != nil {
			return err
		}
		if v != 1 {
			return fmt.Errorf("%w: SELECT 1 = %d", errWrong, v)
		}
	case 1:
		var v int64
		if err := conn.QueryRowContext(qctx, "SELECT @@SPID").Scan(&v); err != nil {
			return err
		}
		if *spid >= 0 && v != *spid {
			return fmt.Errorf("%w: @@SPID changed from %d to %d on one connection", errWrong, *spid, v)
		}
		*spid = v
	default:
		rows, size := 1+k%5, 16*(1+k%8)
		rs, err := conn.QueryContext(qctx, fmt.Sprintf("SELECT large(%d, %d)", rows, size))
		if err != nil {
			return err
		}
		defer rs.Close()
		got := 0
		for rs.Next() {
			var b []byte
			if err := rs.Scan(&b); err != nil {
				return err
			}
			if len(b) != size {
				return fmt.Errorf("%w: row of %d bytes, want %d", errWrong, len(b), size)
			}
			for i, c := range b {
				if c != byte('A'+i%26) {
					return fmt.Errorf("%w: byte %d of a row is %q", errWrong, i, c)
				}
			}
			got++
		}
		if err := rs.Err(); err != nil {
			return err
		}
		if got != rows {
			return fmt.Errorf("%w: %d rows, want %d", errWrong, got, rows)
		}
	}
	return nil
}

// faultedSession opens one connection as scenario sc's client and returns
// how it ended: nil if nothing failed (which is itself a failure).
func (e *env) faultedSession(ctx context.Context, sc Scenario, n int, wait pace) error {
	db, err := e.open(sc.Encrypt, sc.ConnTimeout, sc.Addr, sc.TLSMin, sc.TLSMax)
	if err != nil {
		return err
	}
	defer db.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := db.Conn(cctx)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close()
	if !sc.MidSession {
		return nil // the fault should have stopped the login
	}
	spid := int64(-1)
	// Large answers reach the reset's byte count within a few queries.
	for i := range max(n, 8) {
		if wait != nil && i < n && !wait(ctx) {
			return nil
		}
		if err := runQuery(ctx, conn, 2, &spid); err != nil {
			return err
		}
	}
	return nil
}

// load runs the clients.
func (e *env) load(ctx context.Context, cfg Config) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	interval := cfg.Duration / time.Duration(cfg.Queries)
	start := time.Now()
	var conns, clean atomic.Int64
	for i := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
			// Clients start spread over one interval so they do not march
			// in step.
			offset := time.Duration(rnd.Int64N(int64(interval)))
			q := 0
			wait := func(ctx context.Context) bool {
				due := start.Add(offset + time.Duration(q)*interval)
				q++
				select {
				case <-time.After(time.Until(due)):
					return true
				case <-ctx.Done():
					return false
				}
			}
			seq := i
			for done := 0; done < cfg.Queries && ctx.Err() == nil; done += cfg.PerConn {
				n := min(cfg.PerConn, cfg.Queries-done)
				conns.Add(1)
				if rnd.Float64() < cfg.FaultRate {
					sc := e.scenarios[rnd.IntN(len(e.scenarios))]
					err := e.faultedSession(ctx, sc, n, wait)
					// A faulted connection's queries are not run: skip
					// their slots so the pace stays the same.
					for q < done+n {
						q++
					}
					e.countFaulted(&mu, sc, err)
					continue
				}
				clean.Add(1)
				mode := cleanModes[rnd.IntN(len(cleanModes))]
				ok, err := e.cleanSession(ctx, mode, n, wait, &seq)
				for q < done+n {
					q++
				}
				e.countClean(&mu, ok, err)
			}
		}()
	}
	wg.Wait()
	e.rep.Connections = int(conns.Load())
	e.rep.CleanConnections = int(clean.Load())
}

// countFaulted records how a faulted connection ended; mu guards e.rep.
func (e *env) countFaulted(mu *sync.Mutex, sc Scenario, err error) {
	mu.Lock()
	defer mu.Unlock()
	res := e.rep.Scenarios[sc.Name]
	if res == nil {
		res = &ScenarioResult{Errors: map[string]int{}}
		e.rep.Scenarios[sc.Name] = res
	}
	res.Connections++
	if sc.WantErrMatches(err) {
		res.Expected++
	} else {
		res.Unexpected++
		if len(res.Samples) < 3 {
			res.Samples = append(res.Samples, fmt.Sprint(err))
		}
	}
	if err != nil {
		res.Errors[errorKind(err)]++
	}
}

// countClean records a clean connection's ok queries and its error; mu
// guards e.rep.
func (e *env) countClean(mu *sync.Mutex, ok int, err error) {
	mu.Lock()
	defer mu.Unlock()
	e.rep.Queries += ok
	if err == nil {
		return
	}
	if errors.Is(err, errWrong) {
		e.rep.WrongResults++
	} else {
		e.rep.QueryFailures++
	}
	if len(e.rep.FailureSamples) < 5 {
		e.rep.FailureSamples = append(e.rep.FailureSamples, err.Error())
	}
}

// errorKind strips addresses and ports from an error text so that errors
// of one kind count together.
func errorKind(err error) string {
	f := strings.Fields(err.Error())
	for i, w := range f {
		if strings.Count(w, ".") >= 3 && strings.Contains(w, ":") {
			f[i] = "ADDR"
		}
	}
	return strings.Join(f, " ")
}
