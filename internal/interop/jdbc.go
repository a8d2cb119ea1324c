package interop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// JDBCVersion is the Microsoft JDBC Driver for SQL Server release that
// jdbc/pom.xml pins (Maven Central com.microsoft.sqlserver:mssql-jdbc).
const JDBCVersion = "13.6.2.jre11"

// EnvJDBCDir overrides where FindJDBC looks for the runner's directory (the
// one holding Runner.java, pom.xml and lib/).
const EnvJDBCDir = "TDSPROXY_JDBC_DIR"

// JDBC runs jdbc/Runner.java on the machine's JDK. JVM start-up costs more
// than a connection, so each JVM serves many runs: Run hands a case to an
// idle JVM started with the same JVM-wide settings (TLS versions, suites,
// security properties), or starts one. Close ends them all; a JVM also ends
// when its stdin closes, so none outlives the process that started it.
// Runs may be concurrent; each JVM serves one at a time.
type JDBC struct {
	// Dir holds Runner.java, pom.xml and lib/.
	Dir string
	// Java is the java executable; JavaVersion what `java -version` said
	// on its first line.
	Java, JavaVersion string
	// Classpath is the compiled runner's directory and the driver jar.
	Classpath string

	mu   sync.Mutex
	idle map[string][]*jvm // by jvmKey
	all  map[*jvm]bool
}

// JDBCConfig is one JDBC connection. Everything but the JVM-wide TLS
// settings is a driver connection property.
type JDBCConfig struct {
	Host     string // "" means 127.0.0.1
	Port     int
	User     string
	Password string // sent on the JVM's stdin, never on a command line
	// Query defaults to "SELECT 1".
	Query string
	// Encrypt is the driver's encrypt property: "false" (PRELOGIN OFF: TLS
	// for the login only), "true" (ON) or "strict" (TDS 8.0); "" leaves
	// the driver's default (true since 10.2).
	Encrypt string
	// TrustServerCertificate; nil means true, so the emulator's self-signed
	// certificate is accepted. The driver ignores it in strict mode.
	TrustServerCertificate *bool
	// ServerCertificatePEM is the certificate a strict connection trusts
	// (the driver's serverCertificate property, given a file).
	ServerCertificatePEM []byte
	// LoginTimeout is the driver's loginTimeout in seconds; 0 leaves the
	// driver's default (30 s, or 15 s in the driver's docs for older
	// releases).
	LoginTimeout int
	// Props are further driver properties (hostNameInCertificate,
	// connectRetryCount, sslProtocol, ...).
	Props map[string]string
	// Protocols and CipherSuites are JSSE's jdk.tls.client.protocols and
	// jdk.tls.client.cipherSuites (JSSE names: "TLSv1.2",
	// "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"); nil leaves JSSE's defaults.
	Protocols, CipherSuites []string
	// SecurityProps override java.security properties for the JVM, e.g.
	// jdk.tls.disabledAlgorithms to allow TLS 1.0 and 1.1.
	SecurityProps map[string]string
	// Timeout bounds the run; 0 means DefaultTimeout. A JVM that does not
	// answer in time is killed.
	Timeout time.Duration
}

// String never shows the password.
func (c JDBCConfig) String() string {
	return fmt.Sprintf("jdbc{%s:%d user=%q encrypt=%q protocols=%v suites=%v}", c.Host, c.Port, c.User, c.Encrypt, c.Protocols, c.CipherSuites)
}

// GoString keeps %#v from printing the password.
func (c JDBCConfig) GoString() string { return c.String() }

var (
	jdbcOnce sync.Once
	jdbcInst *JDBC
	jdbcErr  error
)

// FindJDBC locates java, javac and the driver jar, and compiles the runner
// once per source (into build/<hash>/ beside it). It returns an error
// wrapping ErrNotAvailable when something is missing. Every call returns
// the same *JDBC, whose JVMs are shared by all callers.
func FindJDBC() (*JDBC, error) {
	jdbcOnce.Do(func() { jdbcInst, jdbcErr = findJDBC() })
	return jdbcInst, jdbcErr
}

