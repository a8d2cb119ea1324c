package interop

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// recordWait bounds how long a test waits for the proxy to finish a
// connection's record after the client has returned.
const recordWait = 10 * time.Second

// rig is one fault-injecting proxy in front of one upstream (the emulator
// or another server), with the fault engine that decides for it and the
// records of the connections it finished. A rig belongs to one (sub)test;
// its client runs are sequential, so the next record is the last run's.
type rig struct {
	emu     *emulator.Server // nil when the upstream is not the emulator
	engine  *faults.Engine
	proxy   *proxy.Proxy
	port    int
	records chan *proxy.Record
}

// rigName is the proxy name every rig uses: the engine is per rig, so the
// name need not be unique.
const rigName = "p"

// newRig starts a proxy to upstream with the given rules; everything stops
// when the test ends.
func newRig(t *testing.T, upstream string, rules ...faults.RuleSpec) *rig {
	t.Helper()
	r := &rig{engine: faults.NewEngine(nil), records: make(chan *proxy.Record, 64)}
	if err := r.engine.SetRules(rigName, rules); err != nil {
		t.Fatalf("SetRules: %v", err)
	}
	p := proxykit.Start(t, proxy.Config{Name: rigName, Upstream: upstream, DialTimeout: 5 * time.Second},
		proxy.Options{Decider: r.engine.Decider(rigName), Sink: func(rec *proxy.Record) {
			// Never block the session: a test that reads no records
			// simply loses the surplus.
			select {
			case r.records <- rec:
			default:
			}
		}})
	r.proxy = p
	r.port = proxykit.Port(p)
	return r
}

// newEmuRig starts an emulator (the test credentials filled in) and a proxy
// in front of it.
func newEmuRig(t *testing.T, cfg emulator.Config, rules ...faults.RuleSpec) *rig {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.User, cfg.Password = emuUser, emuPassword
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatalf("emulator.New: %v", err)
	}
	if err := emu.Start(); err != nil {
		t.Fatalf("emulator Start: %v", err)
	}
	t.Cleanup(func() { emu.Close() })
	r := newRig(t, emu.Addr(), rules...)
	r.emu = emu
	return r
}

// setRules replaces the proxy's rules; connections accepted from now on use
// the new set.
func (r *rig) setRules(t *testing.T, rules ...faults.RuleSpec) {
	t.Helper()
	if err := r.engine.SetRules(rigName, rules); err != nil {
		t.Fatalf("SetRules: %v", err)
	}
}

// next returns the record of the next connection the proxy finishes.
func (r *rig) next(t *testing.T) *proxy.Record {
	t.Helper()
	select {
	case rec := <-r.records:
		return rec
	case <-time.After(recordWait):
		t.Fatalf("no connection record within %v", recordWait)
		return nil
	}
}

// recordJSON prints a record for a failure message.
func recordJSON(rec *proxy.Record) string {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Sprintf("%+v", rec)
	}
	return string(b)
}

// assertInjectedClose checks that the proxy closed the connection itself,
// in the given style and phase, and that the record names the rule that
// decided it, at that phase.
func assertInjectedClose(t *testing.T, rec *proxy.Record, rule string, phase proxy.Phase, kind proxy.CloseKind) {
	t.Helper()
	c := rec.Close
	if c == nil || c.By != proxy.SideProxy || c.Kind != kind || c.Phase != phase {
		t.Errorf("close %+v, want by proxy, %s, at %s\nrecord: %s", c, kind, phase, recordJSON(rec))
	}
	want := "close:" + string(kind)
	if kind == proxy.CloseAlert {
		want = "close:alert"
	}
	if !slices.ContainsFunc(rec.Faults, func(f proxy.FaultEvent) bool {
		return f.Rule == rule && f.Phase == phase && f.Action == want
	}) {
		t.Errorf("no fault event %q by rule %q at %s; faults %+v", want, rule, phase, rec.Faults)
	}
}

