//go:build linux

package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
)

// rowBytes is the size of each row of the bulk result: the largest
// varbinary the emulator streams (MS-TDS caps a non-MAX value at 8000).
const rowBytes = 8000

// bulkPacketSize is the TDS packet size the bulk clients ask for: the
// largest a plaintext session may use, what bulk readers configure.
const bulkPacketSize = 32767

// bulkTDS reads `SELECT large(N, 8000)` with go-mssqldb on streams
// connections at once, after each has logged in, and returns the row bytes
// read and the wall time from the first query to the last row.
func bulkTDS(ctx context.Context, addr string, streams int, total int64) (int64, time.Duration, error) {
	c, err := mssql.NewConnector(loginOnlyDSN(addr, bulkPacketSize))
	if err != nil {
		return 0, 0, err
	}
	return bulkWith(ctx, c, streams, total)
}

// bulkWith is bulkTDS with the given connector (its DSN sets the session).
func bulkWith(ctx context.Context, c *mssql.Connector, streams int, total int64) (int64, time.Duration, error) {
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(streams)
	db.SetMaxIdleConns(streams)
	conns := make([]*sql.Conn, 0, streams)
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	for range streams {
		cn, err := db.Conn(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("login: %w", err)
		}
		conns = append(conns, cn)
	}
	rows := rowsPerStream(total, streams)
	query := fmt.Sprintf("SELECT large(%d, %d)", rows, rowBytes)
	var got atomic.Int64
	errs := make(chan error, streams)
	start := time.Now()
	for _, cn := range conns {
		go func() {
			rs, err := cn.QueryContext(ctx, query)
			if err != nil {
				errs <- err
				return
			}
			defer rs.Close()
			var b sql.RawBytes
			var n int64
			for rs.Next() {
				if err := rs.Scan(&b); err != nil {
					errs <- err
					return
				}
				n += int64(len(b))
			}
			got.Add(n)
			errs <- rs.Err()
		}()
	}
	var first error
	for range conns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	dur := time.Since(start)
	if first != nil {
		return 0, 0, first
	}
	if want := int64(rows) * rowBytes * int64(streams); got.Load() != want {
		return 0, 0, fmt.Errorf("read %d row bytes, want %d", got.Load(), want)
	}
	return got.Load(), dur, nil
}

func rowsPerStream(total int64, streams int) int {
	perStream := (total + int64(streams) - 1) / int64(streams)
	return int((perStream + rowBytes - 1) / rowBytes)
}

// bulkRaw is the raw byte stream after login: go-mssqldb logs in, then the
// harness sends the same query itself on the same socket and reads the
// reply as raw TDS packets (headers parsed, payload untouched), so the
// client costs next to nothing and the path is what limits. It returns the
// bytes received (TDS headers and tokens included).
func bulkRaw(ctx context.Context, addr string, streams int, total int64) (int64, time.Duration, error) {
	return bulkRawWith(ctx, streams, total, func(ctx context.Context) (*loggedInConn, error) {
		return loginRaw(ctx, addr, bulkPacketSize)
	})
}

// bulkRawWith logs in streams connections with login, then reads total
// bytes of `SELECT large` over them at once, as raw TDS packets.
func bulkRawWith(ctx context.Context, streams int, total int64, login func(context.Context) (*loggedInConn, error)) (int64, time.Duration, error) {
	conns := make([]*loggedInConn, 0, streams)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range streams {
		c, err := login(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("login: %w", err)
		}
		conns = append(conns, c)
	}
	// Bound every read: a stuck path must not hang the harness.
	deadline := time.Now().Add(5 * time.Minute)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	query := fmt.Sprintf("SELECT large(%d, %d)", rowsPerStream(total, streams), rowBytes)
	var got atomic.Int64
	errs := make(chan error, streams)
	start := time.Now()
	for _, c := range conns {
		_ = c.raw.SetDeadline(deadline)
		go func() {
			n, err := c.rawQuery(query, bulkPacketSize, make([]byte, 256<<10))
			got.Add(n)
			errs <- err
		}()
	}
	var first error
	for range conns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	dur := time.Since(start)
	if first != nil {
		return 0, 0, first
	}
	return got.Load(), dur, nil
}

// latencyResult holds one run of round trips.
type latencyResult struct {
	p50, p99 time.Duration
}

