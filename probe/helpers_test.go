package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/interop"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// testTimeout bounds each probe connection in tests: loopback answers in
// microseconds, so this is only the ceiling a broken test hits.
const testTimeout = 2 * time.Second

// startEmu runs an emulator configured as cfg until the test ends.
func startEmu(t *testing.T, cfg emulator.Config) *emulator.Server {
	t.Helper()
	cfg.LoginTimeout = 5 * time.Second
	s, err := emulator.New(cfg)
	if err != nil {
		t.Fatalf("emulator.New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("emulator Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// connCounter wraps Config.Dial to count the connections a probe opens
// and closes.
type connCounter struct{ dials, closes atomic.Int64 }

func (cc *connCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cc.dials.Add(1)
	return &countedConn{Conn: c, cc: cc}, nil
}

type countedConn struct {
	net.Conn
	cc   *connCounter
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.cc.closes.Add(1) })
	return c.Conn.Close()
}

// probeTarget runs a probe of addr with test settings, then checks that
// every connection it opened is closed and, on Linux, that no socket to
// addr is left in any state but TIME_WAIT.
func probeTarget(t *testing.T, addr string, mod func(*Config)) *Result {
	t.Helper()
	var cc connCounter
	cfg := Config{Target: addr, Timeout: testTimeout, Concurrency: 4, Samples: 2, Dial: cc.dial}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run(%s): %v", addr, err)
	}
	if d, c := cc.dials.Load(), cc.closes.Load(); d != c || d == 0 {
		t.Errorf("probe opened %d connections and closed %d", d, c)
	}
	t.Logf("probe of %s: %d connections", addr, cc.dials.Load())
	waitNoSockets(t, addr)
	return res
}

// probeEmu probes an emulator configured as cfg and checks that the
// emulator accepted exactly the connections the probe opened.
func probeEmu(t *testing.T, cfg emulator.Config, mod func(*Config)) *Result {
	t.Helper()
	emu := startEmu(t, cfg)
	var dials *connCounter
	res := probeTarget(t, emu.Addr(), func(c *Config) {
		dials = &connCounter{}
		inner := c.Dial
		c.Dial = func(ctx context.Context, n, a string) (net.Conn, error) {
			conn, err := inner(ctx, n, a)
			if err == nil {
				dials.dials.Add(1)
			}
			return conn, err
		}
		if mod != nil {
			mod(c)
		}
	})
	if got, want := emu.Stats().Connections, uint64(dials.dials.Load()); got != want {
		t.Errorf("emulator accepted %d connections, the probe dialled %d", got, want)
	}
	return res
}

// waitNoSockets waits (at most 5 s) until no TCP socket on this host
// connects to or from addr's port in a state other than LISTEN, TIME_WAIT
// or CLOSE: neither end of a probe connection may stay open.
func waitNoSockets(t *testing.T, addr string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return
	}
	_, ps, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(ps)
	deadline := time.Now().Add(5 * time.Second)
	var left []string
	for {
		left = openSockets(t, port)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("sockets still open on port %d after the probe: %v", port, left)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openSockets lists /proc/net/tcp{,6} entries on port whose state is not
// LISTEN (0A), TIME_WAIT (06) or CLOSE (07).
func openSockets(t *testing.T, port int) []string {
	t.Helper()
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 4 {
				continue
			}
			st := fs[3]
			if st == "0A" || st == "06" || st == "07" {
				continue
			}
			for _, ep := range fs[1:3] {
				i := strings.LastIndexByte(ep, ':')
				if p, err := strconv.ParseUint(ep[i+1:], 16, 16); err == nil && int(p) == port {
					out = append(out, fs[1]+"->"+fs[2]+" state "+st)
					break
				}
			}
		}
	}
	return out
}

func verdictOf(t *testing.T, r *Result, scenario string) Verdict {
	t.Helper()
	for _, v := range r.Verdicts {
		if v.Scenario == scenario {
			return v
		}
	}
	t.Fatalf("no verdict for %s in %+v", scenario, r.Verdicts)
	return Verdict{}
}

func profileOf(t *testing.T, r *Result, name string) ProfileResult {
	t.Helper()
	for _, p := range r.Profiles {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no profile %s in %+v", name, r.Profiles)
	return ProfileResult{}
}

// front is a TCP forwarder in front of upstream. Each accepted
// connection waits delay before it is forwarded (a server whose accepts
// come late); with refuseStrict a connection whose first byte is a TLS
// handshake record (TDS 8.0) is closed instead (a server without strict).
func front(t *testing.T, upstream string, delay time.Duration, refuseStrict bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { forward(c, upstream, delay, refuseStrict, done) })
		}
	})
	return ln.Addr().String()
}

func forward(c net.Conn, upstream string, delay time.Duration, refuseStrict bool, done <-chan struct{}) {
	defer c.Close()
	select {
	case <-time.After(delay):
	case <-done:
		return
	}
	br := bufio.NewReader(c)
	first, err := br.Peek(1)
	if err != nil || refuseStrict && first[0] == 0x16 {
		return
	}
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer u.Close()
	go func() {
		<-done
		c.Close()
		u.Close()
	}()
	go func() { _, _ = io.Copy(u, br); u.(*net.TCPConn).CloseWrite() }()
	_, _ = io.Copy(c, u)
}

// testCert makes a certificate for 127.0.0.1 with opts' hash and validity.
func testCert(t *testing.T, opts tlsbridge.CertOptions) (tls.Certificate, []byte, []byte) {
	t.Helper()
	if opts.CommonName == "" {
		opts.CommonName = "localhost"
		opts.DNSNames = []string{"localhost"}
		opts.IPs = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	if opts.KeyBits == 0 {
		opts.KeyBits = 1024 // fast; the probe reads the size, whatever it is
	}
	c, certPEM, keyPEM, err := tlsbridge.GenerateCertificate(opts)
	if err != nil {
		t.Fatalf("GenerateCertificate: %v", err)
	}
	return c, certPEM, keyPEM
}

// startOpenSSL runs `openssl s_server` TLS first (TDS 8.0 form) with
// ffdhe2048 DHE parameters, TLS 1.2 only, the given OpenSSL cipher list
// and ALPN tds/8.0, until the test ends. A missing openssl skips the test
// (fails it under make test, TDSPROXY_INTEROP=require).
func startOpenSSL(t *testing.T, ciphers string) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	interop.Require(t, "openssl", err) // skips, or fails under TDSPROXY_INTEROP=require
	dir := t.TempDir()
	_, certPEM, keyPEM := testCert(t, tlsbridge.CertOptions{KeyBits: 2048})
	certFile, keyFile, dhFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "dh.pem")
	for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "genpkey", "-genparam", "-algorithm", "DH",
		"-pkeyopt", "dh_param:ffdhe2048", "-out", dhFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v: %s", err, out)
	}
	cmd := exec.Command(bin, "s_server", "-accept", "127.0.0.1:0", "-cert", certFile, "-key", keyFile,
		"-dhparam", dhFile, "-cipher", ciphers, "-tls1_2", "-alpn", "tds/8.0")
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe() // an open, silent stdin keeps s_server serving
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("openssl s_server: %v", err)
	}
	accept := make(chan string, 1)
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ACCEPT "); ok {
				select {
				case accept <- strings.TrimSpace(a):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Errorf("openssl s_server (pid %d) did not exit", cmd.Process.Pid)
		}
	})
	select {
	case a := <-accept:
		return a
	case <-exited:
		t.Fatal("openssl s_server exited")
	case <-time.After(10 * time.Second):
		t.Fatal("openssl s_server printed no ACCEPT line in 10s")
	}
	return ""
}
