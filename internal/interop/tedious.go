package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// TediousVersion is the tedious release package-lock.json pins.
const TediousVersion = "19.2.2"

// EnvTediousDir overrides where FindTedious looks for the Node package
// (the directory holding client.js and node_modules).
const EnvTediousDir = "TDSPROXY_TEDIOUS_DIR"

// minNode is the lowest Node.js release tedious 19 supports (its
// package.json "engines": ">=18.17").
var minNode = [3]int{18, 17, 0}

// Tedious runs node/client.js, one tedious connection per Run.
type Tedious struct {
	// Dir holds client.js and node_modules/tedious.
	Dir string
	// Node is the node executable.
	Node string
	// NodeVersion is what `node --version` printed, e.g. "v20.20.2".
	NodeVersion string
}

// TediousConfig is one tedious connection. JSON names are the ones
// client.js reads.
type TediousConfig struct {
	Server   string `json:"server"`
	Port     int    `json:"port"`
	User     string `json:"user"`
	Password string `json:"password"`
	// Encrypt is false, true or "strict" (tedious's options.encrypt);
	// nil means true, tedious's own default.
	Encrypt any `json:"encrypt,omitempty"`
	// TrustServerCertificate; nil means true, so the emulator's self-signed
	// certificate is accepted.
	TrustServerCertificate *bool `json:"trustServerCertificate,omitempty"`
	// CryptoCredentialsDetails reaches tls.createSecureContext, e.g.
	// {MinVersion: "TLSv1", Ciphers: "DEFAULT:@SECLEVEL=0"}.
	CryptoCredentialsDetails *CryptoCredentials `json:"cryptoCredentialsDetails,omitempty"`
	// ConnectTimeout and RequestTimeout are tedious's own timeouts in
	// milliseconds; 0 leaves tedious's defaults (15000 each).
	ConnectTimeout int `json:"connectTimeout,omitempty"`
	RequestTimeout int `json:"requestTimeout,omitempty"`
	// Query defaults to "SELECT 1".
	Query string `json:"query,omitempty"`
	// RPC runs the query with execSql (sp_executesql) instead of
	// execSqlBatch.
	RPC bool `json:"-"`
	// Options are extra tedious connection options merged last
	// (tdsVersion, packetSize, ...).
	Options map[string]any `json:"options,omitempty"`
	// Debug collects tedious's debug events (packets, payloads, tokens)
	// into Result.Dump, password redacted.
	Debug bool `json:"debug,omitempty"`
	// Timeout bounds the whole run; 0 means DefaultTimeout. client.js gets
	// the same limit as its own hard timeout, this process a bit more.
	Timeout time.Duration `json:"-"`
}

// CryptoCredentials is the subset of Node's tls.createSecureContext options
// the tests use.
type CryptoCredentials struct {
	MinVersion string `json:"minVersion,omitempty"` // "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"
	MaxVersion string `json:"maxVersion,omitempty"`
	Ciphers    string `json:"ciphers,omitempty"` // OpenSSL cipher list
	// CA is a PEM bundle of trusted certificates. tedious's strict mode
	// ignores trustServerCertificate (it calls tls.connect with Node's
	// default rejectUnauthorized: true), so a strict test must pin the
	// server's certificate here.
	CA string `json:"ca,omitempty"`
}

// String never shows the password.
func (c TediousConfig) String() string {
	return fmt.Sprintf("tedious{%s:%d user=%q encrypt=%v}", c.Server, c.Port, c.User, c.Encrypt)
}

// GoString keeps %#v from printing the password.
func (c TediousConfig) GoString() string { return c.String() }

// FindTedious locates node and the Node package with tedious installed.
// It returns an error wrapping ErrNotAvailable when either is missing.
func FindTedious() (*Tedious, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, notAvailable("node not on PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "--version").Output()
	if err != nil {
		return nil, notAvailable("%s --version: %v", node, err)
	}
	ver := strings.TrimSpace(string(out))
	if !versionAtLeast(ver, minNode) {
		return nil, notAvailable("node %s is older than v%d.%d.%d, which tedious %s needs", ver, minNode[0], minNode[1], minNode[2], TediousVersion)
	}
	dir, err := tediousDir()
	if err != nil {
		return nil, err
	}
	pkg, err := os.ReadFile(filepath.Join(dir, "node_modules", "tedious", "package.json"))
	if err != nil {
		return nil, notAvailable("tedious not installed in %s (npm ci): %v", dir, err)
	}
	var meta struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(pkg, &meta); err != nil {
		return nil, notAvailable("node_modules/tedious/package.json: %v", err)
	}
	if meta.Version != TediousVersion {
		return nil, notAvailable("tedious %s installed in %s, want %s (npm ci)", meta.Version, dir, TediousVersion)
	}
	return &Tedious{Dir: dir, Node: node, NodeVersion: ver}, nil
}

// tediousDir finds the directory holding client.js: $TDSPROXY_TEDIOUS_DIR,
// else node/ beside this source file (tests run from a source tree), else
// internal/interop/node under the module root above the working directory.
func tediousDir() (string, error) {
	var tried []string
	check := func(dir string) bool {
		tried = append(tried, dir)
		_, err := os.Stat(filepath.Join(dir, "client.js"))
		return err == nil
	}
	if d := os.Getenv(EnvTediousDir); d != "" {
		if check(d) {
			return d, nil
		}
		return "", notAvailable("%s=%s has no client.js", EnvTediousDir, d)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		if d := filepath.Join(filepath.Dir(file), "node"); check(d) {
			return d, nil
		}
	}
	if wd, err := os.Getwd(); err == nil {
		for dir, i := wd, 0; i < 16; dir, i = filepath.Dir(dir), i+1 {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				if d := filepath.Join(dir, "internal", "interop", "node"); check(d) {
					return d, nil
				}
				break
			}
			if dir == filepath.Dir(dir) {
				break
			}
		}
	}
	return "", notAvailable("client.js not found (tried %s)", strings.Join(tried, ", "))
}