// assertNotInjected checks that no rule injected anything on the
// connection (a rule may still have recorded a "pass").
func assertNotInjected(t *testing.T, rec *proxy.Record) {
	t.Helper()
	for _, f := range rec.Faults {
		if f.Action != "pass" && f.Action != "armed" && f.Action != "skip" {
			t.Errorf("fault %+v injected on a connection no rule should touch", f)
		}
	}
	if rec.Close != nil && rec.Close.By == proxy.SideProxy && rec.Close.Kind != proxy.CloseShutdown {
		t.Errorf("the proxy closed the connection: %+v", rec.Close)
	}
}

// assertSelectOne checks a successful SELECT 1.
func assertSelectOne(t *testing.T, res *Result, err error) {
	t.Helper()
	if err != nil {
		if errors.Is(err, ErrNotAvailable) {
			Require(t, "client", err)
		}
		t.Fatalf("run: %v (result %+v)", err, res)
	}
	if !res.OK || len(res.Rows) != 1 || len(res.Rows[0]) != 1 || res.Rows[0][0] != "1" {
		t.Fatalf("%s: want SELECT 1 to return 1; ok %v rows %q error %q cause %q\nstderr: %s", res.Client, res.OK, res.Rows, res.Error, res.Cause, res.Stderr)
	}
}

// assertTedious checks a failed tedious run: its message, code and the
// innermost cause (empty cause: not checked).
func assertTedious(t *testing.T, res *Result, err error, message, code, cause string) {
	t.Helper()
	assertFailure(t, res, err, []string{message})
	if res.Error != message || res.Code != code || cause != "" && res.Cause != cause {
		t.Errorf("tedious: error %q code %q cause %q; want %q %q %q", res.Error, res.Code, res.Cause, message, code, cause)
	}
}

// Clients as the scenarios shape them.

// tedious runs one tedious connection through the rig, as emuUser.
func (r *rig) tedious(ctx context.Context, t *testing.T, cfg TediousConfig) (*Result, error) {
	t.Helper()
	td, err := FindTedious()
	Require(t, ClientTedious, err)
	cfg.Port, cfg.User, cfg.Password = r.port, emuUser, emuPassword
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Second
	}
	return td.Run(ctx, cfg)
}

// tsql runs one FreeTDS tsql session through the rig, as emuUser.
func (r *rig) tsql(ctx context.Context, t *testing.T, cfg TSQLConfig) (*Result, error) {
	t.Helper()
	_, err := FindTSQL()
	Require(t, ClientTSQL, err)
	cfg.Port, cfg.User, cfg.Password = r.port, emuUser, emuPassword
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Second
	}
	return RunTSQL(ctx, cfg)
}

// clientRun runs one client through a rig and returns what the client saw.
type clientRun func(ctx context.Context, t *testing.T, r *rig) (*Result, error)

// tediousRun is a clientRun for one tedious configuration.
func tediousRun(cfg TediousConfig) clientRun {
	return func(ctx context.Context, t *testing.T, r *rig) (*Result, error) {
		t.Helper()
		return r.tedious(ctx, t, cfg)
	}
}

// tsqlRun is a clientRun for one FreeTDS configuration.
func tsqlRun(cfg TSQLConfig) clientRun {
	return func(ctx context.Context, t *testing.T, r *rig) (*Result, error) {
		t.Helper()
		return r.tsql(ctx, t, cfg)
	}
}

// ptr returns a pointer to v (match.probability, EnableTLSv1).
func ptr[T any](v T) *T { return &v }

// otherClient is a match that never holds for these tests' clients: they
// all connect from 127.0.0.1.
var otherClient = faults.Match{Clients: []string{"127.0.0.2/32"}}

// scenarioRule is a rule named after its scenario, closing with RST.
func scenarioRule(scenario string, opts map[string]string) faults.RuleSpec {
	return faults.RuleSpec{Name: scenario + "-rule", Scenario: scenario, Options: opts}
}

