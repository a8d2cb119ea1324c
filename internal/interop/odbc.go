package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// MSSQLPythonVersion is the mssql-python release `make deps-odbc` installs
// (odbc/requirements.txt); it ships ODBC Driver 18 for SQL Server
// (mssql-python-odbc, driver 18.6).
const MSSQLPythonVersion = "1.16.0"

// EnvODBCDir overrides where FindODBC looks for the runner's directory (the
// one holding runner.py and .venv/).
const EnvODBCDir = "TDSPROXY_ODBC_DIR"

// ODBC runs odbc/runner.py with the virtual environment's Python: one
// process, one connection per Run.
type ODBC struct {
	// Dir holds runner.py and .venv.
	Dir string
	// Python is the virtual environment's python.
	Python string
	// Version is the installed mssql-python version.
	Version string
}

// ODBCConfig is one ODBC Driver 18 connection.
type ODBCConfig struct {
	Host     string // "" means 127.0.0.1
	Port     int
	User     string
	Password string // on the runner's stdin, never on a command line
	// Query defaults to "SELECT 1".
	Query string
	// Encrypt is the connection string's Encrypt: "no" (PRELOGIN OFF: TLS
	// for the login only), "yes" (ON) or "strict" (TDS 8.0); "" leaves the
	// driver's default (yes in Driver 18).
	Encrypt string
	// TrustServerCertificate; nil means true, so the emulator's self-signed
	// certificate is accepted.
	TrustServerCertificate *bool
	// ServerCertificatePEM is the certificate a strict connection trusts
	// (ServerCertificate=, given a file).
	ServerCertificatePEM []byte
	// HostNameInCertificate is the name the certificate is checked for.
	HostNameInCertificate string
	// LoginTimeout in seconds (SQL_ATTR_LOGIN_TIMEOUT); 0 leaves the
	// driver's default (15 s).
	LoginTimeout int
	// Extra are further connection-string keywords mssql-python allows.
	Extra map[string]string
	// OpenSSL are lines of the [system_default_sect] of a generated
	// OPENSSL_CONF (the driver uses the system's libssl), e.g.
	// "MinProtocol = TLSv1", "MaxProtocol = TLSv1.1",
	// "CipherString = DEFAULT:@SECLEVEL=0", "Ciphersuites = ...".
	// nil still writes a file, without those lines, so the machine's
	// /etc/ssl/openssl.cnf plays no part.
	OpenSSL []string
	// Timeout bounds the process; 0 means DefaultTimeout.
	Timeout time.Duration
}

// String never shows the password.
func (c ODBCConfig) String() string {
	return fmt.Sprintf("odbc{%s:%d user=%q Encrypt=%q openssl=%q}", c.Host, c.Port, c.User, c.Encrypt, c.OpenSSL)
}

// GoString keeps %#v from printing the password.
func (c ODBCConfig) GoString() string { return c.String() }

var (
	odbcOnce sync.Once
	odbcInst *ODBC
	odbcErr  error
)

// FindODBC locates the virtual environment with mssql-python and checks
// that it imports (ODBC Driver 18's shared libraries load only when their
// Debian dependencies, libltdl7 among them, are installed). It returns an
// error wrapping ErrNotAvailable when something is missing.
func FindODBC() (*ODBC, error) {
	odbcOnce.Do(func() { odbcInst, odbcErr = findODBC() })
	return odbcInst, odbcErr
}

