package interop

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/msdsn"
)

// MSSQLConfig is one go-mssqldb connection, run in process.
type MSSQLConfig struct {
	Host     string // "" means 127.0.0.1
	Port     int
	User     string
	Password string
	// Encrypt is the DSN's encrypt value: "disable" (PRELOGIN NOT_SUP),
	// "false" (OFF: TLS for the login only), "true" (ON) or "strict"
	// (TDS 8.0). "" leaves it out: go-mssqldb then sends OFF and trusts
	// the server certificate.
	Encrypt string
	// TrustServerCertificate; nil means true. go-mssqldb ignores it in
	// strict mode (msdsn parseTLS forces verification): use
	// ServerCertificatePEM there.
	TrustServerCertificate *bool
	// ServerCertificatePEM, when set, is written to a file passed as
	// serverCertificate=: go-mssqldb then accepts exactly this certificate
	// (byte comparison, no chain or host name check), strict mode included.
	ServerCertificatePEM []byte
	// Params are extra DSN parameters ("tlsmin": "1.2", "packet size": ...).
	Params map[string]string
	// TLS, when set, edits the tls.Config go-mssqldb built from the DSN
	// (e.g. MaxVersion, CipherSuites), something no DSN parameter offers.
	TLS func(*tls.Config)
	// Query defaults to "SELECT 1".
	Query string
	// Timeout is passed as "connection timeout" and "dial timeout" (unless
	// Params set them); 0 means DefaultTimeout. The run is abandoned 5 s
	// after it.
	Timeout time.Duration
}

// String never shows the password.
func (c MSSQLConfig) String() string {
	return fmt.Sprintf("go-mssqldb{%s:%d user=%q encrypt=%q}", c.Host, c.Port, c.User, c.Encrypt)
}

// GoString keeps %#v from printing the password.
func (c MSSQLConfig) GoString() string { return c.String() }

// MSSQLDSN builds the sqlserver:// URL for cfg. serverCertFile, when not
// empty, becomes the serverCertificate parameter. The URL holds the
// password: never log it.
func MSSQLDSN(cfg MSSQLConfig, serverCertFile string) string {
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	q := url.Values{}
	if cfg.Encrypt != "" {
		q.Set("encrypt", cfg.Encrypt)
	}
	trust := cfg.TrustServerCertificate == nil || *cfg.TrustServerCertificate
	q.Set("TrustServerCertificate", strconv.FormatBool(trust))
	if serverCertFile != "" {
		q.Set("serverCertificate", serverCertFile)
	}
	secs := strconv.Itoa(int((timeoutOr(cfg.Timeout) + time.Second - 1) / time.Second))
	q.Set("connection timeout", secs)
	q.Set("dial timeout", secs)
	keys := make([]string, 0, len(cfg.Params))
	for k := range cfg.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		q.Set(k, cfg.Params[k])
	}
	u := url.URL{
		Scheme:   "sqlserver",
		User:     url.UserPassword(cfg.User, cfg.Password),
		Host:     net.JoinHostPort(host, strconv.Itoa(cfg.Port)),
		RawQuery: q.Encode(),
	}
	return u.String()
}

// RunMSSQL connects with go-mssqldb and runs cfg.Query. A connection,
// login or query failure is a Result with OK false and go-mssqldb's own
// error text; RunMSSQL returns an error only when the DSN is invalid or
// the run outlives its timeout (ErrTimeout).
func RunMSSQL(ctx context.Context, cfg MSSQLConfig) (*Result, error) {
	certFile := ""
	if len(cfg.ServerCertificatePEM) > 0 {
		dir, err := os.MkdirTemp("", "tdsproxy-mssql-")
		if err != nil {
			return nil, fmt.Errorf("interop: go-mssqldb temp dir: %w", err)
		}
		defer os.RemoveAll(dir)
		certFile = filepath.Join(dir, "server.pem")
		if err := os.WriteFile(certFile, cfg.ServerCertificatePEM, 0o600); err != nil {
			return nil, fmt.Errorf("interop: write server certificate: %w", err)
		}
	}
	params, err := msdsn.Parse(MSSQLDSN(cfg, certFile))
	if err != nil {
		// The DSN holds the password: report the config, not the DSN.
		return nil, fmt.Errorf("interop: go-mssqldb DSN for %v: %w", cfg, err)
	}
	if cfg.TLS != nil && params.TLSConfig != nil {
		params.TLSConfig = params.TLSConfig.Clone()
		cfg.TLS(params.TLSConfig)
	}
	db := sql.OpenDB(mssql.NewConnectorConfig(params))
	defer db.Close()
	db.SetMaxOpenConns(1)

	// go-mssqldb's own "connection timeout" is cfg.Timeout; waiting a
	// little longer lets its error, not ours, be the result.
	timeout := timeoutOr(cfg.Timeout) + 5*time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	query := cfg.Query
	if query == "" {
		query = "SELECT 1"
	}
	// go-mssqldb does not watch the context during the TLS handshake
	// (docs/protocol.md "What clients report"), so the query runs on its own goroutine and this one
	// stops waiting at the deadline.
	done := make(chan *Result, 1)
	start := time.Now()
	go func() { done <- mssqlQuery(ctx, db, query) }()
	select {
	case res := <-done:
		res.Elapsed = time.Since(start)
		res.Error = redact(res.Error, cfg.Password)
		res.Cause = redact(res.Cause, cfg.Password)
		return res, nil
	case <-ctx.Done():
		res := &Result{Client: ClientGoMSSQLDB, Elapsed: time.Since(start), Error: fmt.Sprintf("interop: go-mssqldb gave no result within %v", timeout)}
		return res, fmt.Errorf("%w: go-mssqldb after %v: %v", ErrTimeout, timeout, ctx.Err())
	}
}

func mssqlQuery(ctx context.Context, db *sql.DB, query string) *Result {
	res := &Result{Client: ClientGoMSSQLDB}
	fail := func(err error) *Result {
		res.OK = false
		res.Error = err.Error()
		// Innermost wrapped error, e.g. "connection reset by peer". (No
		// == on errors here: mssql.Error holds a slice and would panic.)
		for u, depth := errors.Unwrap(err), 0; u != nil && depth < 16; u, depth = errors.Unwrap(u), depth+1 {
			res.Cause = u.Error()
		}
		var me mssql.Error
		if errors.As(err, &me) {
			all := me.All
			if len(all) == 0 {
				all = []mssql.Error{me}
			}
			for _, e := range all {
				kind := "error"
				if e.Class <= 10 {
					kind = "info"
				}
				res.Messages = append(res.Messages, Message{
					Kind: kind, Number: int(e.Number), Severity: int(e.Class), State: int(e.State),
					Server: e.ServerName, Text: e.Message,
				})
			}
			res.Code = strconv.Itoa(int(me.Number))
		}
		return res
	}
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	if res.Columns, err = rows.Columns(); err != nil {
		return fail(err)
	}
	for n := 0; rows.Next() && n < 10000; n++ {
		vals := make([]any, len(res.Columns))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fail(err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = goValueString(v)
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	res.OK = true
	return res
}

// goValueString prints a scanned value the way the tests compare it.
func goValueString(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return string(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	default:
		return fmt.Sprint(x)
	}
}
