package testkit

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/msdsn"
)

// The login the tests use when the credentials do not matter (the
// emulator accepts any unless its Config sets User and Password).
const (
	User     = "sa"
	Password = "Secret-Pa55"
	// AppName is the LOGIN7 application name tests send by default.
	AppName = "tdsproxy-test"
)

// GoMSSQL is one go-mssqldb connection's settings; the zero value is a
// TDS 7.x login-only session (encrypt=false) as User, trusting the server
// certificate, with 5 s connection and dial timeouts.
type GoMSSQL struct {
	// User and Password; "" means User and Password above.
	User, Password string
	// Encrypt is the DSN's encrypt value: "disable", "false", "true" or
	// "strict"; "" means "false".
	Encrypt string
	// Verify, when true, sends TrustServerCertificate=false (strict mode
	// verifies whatever this says: msdsn parseTLS).
	Verify bool
	// AppName is the DSN's "app name"; "" means AppName below.
	AppName string
	// Timeout is the "connection timeout" and "dial timeout" in whole
	// seconds; 0 means 5 s.
	Timeout time.Duration
	// Params are further DSN parameters; they override the ones above.
	Params url.Values
}

// DSN is the sqlserver:// URL for addr. It holds the password: never log it.
func (g GoMSSQL) DSN(addr string) string {
	user, pw := g.User, g.Password
	if user == "" {
		user = User
	}
	if pw == "" {
		pw = Password
	}
	enc := g.Encrypt
	if enc == "" {
		enc = "false"
	}
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	secs := strconv.Itoa(int((timeout + time.Second - 1) / time.Second))
	q := url.Values{}
	q.Set("database", "master")
	q.Set("encrypt", enc)
	q.Set("TrustServerCertificate", strconv.FormatBool(!g.Verify))
	q.Set("connection timeout", secs)
	q.Set("dial timeout", secs)
	app := g.AppName
	if app == "" {
		app = AppName
	}
	q.Set("app name", app)
	for k, v := range g.Params {
		q[k] = v
	}
	u := url.URL{Scheme: "sqlserver", User: url.UserPassword(user, pw), Host: addr, RawQuery: q.Encode()}
	return u.String()
}

// GoDSN is GoMSSQL{Encrypt: encrypt, Params: extra}.DSN(addr): the login as
// User with 5 s timeouts.
func GoDSN(addr, encrypt string, extra url.Values) string {
	return GoMSSQL{Encrypt: encrypt, Params: extra}.DSN(addr)
}

// Query is how SelectOne connects beyond the DSN.
type Query struct {
	// Dialer, when set, dials the connection (e.g. from a fixed local
	// address, or hashing the bytes).
	Dialer mssql.Dialer
	// TLS, when set, edits the tls.Config go-mssqldb built from the DSN
	// (MaxVersion, CipherSuites): something no DSN parameter offers.
	TLS func(*tls.Config)
	// Timeout bounds the whole query; 0 means 15 s.
	Timeout time.Duration
}

// SelectOne logs in with dsn and runs SELECT 1, returning the value read
// and go-mssqldb's error. A DSN that does not parse fails the test, without
// printing the DSN (it holds the password).
func SelectOne(t testing.TB, dsn string, q Query) (int, error) {
	t.Helper()
	if _, err := msdsn.Parse(dsn); err != nil {
		t.Fatalf("DSN: %v", errors.Unwrap(err))
	}
	return QuerySelectOne(dsn, q)
}

// QuerySelectOne is SelectOne for a goroutine that may not fail the test:
// a DSN that does not parse is an error too (without the DSN's text).
func QuerySelectOne(dsn string, q Query) (int, error) {
	cfg, err := msdsn.Parse(dsn)
	if err != nil {
		return 0, fmt.Errorf("DSN: %w", errors.Unwrap(err))
	}
	if q.TLS != nil && cfg.TLSConfig != nil {
		q.TLS(cfg.TLSConfig)
	}
	conn := mssql.NewConnectorConfig(cfg)
	if q.Dialer != nil {
		conn.Dialer = q.Dialer
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxIdleConns(0)
	timeout := q.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var v int
	err = db.QueryRowContext(ctx, "SELECT 1").Scan(&v)
	return v, err
}

// MaxTLS returns a Query.TLS function capping the TLS version at v (0: no
// cap).
func MaxTLS(v uint16) func(*tls.Config) {
	if v == 0 {
		return nil
	}
	return func(c *tls.Config) { c.MaxVersion = v }
}
