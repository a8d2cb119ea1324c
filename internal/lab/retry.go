package lab

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/tds"
)

// The lab's retry section (docs/tds-faults.md): three transient failures
// an application must survive, each met by go-mssqldb as most
// applications use it (one attempt: the application sees the error) and
// by go-mssqldb behind a retry wrapper (the fix: retry the transient
// numbers with a pause), through a proxy answering in the server's place
// (an emulator in NOT_SUP mode, so the TDS is plaintext).

// transientNumbers are the errors the retry wrapper retries: those client
// retry policies treat as transient (tedious's list, plus 1205).
var transientNumbers = []int32{4060, 10928, 10929, 40197, 40501, 40613, 49918, 49919, 49920, 1205}

// RetryRow is one retry experiment.
type RetryRow struct {
	Case string `json:"case"`
	// Rule is the fault rule armed.
	Rule faults.RuleSpec `json:"rule"`
	// Plain is go-mssqldb with no retry: its error, as the application
	// sees it.
	Plain string `json:"plain"`
	// Retried is go-mssqldb behind the retry wrapper: its result after
	// Attempts attempts, or its last error.
	Retried  string `json:"retried"`
	Attempts int    `json:"attempts"`
	// OK: the plain client failed with the injected number and the
	// wrapped one got the right result.
	OK      bool          `json:"ok"`
	Problem string        `json:"problem,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// RetryReport is RunRetry's outcome.
type RetryReport struct {
	Rows []RetryRow `json:"rows"`
}

// retryCase is one experiment: the rule, the query, the error expected
// from the plain client, and the wrapper's pause between attempts.
type retryCase struct {
	name   string
	rule   faults.RuleSpec
	query  string
	number int32
	pause  time.Duration
}

func retryCases() []retryCase {
	return []retryCase{
		{"transient login error (40613, twice)", faults.RuleSpec{Name: "transient-login", Action: faults.TDSError,
			Options: faults.OptionValues{"at": "login", "number": "40613", "times": "2"}}, "SELECT 1", 40613, 200 * time.Millisecond},
		{"deadlock victim (1205, once)", faults.RuleSpec{Name: "deadlock", Action: faults.TDSError,
			Options: faults.OptionValues{"at": "query", "number": "1205", "query": "(?i)^select 1$", "times": "1"}}, "SELECT 1", 1205, 100 * time.Millisecond},
		{"failover (2 s of 40613)", faults.RuleSpec{Name: "failover", Action: faults.TDSFailover,
			Options: faults.OptionValues{"duration": "2s"}}, "SELECT 1", 40613, 500 * time.Millisecond},
	}
}

// RunRetry runs the retry section.
func RunRetry(ctx context.Context, opts Options) (*RetryReport, error) {
	rep := &RetryReport{}
	for _, c := range retryCases() {
		row, err := runRetryCase(ctx, c, opts)
		if err != nil {
			return rep, err
		}
		rep.Rows = append(rep.Rows, row)
	}
	return rep, nil
}

func runRetryCase(ctx context.Context, c retryCase, opts Options) (RetryRow, error) {
	row := RetryRow{Case: c.name, Rule: c.rule}
	start := time.Now()
	defer func() { row.Elapsed = time.Since(start) }()
	e, err := startEnv(envConfig{Emulator: emulator.Config{Encrypt: tds.EncryptNotSup}, Rules: []faults.RuleSpec{c.rule}, Logger: opts.Logger})
	if err != nil {
		return row, err
	}
	defer e.close()
	dsn := labGoDSN(e.addr())
	// The plain client: one attempt.
	if _, err := selectOne(ctx, dsn, c.query); err == nil {
		row.Problem = "the plain client got no error"
	} else {
		row.Plain = plainError(err)
		if n := errNumber(err); n != c.number {
			row.Problem = fmt.Sprintf("the plain client got %v, not error %d", err, c.number)
		}
	}
	// Re-arm the rule (its times and windows start again) for the fix.
	if err := e.engine.SetRules(proxyName, nil); err != nil {
		return row, err
	}
	if err := e.engine.SetRules(proxyName, []faults.RuleSpec{c.rule}); err != nil {
		return row, err
	}
	v, attempts, err := withRetry(ctx, 8, c.pause, func() (int, error) { return selectOne(ctx, dsn, c.query) })
	row.Attempts = attempts
	switch {
	case err != nil:
		row.Retried = shortError(err.Error())
		if row.Problem == "" {
			row.Problem = "the retrying client failed: " + row.Retried
		}
	case v != 1:
		row.Retried = fmt.Sprintf("SELECT 1 = %d", v)
		if row.Problem == "" {
			row.Problem = "wrong result " + row.Retried
		}
	default:
		row.Retried = fmt.Sprintf("SELECT 1 = 1 after %d attempts", attempts)
	}
	row.OK = row.Problem == ""
	return row, nil
}

// withRetry is the fix: run fn again while it fails with a transient
// error number, up to max attempts, pausing between them.
func withRetry(ctx context.Context, max int, pause time.Duration, fn func() (int, error)) (v, attempts int, err error) {
	for attempts = 1; ; attempts++ {
		v, err = fn()
		if err == nil || attempts == max || !slices.Contains(transientNumbers, errNumber(err)) {
			return v, attempts, err
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return v, attempts, ctx.Err()
		}
	}
}

// plainError is the plain client's error for the table: the number
// first, then the start of go-mssqldb's text.
func plainError(err error) string {
	if n := errNumber(err); n != 0 {
		return fmt.Sprintf("error %d: %s", n, oneLine(shortError(err.Error())))
	}
	return oneLine(shortError(err.Error()))
}

func errNumber(err error) int32 {
	var me mssql.Error
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// labGoDSN is go-mssqldb's DSN for the lab's plaintext emulator.
func labGoDSN(addr string) string {
	q := url.Values{"encrypt": {"disable"}, "connection timeout": {"5"}, "dial timeout": {"5"}, "app name": {"tdsproxy-lab"}}
	return (&url.URL{Scheme: "sqlserver", User: url.UserPassword(labUser, labPassword), Host: addr, RawQuery: q.Encode()}).String()
}

// selectOne opens one connection, runs query and reads one int.
func selectOne(ctx context.Context, dsn, query string) (int, error) {
	db, err := sql.Open("sqlserver", dsn)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var v int
	err = db.QueryRowContext(ctx, query).Scan(&v)
	return v, err
}

// Table prints the retry section.
func (r *RetryReport) Table(w io.Writer) error {
	fmt.Fprintln(w, "RETRY: transient failures, without and with the application's retry")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tCASE\tRULE\tGO-MSSQLDB, NO RETRY\tGO-MSSQLDB WITH RETRY\tRESULT")
	for i, row := range r.Rows {
		status := "ok"
		if !row.OK {
			status = "UNEXPECTED: " + row.Problem
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i+1, row.Case, row.Rule.Name, dash(oneLine(row.Plain)), dash(row.Retried), status)
	}
	return tw.Flush()
}

// OK reports whether every row behaved as documented.
func (r *RetryReport) OK() bool {
	return !slices.ContainsFunc(r.Rows, func(row RetryRow) bool { return !row.OK })
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 70 {
		s = s[:67] + "..."
	}
	return s
}