// latency runs n `SELECT 1` round trips with go-mssqldb on one established
// connection (after warm-up) and returns the percentiles.
func latency(ctx context.Context, addr string, n, warm int) (latencyResult, error) {
	c, err := mssql.NewConnector(loginOnlyDSN(addr, 0))
	if err != nil {
		return latencyResult{}, err
	}
	return latencyWith(ctx, c, n, warm)
}

// latencyWith is latency with the given connector.
func latencyWith(ctx context.Context, c *mssql.Connector, n, warm int) (latencyResult, error) {
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(1)
	cn, err := db.Conn(ctx)
	if err != nil {
		return latencyResult{}, fmt.Errorf("login: %w", err)
	}
	defer cn.Close()
	one := func() error {
		var v int
		if err := cn.QueryRowContext(ctx, "SELECT 1").Scan(&v); err != nil {
			return err
		}
		if v != 1 {
			return fmt.Errorf("SELECT 1 returned %d", v)
		}
		return nil
	}
	for range warm {
		if err := one(); err != nil {
			return latencyResult{}, err
		}
	}
	d := make([]time.Duration, n)
	for i := range d {
		t := time.Now()
		if err := one(); err != nil {
			return latencyResult{}, err
		}
		d[i] = time.Since(t)
	}
	slices.Sort(d)
	return latencyResult{p50: pct(d, 0.50), p99: pct(d, 0.99)}, nil
}

// pct is the nearest-rank percentile of sorted d.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(p*float64(len(d))+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}

// loginResult is one fixed-duration run of the connection-setup workload.
type loginResult struct {
	ok, failed int64
	elapsed    time.Duration
	firstErr   error
}

// logins runs workers clients that each log in and disconnect in a loop for
// dur: TCP connect, PRELOGIN, TLS, LOGIN7, login response, close.
func logins(ctx context.Context, connector *mssql.Connector, workers int, dur time.Duration) loginResult {
	var ok, failed atomic.Int64
	var errOnce sync.Once
	var firstErr error
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) && ctx.Err() == nil {
				lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				c, err := connector.Connect(lctx)
				cancel()
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				c.Close()
				ok.Add(1)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(dur + 60*time.Second):
		return loginResult{firstErr: errors.New("logins: workers still running 60s after the end of the run")}
	}
	return loginResult{ok: ok.Load(), failed: failed.Load(), elapsed: time.Since(start), firstErr: firstErr}
}

// openIdle opens n raw connections through addr to the hold server, each
// established end to end (one byte there and back), with conc dialers.
// The first byte is not TDS ('x'), so tdsproxy stops parsing at once and
// relays the connection with splice, as it does any session after login.
// On failure it returns the connections established so far with the error.
func openIdle(ctx context.Context, addr string, n, conc int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Bool
	errs := make(chan error, conc)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 10 * time.Second}
			var b [1]byte
			for !failed.Load() && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				err := func() error {
					c, err := d.DialContext(ctx, "tcp", addr)
					if err != nil {
						return err
					}
					// A healthy path answers in microseconds; a proxy out of
					// file descriptors never does.
					_ = c.SetDeadline(time.Now().Add(5 * time.Second))
					if _, err := c.Write([]byte{'x'}); err != nil {
						c.Close()
						return fmt.Errorf("write: %w", err)
					}
					if _, err := c.Read(b[:]); err != nil {
						c.Close()
						return fmt.Errorf("read: %w", err)
					}
					_ = c.SetDeadline(time.Time{})
					conns[i] = c
					return nil
				}()
				if err != nil {
					failed.Store(true)
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	ok := slices.DeleteFunc(conns, func(c net.Conn) bool { return c == nil })
	if err := <-errs; err != nil {
		return ok, err
	}
	if err := ctx.Err(); err != nil {
		return ok, err
	}
	return ok, nil
}

// closeAll closes conns with RST (SO_LINGER 0) so that thousands of
// connections leave no TIME_WAIT behind to exhaust loopback ports.
func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c == nil {
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
}

// openLogins opens n go-mssqldb sessions (login-only TLS) through addr and
// keeps them.
func openLogins(ctx context.Context, addr string, n, conc int) ([]*loggedInConn, error) {
	conns := make([]*loggedInConn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				c, err := loginRaw(lctx, addr, 0)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("login %d: %w", i, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		closeLogins(conns)
		return nil, err
	}
	return conns, nil
}

func closeLogins(conns []*loggedInConn) {
	for _, c := range conns {
		if c == nil {
			continue
		}
		if tc, ok := c.raw.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
}