func findJDBC() (*JDBC, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, notAvailable("java not on PATH (the JDBC driver needs a JDK 11 or later): %v", err)
	}
	javac, err := exec.LookPath("javac")
	if err != nil {
		return nil, notAvailable("javac not on PATH (a JDK, not only a JRE, compiles the runner): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, java, "-version").CombinedOutput()
	if err != nil {
		return nil, notAvailable("%s -version: %v", java, err)
	}
	ver := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	dir, err := findDir(EnvJDBCDir, "jdbc", "Runner.java")
	if err != nil {
		return nil, err
	}
	jar := filepath.Join(dir, "lib", "mssql-jdbc-"+JDBCVersion+".jar")
	if _, err := os.Stat(jar); err != nil {
		return nil, notAvailable("mssql-jdbc %s not installed (make deps-jdbc): %v", JDBCVersion, err)
	}
	classes, err := compileRunner(ctx, javac, dir, jar)
	if err != nil {
		return nil, err
	}
	return &JDBC{Dir: dir, Java: java, JavaVersion: ver, Classpath: classes + string(os.PathListSeparator) + jar,
		idle: map[string][]*jvm{}, all: map[*jvm]bool{}}, nil
}

// compileRunner compiles Runner.java into build/<hash of source and jar
// name>/ unless that directory exists. javac writes into a temporary
// directory renamed into place, so concurrent test binaries (one per
// package) cannot see half a build.
func compileRunner(ctx context.Context, javac, dir, jar string) (string, error) {
	src := filepath.Join(dir, "Runner.java")
	b, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("interop: %w", err)
	}
	sum := sha256.Sum256(append(b, []byte(filepath.Base(jar))...))
	out := filepath.Join(dir, "build", hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(out, "Runner.class")); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("interop: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".javac-")
	if err != nil {
		return "", fmt.Errorf("interop: %w", err)
	}
	defer os.RemoveAll(tmp)
	if msg, err := exec.CommandContext(ctx, javac, "-nowarn", "-encoding", "UTF-8", "-d", tmp, "-cp", jar, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("interop: javac Runner.java: %v: %s", err, msg)
	}
	if err := os.Rename(tmp, out); err != nil {
		// Another process won the race: use its build.
		if _, serr := os.Stat(filepath.Join(out, "Runner.class")); serr == nil {
			return out, nil
		}
		return "", fmt.Errorf("interop: %w", err)
	}
	return out, nil
}

// findDir finds a runner directory holding marker: $env, else sub/ beside
// this source file (tests run from a source tree), else
// internal/interop/sub under the module root above the working directory.
func findDir(env, sub, marker string) (string, error) {
	var tried []string
	check := func(dir string) bool {
		tried = append(tried, dir)
		_, err := os.Stat(filepath.Join(dir, marker))
		return err == nil
	}
	if d := os.Getenv(env); d != "" {
		if check(d) {
			return d, nil
		}
		return "", notAvailable("%s=%s has no %s", env, d, marker)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		if d := filepath.Join(filepath.Dir(file), sub); check(d) {
			return d, nil
		}
	}
	if wd, err := os.Getwd(); err == nil {
		for dir, i := wd, 0; i < 16; dir, i = filepath.Dir(dir), i+1 {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				if d := filepath.Join(dir, "internal", "interop", sub); check(d) {
					return d, nil
				}
				break
			}
			if dir == filepath.Dir(dir) {
				break
			}
		}
	}
	return "", notAvailable("%s not found (tried %s)", marker, strings.Join(tried, ", "))
}

