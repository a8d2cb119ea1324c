// Package interop drives real SQL Server client libraries from Go tests:
// tedious (Node.js, OpenSSL) through node/client.js, FreeTDS tsql (GnuTLS)
// through a generated freetds.conf, go-mssqldb in process, and Microsoft's
// own drivers: the JDBC driver (JSSE) through jdbc/Runner.java and ODBC
// Driver 18 (OpenSSL) through mssql-python and odbc/runner.py. Every runner
// returns a Result carrying the rows the client printed and the client's own
// error text, so a test can assert exactly what an application would see.
//
// Runners are bounded: each has a timeout and kills its child process when the
// context ends. A missing client is reported by FindTedious/FindTSQL/FindJDBC/FindODBC; tests
// pass that error to Require, which skips locally and fails under
// TDSPROXY_INTEROP=require (what `make test` and CI set).
package interop

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// EnvRequire is the environment variable that turns a missing client from a
// skip into a test failure when it is set to "require".
const EnvRequire = "TDSPROXY_INTEROP"

// Client names used in Result.Client and in Require messages.
const (
	ClientTedious   = "tedious"
	ClientTSQL      = "tsql"
	ClientGoMSSQLDB = "go-mssqldb"
	// ClientJDBC is the Microsoft JDBC Driver for SQL Server (jdbc.go).
	ClientJDBC = "jdbc"
	// ClientODBC is the Microsoft ODBC Driver 18 for SQL Server, driven
	// through Microsoft's mssql-python (odbc.go).
	ClientODBC = "odbc"
)

// DefaultTimeout bounds one client run when the config leaves Timeout zero.
const DefaultTimeout = 30 * time.Second

var (
	// ErrNotAvailable reports that a client (binary, runtime or package) is
	// not installed. Pass it to Require.
	ErrNotAvailable = errors.New("interop: client not available")
	// ErrTimeout reports that a client process did not finish in time and
	// was killed. The Result returned with it holds what it printed so far.
	ErrTimeout = errors.New("interop: client did not finish in time")
)

// Message is one server message or client-library error as a client
// reported it.
type Message struct {
	// Kind is "error" or "info" for server messages (ERROR/INFO tokens), or
	// "client" for an error raised by the client library itself (FreeTDS
	// "Error 20002 (severity 9)").
	Kind string
	// Number is the message number: 18456 for a failed login, 2812 for an
	// unknown procedure, FreeTDS's own 200xx numbers for library errors.
	Number int
	// Severity is the class/severity; -1 when the client did not say.
	Severity int
	// State is the message state; -1 when the client did not say.
	State int
	// Server is the server name the message came from, when reported.
	Server string
	// Text is the message text exactly as the client printed it.
	Text string
	// OSError is FreeTDS's `OS error N, "..."` detail line, without the prefix.
	OSError string
}

// Result is what one client run produced.
type Result struct {
	// Client is ClientTedious, ClientTSQL, ClientGoMSSQLDB, ClientJDBC or
	// ClientODBC.
	Client string
	// OK is true when the client connected, logged in and ran the query
	// without an error.
	OK bool
	// Columns are the column names of the first result set ("" for an
	// unnamed column such as SELECT 1).
	Columns []string
	// Rows are the rows of the first result set, each value in the client's
	// own text form; NULL is "NULL".
	Rows [][]string
	// Error is the client's own error text: tedious's err.message,
	// go-mssqldb's err.Error(), FreeTDS tsql's stderr, the JDBC
	// exception's message (without its ClientConnectionId), str() of the
	// mssql_python exception for ODBC. Empty when OK.
	Error string
	// Cause is the innermost cause the client reported under Error, when it
	// keeps a chain: tedious's err.cause ("read ECONNRESET"), the innermost
	// wrapped error of go-mssqldb, the innermost Java cause ("class:
	// message") for JDBC, the ODBC driver's own diagnostic text
	// ("[Microsoft][ODBC Driver 18 for SQL Server]...") for ODBC. Empty
	// otherwise.
	Cause string
	// Code is a client-specific error code: tedious's err.code (ESOCKET,
	// ELOGIN, ...), the first FreeTDS library error number for tsql, the
	// SQLSTATE for the JDBC and ODBC drivers.
	Code string
	// ErrorClass is the exception class the driver raised: the Java class
	// for JDBC (com.microsoft.sqlserver.jdbc.SQLServerException), the
	// mssql_python exception class for ODBC (OperationalError).
	ErrorClass string
	// Number is the driver's error number: JDBC's SQLException.getErrorCode
	// (the server's message number, or 0 for the driver's own errors),
	// tedious's err.number.
	Number int
	// ConnectionID is the ClientConnectionId the JDBC driver appends to
	// connection errors, cut from Error so that Error is the same on every
	// run.
	ConnectionID string
	// Phase is where tedious, JDBC or ODBC failed: "connect" or "query".
	Phase string
	// Messages are the server messages and library errors the client reported.
	Messages []Message
	// ExitCode is the child process's exit status (-1 when killed; 0 for
	// in-process clients).
	ExitCode int
	// Raw is the client's raw output: tedious's, the JDBC runner's or the
	// ODBC runner's JSON line, tsql's stdout.
	Raw string
	// Stderr is the child's standard error.
	Stderr string
	// Elapsed is how long the run took, process start-up included.
	Elapsed time.Duration
	// Dump is the protocol trace when asked for: the TDSDUMP file for tsql,
	// tedious's debug events (password redacted) for tedious.
	Dump string
}

// Require reports a missing client. With TDSPROXY_INTEROP=require it fails
// the test; otherwise it skips it. err == nil does nothing.
func Require(t testing.TB, name string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv(EnvRequire) == "require" {
		t.Fatalf("interop: %s not available (%s=require): %v", name, EnvRequire, err)
		return // Fatalf does not return in a real test; a fake TB may
	}
	t.Skipf("interop: %s not available: %v (run `make deps` to install it, or `make test`)", name, err)
}

// notAvailable wraps a cause with ErrNotAvailable.
func notAvailable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotAvailable, fmt.Sprintf(format, args...))
}

// redact replaces every occurrence of secret in s. An empty secret changes
// nothing. Used on anything a child printed before it reaches a Result,
// because test logs print Results.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "<redacted>")
}

// timeoutOr returns d, or DefaultTimeout when d is not positive.
func timeoutOr(d time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return DefaultTimeout
}