// emuConfig is an emulator that forces encryption (the whole session in
// TLS) and accepts every TLS version from 1.0 to 1.2: the clients' own
// configurations, not the server, are what a rule compares with.
func emuConfig() emulator.Config {
	return emulator.Config{Encrypt: tds.EncryptOn, TLSMin: tls.VersionTLS10, TLSMax: tls.VersionTLS12}
}

// opensslServer is `openssl s_server` listening on loopback: an upstream
// that can do DHE, which Go's crypto/tls (and so the emulator) cannot.
type opensslServer struct {
	addr    string
	certPEM []byte
}

// startOpenSSLDHE runs `openssl s_server` with a fresh certificate for
// localhost/127.0.0.1, ffdhe2048 parameters, TLS 1.2 only, only
// DHE-RSA-AES128-GCM-SHA256 and ALPN tds/8.0 (TDS 8.0 strict). It is
// killed when the test ends.
func startOpenSSLDHE(t *testing.T) *opensslServer {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	Require(t, "openssl", err)
	dir := t.TempDir()
	_, certPEM, keyPEM, err := tlsbridge.GenerateCertificate(tlsbridge.CertOptions{
		CommonName: "localhost", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	if err != nil {
		t.Fatalf("GenerateCertificate: %v", err)
	}
	certFile, keyFile, dhFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "dh.pem")
	for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// ffdhe2048 (RFC 7919) parameters are fixed: nothing to generate.
	if out, err := exec.CommandContext(ctx, bin, "genpkey", "-genparam", "-algorithm", "DH",
		"-pkeyopt", "dh_param:ffdhe2048", "-out", dhFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v: %s", err, out)
	}
	// Port 0: s_server picks a free port and prints "ACCEPT 127.0.0.1:N"
	// once it listens (not with -quiet, which would hide that line).
	cmd := exec.Command(bin, "s_server", "-accept", "127.0.0.1:0", "-cert", certFile, "-key", keyFile,
		"-dhparam", dhFile, "-cipher", "DHE-RSA-AES128-GCM-SHA256", "-tls1_2", "-alpn", "tds/8.0")
	cmd.Dir = dir
	// s_server reads commands from stdin; an open, silent pipe keeps it
	// serving (a closed stdin can make it quit).
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out testkit.LockedBuffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("openssl s_server: %v", err)
	}
	accept := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			out.Write([]byte(line + "\n"))
			if a, ok := strings.CutPrefix(line, "ACCEPT "); ok {
				select {
				case accept <- strings.TrimSpace(a):
				default:
				}
			}
		}
		// A line longer than the scanner's limit ends Scan: keep draining,
		// or s_server would block on a full pipe.
		_, _ = io.Copy(&out, stdout)
	}()
	exited := make(chan struct{})
	go func() { <-drained; _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Errorf("openssl s_server (pid %d) did not exit", cmd.Process.Pid)
		}
	})
	var addr string
	select {
	case addr = <-accept:
	case <-exited:
		t.Fatalf("openssl s_server exited: %s", out.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("openssl s_server printed no ACCEPT line in 10s: %s", out.String())
	}
	return &opensslServer{addr: addr, certPEM: certPEM}
}

// recordSummary is one line about a record for test logs: phases, close,
// fault decisions and the negotiated TLS parameters.
func recordSummary(rec *proxy.Record) string {
	var b strings.Builder
	for i, m := range rec.Phases {
		if i > 0 {
			b.WriteString(">")
		}
		b.WriteString(string(m.Phase))
	}
	if c := rec.Close; c != nil {
		fmt.Fprintf(&b, " close=%s/%s@%s", c.By, c.Kind, c.Phase)
	}
	for _, f := range rec.Faults {
		fmt.Fprintf(&b, " fault=%s:%s@%s(%s)", f.Rule, f.Action, f.Phase, f.Detail)
	}
	if tl := rec.TLS; tl != nil {
		fmt.Fprintf(&b, " tls=%q suite=%q", tl.Version, tl.CipherSuite)
		if ke := tl.KeyExchange; ke != nil {
			fmt.Fprintf(&b, " kex=%s/%d", ke.Kind, ke.DHPrimeBits)
		}
	}
	return b.String()
}