// propsEscape writes s as a java.util.Properties key or value.
func propsEscape(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '\\' || r == '=' || r == ':' || r == '#' || r == '!':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == ' ' && i == 0:
			b.WriteString(`\ `)
		case r < 0x20 || r > 0x7e:
			for _, u := range utf16Units(r) {
				fmt.Fprintf(&b, `\u%04x`, u)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func utf16Units(r rune) []uint16 {
	if r < 0x10000 {
		return []uint16{uint16(r)}
	}
	r -= 0x10000
	return []uint16{uint16(0xd800 + (r >> 10)), uint16(0xdc00 + (r & 0x3ff))}
}

// jdbcOutput is one "@@result" line of Runner.java.
type jdbcOutput struct {
	OK       bool       `json:"ok"`
	Columns  []string   `json:"columns"`
	Rows     [][]string `json:"rows"`
	Messages []struct {
		Kind     string `json:"kind"`
		Number   int    `json:"number"`
		SQLState string `json:"sqlState"`
		Message  string `json:"message"`
	} `json:"messages"`
	Phase string `json:"phase"`
	Error *struct {
		Class     string  `json:"class"`
		Message   string  `json:"message"`
		ErrorCode *int    `json:"errorCode"`
		SQLState  *string `json:"sqlState"`
		Number    *int    `json:"number"`
		State     *int    `json:"state"`
		Severity  *int    `json:"severity"`
		Server    string  `json:"server"`
		Causes    []struct {
			Class   string `json:"class"`
			Message string `json:"message"`
		} `json:"causes"`
	} `json:"error"`
	ElapsedMs int64 `json:"elapsedMs"`
}

// connIDRe is the " ClientConnectionId:<uuid>" the driver appends to the
// messages of errors raised while connecting (a new id per connection).
var connIDRe = regexp.MustCompile(` ?ClientConnectionId:([0-9a-fA-F-]{36})`)

// Run makes one JDBC connection and runs cfg.Query. A connection or query
// failure is a Result with OK false and the driver's own exception in
// Error (message, without the per-connection ClientConnectionId, which is
// in ConnectionID), ErrorClass, Code (the SQLState) and Cause (the
// innermost cause, "class: message"); a server error is also in Messages.
// Run returns an error when the runner could not run, and ErrTimeout (the
// JVM killed) when it did not answer in time.
func (j *JDBC) Run(ctx context.Context, cfg JDBCConfig) (*Result, error) {
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	timeout := timeoutOr(cfg.Timeout)
	v, err := j.get(cfg)
	if err != nil {
		return nil, err
	}
	in, err := jdbcRequest(cfg, v.dir)
	if err != nil {
		j.put(v)
		return nil, err
	}
	v.stderr.take() // what earlier cases left
	start := time.Now()
	res := &Result{Client: ClientJDBC}
	if _, err := io.WriteString(v.stdin, in); err != nil {
		j.drop(v)
		return nil, fmt.Errorf("interop: write to the JVM: %w (stderr: %s)", err, redact(v.stderr.take(), cfg.Password))
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var line string
	select {
	case line = <-v.lines:
	case <-v.done:
		res.Elapsed = time.Since(start)
		res.Stderr = redact(v.stderr.take(), cfg.Password)
		j.drop(v)
		return res, fmt.Errorf("interop: the JDBC runner exited: %s", strings.TrimSpace(res.Stderr))
	case <-timer.C:
		j.drop(v)
		res.Elapsed = time.Since(start)
		res.Stderr = redact(v.stderr.take(), cfg.Password)
		res.Error = fmt.Sprintf("interop: jdbc killed after %v", timeout)
		return res, fmt.Errorf("%w: jdbc after %v", ErrTimeout, timeout)
	case <-ctx.Done():
		j.drop(v)
		res.Elapsed = time.Since(start)
		res.Error = "interop: jdbc: " + ctx.Err().Error()
		return res, fmt.Errorf("%w: jdbc: %v", ErrTimeout, ctx.Err())
	}
	res.Elapsed = time.Since(start)
	res.Stderr = redact(v.stderr.take(), cfg.Password)
	j.put(v)
	res.Raw = redact(line, cfg.Password)
	var out jdbcOutput
	if err := json.Unmarshal([]byte(line), &out); err != nil {
		return res, fmt.Errorf("interop: Runner output %q: %w", res.Raw, err)
	}
	out.fill(res, cfg.Password)
	return res, nil
}

// jdbcRequest is the case for the Runner: properties (propsEscape), one
// per line, ended by a line ".". A server certificate is written to a
// file in dir, which the driver reads.
func jdbcRequest(cfg JDBCConfig, dir string) (string, error) {
	var in strings.Builder
	kv := func(k, val string) { fmt.Fprintf(&in, "%s=%s\n", propsEscape(k), propsEscape(val)) }
	kv("host", cfg.Host)
	kv("port", fmt.Sprint(cfg.Port))
	kv("user", cfg.User)
	kv("password", cfg.Password)
	if cfg.Query != "" {
		kv("query", cfg.Query)
	}
	if cfg.Encrypt != "" {
		kv("encrypt", cfg.Encrypt)
	}
	trust := cfg.TrustServerCertificate == nil || *cfg.TrustServerCertificate
	kv("trustServerCertificate", fmt.Sprint(trust))
	if len(cfg.ServerCertificatePEM) > 0 {
		sum := sha256.Sum256(cfg.ServerCertificatePEM)
		p := filepath.Join(dir, "server-"+hex.EncodeToString(sum[:8])+".pem")
		if err := os.WriteFile(p, cfg.ServerCertificatePEM, 0o600); err != nil {
			return "", fmt.Errorf("interop: %w", err)
		}
		kv("serverCertificate", p)
	}
	if cfg.LoginTimeout > 0 {
		kv("loginTimeout", fmt.Sprint(cfg.LoginTimeout))
	}
	props := make([]string, 0, len(cfg.Props))
	for k := range cfg.Props {
		props = append(props, k)
	}
	sort.Strings(props)
	for _, k := range props {
		kv("prop."+k, cfg.Props[k])
	}
	in.WriteString(".\n")

	return in.String(), nil
}

// fill copies the Runner's answer into res, with password redacted.
func (out *jdbcOutput) fill(res *Result, password string) {
	res.OK, res.Columns, res.Rows, res.Phase = out.OK, out.Columns, out.Rows, out.Phase
	for _, m := range out.Messages {
		res.Messages = append(res.Messages, Message{Kind: "info", Number: m.Number, Severity: -1, State: -1, Text: m.Message})
	}
	if e := out.Error; e != nil {
		msg := redact(e.Message, password)
		if m := connIDRe.FindStringSubmatch(msg); m != nil {
			res.ConnectionID = m[1]
		}
		res.Error = connIDRe.ReplaceAllString(msg, "")
		res.ErrorClass = e.Class
		if e.SQLState != nil {
			res.Code = *e.SQLState
		}
		if e.ErrorCode != nil {
			res.Number = *e.ErrorCode
		}
		if n := len(e.Causes); n > 0 {
			c := e.Causes[n-1]
			res.Cause = redact(c.Class+": "+c.Message, password)
		}
		if e.Number != nil {
			m := Message{Kind: "error", Number: *e.Number, Severity: -1, State: -1, Server: e.Server, Text: res.Error}
			if e.Severity != nil {
				m.Severity = *e.Severity
			}
			if e.State != nil {
				m.State = *e.State
			}
			res.Messages = append(res.Messages, m)
		}
	}
}