func findODBC() (*ODBC, error) {
	dir, err := findDir(EnvODBCDir, "odbc", "runner.py")
	if err != nil {
		return nil, err
	}
	py := filepath.Join(dir, ".venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		return nil, notAvailable("no virtual environment in %s (make deps-odbc): %v", dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Loading the driver's libraries is what fails when a system library
	// is missing: ask for the ODBC driver's path, which loads it.
	probe := `import os; os.environ["MSSQL_PYTHON_NATIVE_PROVIDER"]="msodbcsql18"
import importlib.metadata as m, mssql_python
from mssql_python import ddbc_bindings
print(m.version("mssql-python"))`
	out, err := exec.CommandContext(ctx, py, "-c", probe).CombinedOutput()
	if err != nil {
		return nil, notAvailable("mssql-python does not load in %s (make deps-odbc): %v: %s", dir, err, strings.TrimSpace(string(out)))
	}
	ver := lastLine(string(out))
	if ver != MSSQLPythonVersion {
		return nil, notAvailable("mssql-python %s installed in %s, want %s (make deps-odbc)", ver, dir, MSSQLPythonVersion)
	}
	return &ODBC{Dir: dir, Python: py, Version: ver}, nil
}

// odbcOutput is runner.py's one JSON line.
type odbcOutput struct {
	OK       bool       `json:"ok"`
	Columns  []string   `json:"columns"`
	Rows     [][]string `json:"rows"`
	Messages []struct {
		Message string `json:"message"`
	} `json:"messages"`
	Phase string `json:"phase"`
	Error *struct {
		Class    string `json:"class"`
		Message  string `json:"message"`
		SQLState string `json:"sqlstate"`
		ODBC     string `json:"odbc"`
	} `json:"error"`
}

// Run makes one ODBC Driver 18 connection and runs cfg.Query. A connection
// or query failure is a Result with OK false: Error is the mssql_python
// exception's text, ErrorClass its class, Code the SQLSTATE and Cause the
// ODBC driver's own diagnostic text. Run returns an error when the runner
// could not run, and ErrTimeout (with the partial Result) when it was
// killed.
func (o *ODBC) Run(ctx context.Context, cfg ODBCConfig) (*Result, error) {
	dir, err := os.MkdirTemp("", "tdsproxy-odbc-")
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	defer os.RemoveAll(dir)
	input, err := odbcInput(cfg, dir)
	if err != nil {
		return nil, err
	}
	confPath, err := writeOpenSSLConf(dir, cfg.OpenSSL)
	if err != nil {
		return nil, err
	}

	timeout := timeoutOr(cfg.Timeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.Python, filepath.Join(o.Dir, "runner.py"))
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(os.Environ(), "OPENSSL_CONF", "MSSQL_PYTHON_NATIVE_PROVIDER", "ODBCSYSINI", "ODBCINI"),
		"OPENSSL_CONF="+confPath, "MSSQL_PYTHON_NATIVE_PROVIDER=msodbcsql18")
	cmd.Stdin = bytes.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	runErr := cmd.Run()
	res := &Result{
		Client:   ClientODBC,
		ExitCode: cmd.ProcessState.ExitCode(),
		Elapsed:  time.Since(start),
		Raw:      redact(strings.TrimSpace(stdout.String()), cfg.Password),
		Stderr:   redact(stderr.String(), cfg.Password),
	}
	if ctx.Err() != nil {
		res.Error = fmt.Sprintf("interop: odbc killed after %v", timeout)
		return res, fmt.Errorf("%w: odbc after %v: %v", ErrTimeout, timeout, ctx.Err())
	}
	line := lastLine(res.Raw)
	if line == "" {
		return res, fmt.Errorf("interop: runner.py printed no result (exit %d, %v): %s", res.ExitCode, runErr, strings.TrimSpace(res.Stderr))
	}
	var out odbcOutput
	if err := json.Unmarshal([]byte(line), &out); err != nil {
		return res, fmt.Errorf("interop: runner.py output %q: %w", line, err)
	}
	res.OK, res.Columns, res.Rows, res.Phase = out.OK, out.Columns, out.Rows, out.Phase
	for _, m := range out.Messages {
		res.Messages = append(res.Messages, Message{Kind: "info", Number: -1, Severity: -1, State: -1, Text: m.Message})
	}
	if e := out.Error; e != nil {
		res.Error = redact(e.Message, cfg.Password)
		res.ErrorClass = e.Class
		res.Code = e.SQLState
		res.Cause = redact(e.ODBC, cfg.Password)
	}
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		return res, fmt.Errorf("interop: run %s: %w", o.Python, runErr)
	}
	if res.ExitCode != 0 {
		return res, fmt.Errorf("interop: runner.py exit %d: %s", res.ExitCode, res.Error)
	}
	return res, nil
}

// odbcInput is the case for runner.py as JSON; a server certificate is
// written to a file in dir, which the driver reads.
func odbcInput(cfg ODBCConfig, dir string) ([]byte, error) {
	in := map[string]any{
		"server": cfg.Host, "port": cfg.Port, "user": cfg.User, "password": cfg.Password,
		"trustServerCertificate": cfg.TrustServerCertificate == nil || *cfg.TrustServerCertificate,
	}
	if cfg.Query != "" {
		in["query"] = cfg.Query
	}
	if cfg.Encrypt != "" {
		in["encrypt"] = cfg.Encrypt
	}
	if len(cfg.ServerCertificatePEM) > 0 {
		p := filepath.Join(dir, "server.pem")
		if err := os.WriteFile(p, cfg.ServerCertificatePEM, 0o600); err != nil {
			return nil, fmt.Errorf("interop: %w", err)
		}
		in["serverCertificate"] = p
	}
	if cfg.HostNameInCertificate != "" {
		in["hostNameInCertificate"] = cfg.HostNameInCertificate
	}
	if cfg.LoginTimeout > 0 {
		in["loginTimeout"] = cfg.LoginTimeout
	}
	if len(cfg.Extra) > 0 {
		in["extra"] = cfg.Extra
	}
	input, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("interop: odbc config: %w", err)
	}
	return input, nil
}

// writeOpenSSLConf writes dir/openssl.cnf: the given lines in OpenSSL's
// system default section, and returns its path.
func writeOpenSSLConf(dir string, lines []string) (string, error) {
	// OpenSSL reads OPENSSL_CONF when the driver initialises libssl; the
	// [system_default_sect] is what every SSL_CTX starts from.
	var conf strings.Builder
	conf.WriteString("# generated by tdsproxy internal/interop\nopenssl_conf = openssl_init\n\n[openssl_init]\nssl_conf = ssl_sect\n\n[ssl_sect]\nsystem_default = system_default_sect\n\n[system_default_sect]\n")
	for _, l := range lines {
		if strings.ContainsAny(l, "\r\n[]") {
			return "", fmt.Errorf("interop: OpenSSL line %q has a newline or bracket", l)
		}
		conf.WriteString(l + "\n")
	}
	confPath := filepath.Join(dir, "openssl.cnf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o600); err != nil {
		return "", fmt.Errorf("interop: %w", err)
	}
	return confPath, nil
}
