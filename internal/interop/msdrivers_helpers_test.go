package interop

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/tds"
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

// odbcHandshakesBeforeLogin is ODBC Driver 18's diagnostic when the server
// closes (RST or FIN) before answering PRELOGIN.
const odbcHandshakesBeforeLogin = "Client unable to establish connection because an error was encountered during handshakes before login. " +
	"Common causes include client attempting to connect to an unsupported version of SQL Server, server too busy to " +
	"accept new connections or a resource limitation (memory or maximum allowed connections) on the server."

// TestMSDriversMissing checks that a driver that is not installed is
// reported as ErrNotAvailable (a named skip, or a failure under
// TDSPROXY_INTEROP=require), not as a harness error.
func TestMSDriversMissing(t *testing.T) {
	empty := t.TempDir()
	t.Setenv(EnvJDBCDir, empty)
	t.Setenv(EnvODBCDir, empty)
	if _, err := findJDBC(); !errors.Is(err, ErrNotAvailable) {
		t.Errorf("findJDBC with %s=%s: %v, want ErrNotAvailable", EnvJDBCDir, empty, err)
	}
	if _, err := findODBC(); !errors.Is(err, ErrNotAvailable) {
		t.Errorf("findODBC with %s=%s: %v, want ErrNotAvailable", EnvODBCDir, empty, err)
	}
	// A runner directory without the installed driver.
	for _, f := range []string{"Runner.java", "runner.py"} {
		if err := os.WriteFile(filepath.Join(empty, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := findJDBC(); !errors.Is(err, ErrNotAvailable) || !strings.Contains(err.Error(), "mssql-jdbc "+JDBCVersion) {
		t.Errorf("findJDBC without the jar: %v, want ErrNotAvailable naming mssql-jdbc %s", err, JDBCVersion)
	}
	if _, err := findODBC(); !errors.Is(err, ErrNotAvailable) || !strings.Contains(err.Error(), "make deps-odbc") {
		t.Errorf("findODBC without the venv: %v, want ErrNotAvailable naming make deps-odbc", err)
	}
}

func TestPropsEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain":            "plain",
		"a=b:c#d!e":        `a\=b\:c\#d\!e`,
		`back\slash`:       `back\\slash`,
		" lead":            `\ lead`,
		"new\nline\ttab":   `new\u000aline\u0009tab`,
		"Pä55wörd":         `P\u00e455w\u00f6rd`,
		"emoji \U0001F600": `emoji \ud83d\ude00`,
	} {
		if got := propsEscape(in); got != want {
			t.Errorf("propsEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConnIDCut(t *testing.T) {
	msg := "Login failed for user 'x'. ClientConnectionId:754e9556-2647-453f-ae2f-baec583aabcf"
	if got := connIDRe.ReplaceAllString(msg, ""); got != "Login failed for user 'x'." {
		t.Errorf("cut %q", got)
	}
	msg = "Error: Connection reset ClientConnectionId:754e9556-2647-453f-ae2f-baec583aabcf."
	if got := connIDRe.ReplaceAllString(msg, ""); got != "Error: Connection reset." {
		t.Errorf("cut %q", got)
	}
}

// TestJDBCPool checks that runs with the same JVM-wide settings share a
// JVM, that other settings get their own, and that an idle JVM is ended.
func TestJDBCPool(t *testing.T) {
	j, err := FindJDBC()
	Require(t, ClientJDBC, err)
	_, port := startEmulator(t, tds.EncryptOff)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	idle := func(key string) []*jvm {
		j.mu.Lock()
		defer j.mu.Unlock()
		return slices.Clone(j.idle[key])
	}
	cfg := JDBCConfig{Port: port, User: emuUser, Password: emuPassword, Encrypt: "true", Protocols: []string{"TLSv1.2"}, CipherSuites: []string{"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"}}
	for range 3 {
		res, err := j.Run(ctx, cfg)
		assertSelectOne(t, res, err)
	}
	pool := idle(jvmKey(cfg))
	if len(pool) != 1 {
		t.Fatalf("%d idle JVMs for one setting after 3 sequential runs, want 1", len(pool))
	}
	j.retire(pool[0])
	select {
	case <-pool[0].done:
	case <-time.After(10 * time.Second):
		t.Fatal("a retired JVM did not exit")
	}
	if n := len(idle(jvmKey(cfg))); n != 0 {
		t.Errorf("%d idle JVMs after retiring the only one", n)
	}
	res, err := j.Run(ctx, cfg) // a fresh JVM
	assertSelectOne(t, res, err)
}