// versionAtLeast reports whether a "v20.20.2"-style version is >= min.
func versionAtLeast(v string, min [3]int) bool {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	for i := 0; i < 3; i++ {
		n := 0
		if i < len(parts) {
			// "2-pre" and the like: keep the leading digits.
			digits := strings.TrimRightFunc(parts[i], func(r rune) bool { return r < '0' || r > '9' })
			var err error
			if n, err = strconv.Atoi(digits); err != nil {
				return false
			}
		}
		if n != min[i] {
			return n > min[i]
		}
	}
	return true
}

// tediousOutput is client.js's one JSON line.
type tediousOutput struct {
	OK       bool             `json:"ok"`
	Rows     [][]any          `json:"rows"`
	Columns  []string         `json:"columns"`
	RowCount *int             `json:"rowCount"`
	Messages []tediousMessage `json:"messages"`
	Error    *tediousError    `json:"error"`
	Phase    string           `json:"phase"`
	Debug    []string         `json:"debug"`
}

type tediousMessage struct {
	Kind    string `json:"kind"`
	Number  int    `json:"number"`
	State   int    `json:"state"`
	Class   int    `json:"class"`
	Message string `json:"message"`
}

// inner is the next error down the chain: the cause, else the first of an
// AggregateError's errors.
func (e *tediousError) inner() *tediousError {
	if e.Cause != nil {
		return e.Cause
	}
	if len(e.Errors) > 0 {
		return e.Errors[0]
	}
	return nil
}

type tediousError struct {
	Message string          `json:"message"`
	Code    string          `json:"code"`
	Name    string          `json:"name"`
	Number  *int            `json:"number"`
	State   *int            `json:"state"`
	Class   *int            `json:"class"`
	Cause   *tediousError   `json:"cause"`
	Errors  []*tediousError `json:"errors"`
}

// Run makes one tedious connection and runs cfg.Query. A connection or
// query failure is a Result with OK false and tedious's own error text, not
// an error. Run returns an error when client.js could not run or printed no
// result, and ErrTimeout (with the partial Result) when it was killed.
func (t *Tedious) Run(ctx context.Context, cfg TediousConfig) (*Result, error) {
	timeout := timeoutOr(cfg.Timeout)
	in := struct {
		TediousConfig
		Batch   bool  `json:"batch"`
		Timeout int64 `json:"timeout"`
	}{cfg, !cfg.RPC, timeout.Milliseconds()}
	if in.Server == "" {
		in.Server = "127.0.0.1"
	}
	input, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("interop: tedious config: %w", err)
	}

	// The script enforces `timeout` itself; the extra grace lets it print
	// its own timeout result before this side kills it.
	ctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, t.Node, filepath.Join(t.Dir, "client.js"))
	cmd.Dir = t.Dir
	cmd.Stdin = bytes.NewReader(input) // stdin, not argv: keeps the password out of ps
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(start)

	res := &Result{
		Client:   ClientTedious,
		ExitCode: cmd.ProcessState.ExitCode(),
		Elapsed:  elapsed,
		Raw:      redact(strings.TrimSpace(stdout.String()), cfg.Password),
		Stderr:   redact(stderr.String(), cfg.Password),
	}
	if ctx.Err() != nil {
		res.Error = fmt.Sprintf("interop: tedious killed after %v", timeout+5*time.Second)
		return res, fmt.Errorf("%w: tedious after %v: %v", ErrTimeout, timeout+5*time.Second, ctx.Err())
	}
	line := lastLine(res.Raw)
	if line == "" {
		return res, fmt.Errorf("interop: client.js printed no result (exit %d, %v): %s", res.ExitCode, runErr, strings.TrimSpace(res.Stderr))
	}
	var out tediousOutput
	if err := json.Unmarshal([]byte(line), &out); err != nil {
		return res, fmt.Errorf("interop: client.js output %q: %w", line, err)
	}
	fillTedious(res, &out)
	res.Dump = redact(res.Dump, cfg.Password)
	res.Error = redact(res.Error, cfg.Password)
	if runErr != nil {
		// client.js exits non-zero only when it is itself broken (bad
		// config, crash): that is a harness failure, not a client result.
		return res, fmt.Errorf("interop: client.js exit %d: %s", res.ExitCode, res.Error)
	}
	return res, nil
}

func fillTedious(res *Result, out *tediousOutput) {
	res.OK = out.OK
	res.Columns = out.Columns
	res.Phase = out.Phase
	for _, row := range out.Rows {
		r := make([]string, len(row))
		for i, v := range row {
			r[i] = cellString(v)
		}
		res.Rows = append(res.Rows, r)
	}
	for _, m := range out.Messages {
		res.Messages = append(res.Messages, Message{
			Kind: m.Kind, Number: m.Number, Severity: m.Class, State: m.State, Text: m.Message,
		})
	}
	if out.Error != nil {
		res.Error = out.Error.Message
		res.Code = out.Error.Code
		if out.Error.Number != nil {
			res.Number = *out.Error.Number // tedious's err.number
		}
		// Follow cause/errors down to the socket-level text, e.g.
		// "read ECONNRESET" under "Connection lost - read ECONNRESET".
		for e, depth := out.Error.inner(), 0; e != nil && depth < 8; e, depth = e.inner(), depth+1 {
			res.Cause = e.Message
		}
	}
	if len(out.Debug) > 0 {
		res.Dump = strings.Join(out.Debug, "\n")
	}
}

// cellString prints a JSON value the way the tests compare it.
func cellString(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[i+1:])
	}
	return s
}
