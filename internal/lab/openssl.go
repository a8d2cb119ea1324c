package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// Go's crypto/tls has no DHE key agreement at all (docs/protocol.md), so neither
// go-mssqldb nor the emulator can meet the DHE scenarios. OpenSSL 3 can:
// `openssl s_server` plays a server whose policy has TLS_DHE_* suites
// enabled and preferred, and `openssl s_client` a client that offers DHE
// and ECDHE. Both talk TLS from the first byte, which is how a TDS 8.0
// strict connection starts (MS-TDS §3.3.5.1), so the proxy sees a strict
// handshake (the client also offers ALPN tds/8.0) and the DHE rule acts
// exactly where it would on a real one: after the client's
// ClientKeyExchange/ChangeCipherSpec/Finished flight. s_server is not a
// TDS server; the connection after the handshake is an HTTP request to its
// -www page, which proves that data flows through the proxy.
const (
	// dheSuites is the server's policy before the fix: DHE first
	// (-serverpref), ECDHE also allowed.
	dheSuites = "DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
	// ecdheSuites is the policy after the fix: TLS_DHE_* removed.
	ecdheSuites = "ECDHE-RSA-AES128-GCM-SHA256"
	// clientSuites is what the s_client offers, before and after: both, as
	// OpenSSL-based clients (tedious, Node) do by default.
	clientSuites = "ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256"
)

// sslServer is one running `openssl s_server`.
type sslServer struct {
	cmd  *exec.Cmd
	addr string
	desc string
	done chan struct{}
}

// opensslUpstreams are the two servers the DHE rows share: with DHE
// enabled (before the fix) and without (after).
type opensslUpstreams struct {
	dhe, ecdhe *sslServer
}

func (u *opensslUpstreams) close() {
	for _, s := range []*sslServer{u.dhe, u.ecdhe} {
		if s != nil {
			s.close()
		}
	}
}

// upstreams starts the openssl servers on first use.
func (r *runner) upstreams() (*opensslUpstreams, error) {
	r.sslOnce.Do(func() {
		r.ssl, r.sslErr = startOpenSSLUpstreams(r.openssl, r.dir)
	})
	return r.ssl, r.sslErr
}

// opensslFiles writes the server certificate, key and DH parameters the
// openssl servers use into dir.
func opensslFiles(openssl, dir string) (cert, key, dh string, err error) {
	_, certPEM, keyPEM, err := tlsbridge.GenerateCertificate(tlsbridge.CertOptions{CommonName: "localhost",
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}})
	if err != nil {
		return "", "", "", fmt.Errorf("lab: s_server certificate: %w", err)
	}
	cert, key, dh = filepath.Join(dir, "s_server.pem"), filepath.Join(dir, "s_server.key"), filepath.Join(dir, "ffdhe2048.pem")
	if err := os.WriteFile(cert, certPEM, 0o600); err != nil {
		return "", "", "", fmt.Errorf("lab: %w", err)
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		return "", "", "", fmt.Errorf("lab: %w", err)
	}
	// RFC 7919's ffdhe2048 group: named parameters, so nothing is
	// generated (a random 2048-bit prime would take seconds).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, openssl, "genpkey", "-genparam", "-algorithm", "DH",
		"-pkeyopt", "dh_param:ffdhe2048", "-out", dh).CombinedOutput()
	if err != nil {
		return "", "", "", fmt.Errorf("lab: openssl genpkey (DH parameters): %v: %s", err, bytes.TrimSpace(out))
	}
	return cert, key, dh, nil
}

func startOpenSSLUpstreams(openssl, dir string) (*opensslUpstreams, error) {
	cert, key, dh, err := opensslFiles(openssl, dir)
	if err != nil {
		return nil, err
	}
	u := &opensslUpstreams{}
	u.dhe, err = startSSLServer(openssl, "openssl s_server, TLS 1.2, suites "+dheSuites+" (DHE preferred), ffdhe2048",
		cert, key, dh, dheSuites, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u.ecdhe, err = startSSLServer(openssl, "openssl s_server, TLS 1.2, suites "+ecdheSuites+" (DHE removed)",
		cert, key, dh, ecdheSuites, "127.0.0.1:0")
	if err != nil {
		u.close()
		return nil, err
	}
	return u, nil
}

// startSSLServer runs `openssl s_server` and waits until it listens.
func startSSLServer(openssl, desc, cert, key, dh, suites, listen string) (*sslServer, error) {
	cmd := exec.Command(openssl, "s_server", "-accept", listen, "-cert", cert, "-key", key,
		"-dhparam", dh, "-tls1_2", "-cipher", suites, "-serverpref", "-www")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("lab: s_server: %w", err)
	}
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: starting openssl s_server: %w", err)
	}
	s := &sslServer{cmd: cmd, desc: desc, done: make(chan struct{})}
	// s_server prints "ACCEPT host:port" once it listens (OpenSSL 3.0
	// prints the bound port, so port 0 works).
	addrc := make(chan string, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ACCEPT "); ok && !sent {
				addrc <- strings.TrimSpace(a)
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
	}()
	select {
	case s.addr = <-addrc:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("lab: openssl s_server exited: %s", strings.TrimSpace(stderr.String()))
	case <-time.After(10 * time.Second):
		s.close()
		return nil, errors.New("lab: openssl s_server did not listen within 10s")
	}
}

