package interop

import (
	"context"
	"testing"
	"time"
)

// Microsoft's drivers as the tests shape them: the JDBC driver (JSSE) and
// ODBC Driver 18 (OpenSSL) through mssql-python.

// jdbcMode is the JDBC driver with encrypt=false|true|strict.
func jdbcMode(encrypt string) clientMode {
	return clientMode{ClientJDBC, "encrypt=" + encrypt, func(ctx context.Context, t *testing.T, port int, pw, q string, pem []byte) (*Result, error) {
		t.Helper()
		j, err := FindJDBC()
		Require(t, ClientJDBC, err)
		cfg := JDBCConfig{Port: port, User: emuUser, Password: pw, Encrypt: encrypt, Query: q, Timeout: time.Minute}
		if encrypt == "strict" {
			// Strict mode ignores trustServerCertificate: pin the
			// emulator's certificate.
			cfg.ServerCertificatePEM = pem
		}
		return j.Run(ctx, cfg)
	}}
}

// odbcMode is ODBC Driver 18 with Encrypt=no|yes|strict.
func odbcMode(encrypt string) clientMode {
	return clientMode{ClientODBC, "Encrypt=" + encrypt, func(ctx context.Context, t *testing.T, port int, pw, q string, pem []byte) (*Result, error) {
		t.Helper()
		o, err := FindODBC()
		Require(t, ClientODBC, err)
		cfg := ODBCConfig{Port: port, User: emuUser, Password: pw, Encrypt: encrypt, Query: q, Timeout: time.Minute}
		if encrypt == "strict" {
			cfg.ServerCertificatePEM = pem
		}
		return o.Run(ctx, cfg)
	}}
}

// jdbc runs one JDBC connection through the rig, as emuUser.
func (r *rig) jdbc(ctx context.Context, t *testing.T, cfg JDBCConfig) (*Result, error) {
	t.Helper()
	j, err := FindJDBC()
	Require(t, ClientJDBC, err)
	cfg.Port, cfg.User, cfg.Password = r.port, emuUser, emuPassword
	if cfg.Timeout == 0 {
		cfg.Timeout = 40 * time.Second
	}
	return j.Run(ctx, cfg)
}

// odbc runs one ODBC Driver 18 connection through the rig, as emuUser.
func (r *rig) odbc(ctx context.Context, t *testing.T, cfg ODBCConfig) (*Result, error) {
	t.Helper()
	o, err := FindODBC()
	Require(t, ClientODBC, err)
	cfg.Port, cfg.User, cfg.Password = r.port, emuUser, emuPassword
	if cfg.Timeout == 0 {
		cfg.Timeout = 40 * time.Second
	}
	return o.Run(ctx, cfg)
}

// jdbcRun is a clientRun for one JDBC configuration.
func jdbcRun(cfg JDBCConfig) clientRun {
	return func(ctx context.Context, t *testing.T, r *rig) (*Result, error) {
		t.Helper()
		return r.jdbc(ctx, t, cfg)
	}
}

// odbcRun is a clientRun for one ODBC configuration.
func odbcRun(cfg ODBCConfig) clientRun {
	return func(ctx context.Context, t *testing.T, r *rig) (*Result, error) {
		t.Helper()
		return r.odbc(ctx, t, cfg)
	}
}

// assertJDBC checks a failed JDBC run: the exception's message (without
// ClientConnectionId), class, SQLState and innermost cause ("" cause: not
// checked).
func assertJDBC(t *testing.T, res *Result, err error, message, class, sqlState, cause string) {
	t.Helper()
	assertFailure(t, res, err, []string{message})
	if res.Error != message || res.ErrorClass != class || res.Code != sqlState || cause != "" && res.Cause != cause {
		t.Errorf("jdbc: error %q class %q SQLState %q cause %q; want %q %q %q %q", res.Error, res.ErrorClass, res.Code, res.Cause, message, class, sqlState, cause)
	}
}

// assertODBC checks a failed ODBC run: mssql-python's exception text and
// class, the SQLSTATE, and the ODBC driver's own diagnostic ("" odbc: not
// checked).
func assertODBC(t *testing.T, res *Result, err error, message, class, sqlState, odbc string) {
	t.Helper()
	assertFailure(t, res, err, []string{message})
	if res.Error != message || res.ErrorClass != class || res.Code != sqlState || odbc != "" && res.Cause != odbc {
		t.Errorf("odbc: error %q class %q SQLSTATE %q odbc %q; want %q %q %q %q", res.Error, res.ErrorClass, res.Code, res.Cause, message, class, sqlState, odbc)
	}
}

// Exception classes.
const (
	jdbcException    = "com.microsoft.sqlserver.jdbc.SQLServerException"
	odbcOperational  = "OperationalError"
	odbcProgramming  = "ProgrammingError"
	odbcDriverPrefix = "[Microsoft][ODBC Driver 18 for SQL Server]"
)