func (s *sslServer) close() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// limitedBuffer keeps the first 4 KiB written to it.
type limitedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := 4096 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// sslClient runs `openssl s_client` through the env's proxy: TLS 1.2, the
// given suites, ALPN tds/8.0, then a GET for s_server's -www page.
func (r *runner) sslClient(ctx context.Context, e *env, suites string) Attempt {
	a := Attempt{Client: "openssl s_client, TLS 1.2, TLS first with ALPN tds/8.0 (TDS 8.0 strict form), suites " + suites}
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	cmd := exec.CommandContext(actx, r.openssl, "s_client", "-connect", e.addr(), "-tls1_2", "-cipher", suites,
		"-alpn", "tds/8.0", "-brief", "-ign_eof")
	cmd.Stdin = strings.NewReader("GET / HTTP/1.0\r\n\r\n")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	a.Elapsed = time.Since(start)
	text := string(out)
	if strings.Contains(text, "CONNECTION ESTABLISHED") && strings.Contains(text, "HTTP/1.0 200") {
		a.Connected = true
		a.Result = "handshake done (" + briefField(text, "Ciphersuite") + "), HTTP 200 through the proxy"
	} else {
		a.Error = opensslError(text, err)
	}
	rec, werr := e.recs.wait(ctx, "")
	if werr != nil {
		a.Error = joinErr(a.Error, "proxy: "+werr.Error())
		return a
	}
	a.Record = rec
	return a
}

// briefField returns the value of a "Name: value" line of s_client -brief.
func briefField(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// opensslError picks s_client's own error lines: "read:errno=104" (errno
// 104 is ECONNRESET, "connection reset by peer") or the library's
// "...:error:...:SSL routines::..." lines.
func opensslError(out string, err error) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if strings.Contains(l, "errno=") || strings.Contains(l, ":error:") {
			if strings.Contains(l, "errno=104") {
				l += " (ECONNRESET: connection reset by peer)"
			}
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		lines = append(lines, strings.TrimSpace(out))
		if err != nil {
			lines = append(lines, "s_client: "+err.Error())
		}
	}
	return strings.Join(lines, "; ")
}

// dhe runs the row of a scenario whose server prefers DHE (LabServer.DHE).
func (r *runner) dhe(ctx context.Context, row *Row) {
	s, err := scenarioSetup(row.Scenario)
	if err != nil {
		row.Status, row.Problem = StatusUnexpected, err.Error()
		return
	}
	row.Rule = s.rule
	// go-mssqldb through the armed rule: it never offers DHE, so the server
	// chooses ECDHE and the rule, evaluated, lets it pass.
	also := r.runGo(ctx, s.emu, []faults.RuleSpec{s.rule}, s.server, goClient{})
	row.Also = &also
	goNote := "go-mssqldb cannot meet this scenario: Go's crypto/tls has no DHE key agreement, so it never offers a TLS_DHE_* suite. "
	if ev := ruleEvent(also.Record, s.rule.Name); also.Connected && ev != nil {
		goNote += fmt.Sprintf("With the rule armed it connected (%s): rule evaluated at %s: %s: %s. ", also.Result, ev.Phase, ev.Action, ev.Detail)
	} else {
		goNote += "With the rule armed it did not connect as expected: " + also.Error + ". "
	}
	if r.openssl == "" {
		row.Client = goClientName
		row.Status = StatusSkipped
		row.Before = Attempt{Skipped: "no client here can negotiate DHE: " + r.noSSL}
		row.After = also
		row.FixedConnected = also.Connected
		row.Note = goNote + "The DHE close needs a DHE-capable client and server: install openssl (OpenSSL 3) and run the lab again; " +
			r.noSSL + "."
		return
	}
	ups, err := r.upstreams()
	if err != nil {
		row.Client = "openssl s_client"
		row.Status, row.Problem = StatusUnexpected, err.Error()
		row.Note = goNote
		return
	}
	row.Client = "openssl s_client"
	run := func(up *sslServer) Attempt {
		e, err := startEnv(envConfig{Upstream: up.addr, Rules: []faults.RuleSpec{s.rule}, Logger: r.log})
		if err != nil {
			return Attempt{Server: up.desc, Error: "lab: " + err.Error()}
		}
		defer e.close()
		a := r.sslClient(ctx, e, clientSuites)
		a.Server = up.desc + "; rule rate=always"
		return a
	}
	row.Before = run(ups.dhe)
	row.After = run(ups.ecdhe)
	lead := "The server's policy prefers TLS_DHE_RSA_WITH_AES_128_GCM_SHA256; the rule closes after the client's " +
		"ClientKeyExchange/ChangeCipherSpec/Finished flight, where Schannel fails. " + s.lab().Note
	row.Note = lead + "After the fix (TLS_DHE_* removed from the server's policy) the server chooses ECDHE and the same rule lets it through. " + goNote
	x := expectFor(s.info, faults.LabOpenSSL)
	x.after = func(a *Attempt) string {
		if !also.Connected {
			return "go-mssqldb through the armed rule did not connect: " + also.Error
		}
		if ev := ruleEvent(also.Record, s.rule.Name); ev == nil || !strings.Contains(ev.Detail, "not DHE") {
			return "go-mssqldb's record does not show the rule evaluating an ECDHE handshake"
		}
		return ""
	}
	judge(row, x)
}

// ruleEvent is the rule's first decision on the connection.
func ruleEvent(rec *proxy.Record, rule string) *proxy.FaultEvent {
	if rec == nil {
		return nil
	}
	for i, ev := range rec.Faults {
		if ev.Rule == rule {
			return &rec.Faults[i]
		}
	}
	return nil
}
