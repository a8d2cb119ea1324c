//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/tdsproxy/tdsproxy/tds"
)

// The bridge workload (issue 11, "Benchmarks"; docs/bridge.md) compares, on
// TDS 8.0 strict connections (TLS first, TLS for the whole session), the
// paths that terminate the client's TLS and open their own to the server
// with passthrough and direct:
//
//   - tdsproxy-bridge: `tdsproxy run --bridge` with the harness's
//     certificate (--bridge-cert/--bridge-key) and --upstream-insecure;
//   - haproxy-tls: HAProxy terminating and re-originating TLS
//     (`bind ... ssl crt ... alpn tds/8.0`, `server ... ssl alpn tds/8.0
//     verify none`); strict is TLS-first, so HAProxy can bridge it;
//   - tdsproxy (passthrough) and direct, with the same strict clients.
//
// The bridge paths run only in this workload: the other workloads' clients
// (login-only TLS) cannot pass a TLS-terminating HAProxy.
const (
	pathBridge     = "tdsproxy-bridge"
	pathHAProxyTLS = "haproxy-tls"
)

// bridgeOnly are the paths measured by the bridge workload alone.
var bridgeOnly = map[string]bool{pathBridge: true, pathHAProxyTLS: true}

// bridgeWorkloadPaths are the paths of the bridge workload, in table order.
var bridgeWorkloadPaths = []string{pathDirect, pathTDSProxy, pathBridge, pathHAProxyTLS}

func init() {
	pathDescriptions[pathBridge] = "tdsproxy run --bridge --bridge-cert --bridge-key --upstream-insecure (TLS terminated and re-originated, mirrored hello, decrypted TDS decoded and recorded)"
	pathDescriptions[pathHAProxyTLS] = "haproxy -db, mode tcp, bind ssl crt (alpn tds/8.0), server ssl alpn tds/8.0 verify none"
}

// benchCert is the certificate the emulator and both bridge paths present:
// one self-signed RSA-2048 certificate for localhost (the shape the
// emulator generates for itself), so that a client verifying it with one
// CA file can use every path.
type benchCert struct {
	cert    tls.Certificate
	certPEM string // the certificate (also the clients' CA file)
	keyPEM  string // its key, mode 0600
	bundle  string // certificate then key, for HAProxy's crt
}

func makeBenchCert(dir string) (*benchCert, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"tdsproxy bench"}},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(0, 0, 7),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		SignatureAlgorithm:    x509.SHA256WithRSA,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	bc := &benchCert{
		cert:    tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		certPEM: filepath.Join(dir, "bench-cert.pem"),
		keyPEM:  filepath.Join(dir, "bench-key.pem"),
		bundle:  filepath.Join(dir, "bench-haproxy.pem"),
	}
	for _, f := range []struct {
		path string
		b    []byte
		mode os.FileMode
	}{{bc.certPEM, certPEM, 0o644}, {bc.keyPEM, keyPEM, 0o600}, {bc.bundle, append(append([]byte{}, certPEM...), keyPEM...), 0o600}} {
		if err := os.WriteFile(f.path, f.b, f.mode); err != nil {
			return nil, err
		}
	}
	return bc, nil
}

// haproxyTLSConfig is HAProxy terminating the client's TLS and opening its
// own to the server, which TDS 8.0 strict allows (TLS before any TDS byte):
// what an operator would write to bridge strict connections with HAProxy.
func haproxyTLSConfig(listen, upstream string, maxconn int, bundle string) string {
	return fmt.Sprintf(`# written by the tdsproxy benchmark harness
global
    maxconn %d

defaults
    mode tcp
    timeout connect 10s
    timeout client 1h
    timeout server 1h

listen bench
    bind %s ssl crt %s alpn tds/8.0
    server upstream %s ssl alpn tds/8.0 verify none
`, maxconn, listen, bundle, upstream)
}

// bridgeArgs are the tdsproxy run flags of the bridge path.
func bridgeArgs(c *benchCert) []string {
	return []string{"--bridge", "--bridge-cert", c.certPEM, "--bridge-key", c.keyPEM, "--upstream-insecure"}
}

// strictDSN is a TDS 8.0 strict session verifying the harness certificate,
// with the given packet size (0: the driver's default).
func strictDSN(addr, caFile string, packetSize int) string {
	q := url.Values{}
	q.Set("encrypt", "strict")
	q.Set("certificate", caFile)
	q.Set("hostNameInCertificate", "localhost")
	if packetSize > 0 {
		q.Set("packet size", fmt.Sprint(packetSize))
	}
	return dsn(addr, q)
}

// strictLoginRaw logs in over TDS 8.0 strict itself (TLS 1.3 with ALPN
// tds/8.0 first, then PRELOGIN and LOGIN7 inside it; MS-TDS §3.2.5.1) and
// returns the TLS connection, ready for rawQuery. It is the raw byte stream
// client of the bulk workload for TLS paths: go-mssqldb does not hand out
// its TLS connection.
func strictLoginRaw(ctx context.Context, addr, caFile string, packetSize int) (*loggedInConn, error) {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{
		ServerName: "localhost", RootCAs: pool, NextProtos: []string{"tds/8.0"}, MinVersion: tls.VersionTLS12,
	}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	if dl, has := ctx.Deadline(); has {
		_ = c.SetDeadline(dl)
	}
	w := tds.Writer{W: c, PacketSize: 4096}
	r := tds.NewReader(c)
	var pre tds.Prelogin
	pre.Set(tds.PreloginVersion, tds.ProductVersion{Major: 1}.Bytes())
	pre.Set(tds.PreloginEncryption, []byte{byte(tds.EncryptStrict)})
	if err := w.WriteMessage(tds.PacketPrelogin, pre.Marshal()); err != nil {
		return nil, fmt.Errorf("PRELOGIN: %w", err)
	}
	if _, err := r.ReadMessage(); err != nil {
		return nil, fmt.Errorf("PRELOGIN reply: %w", err)
	}
	l := tds.Login7{
		TDSVersion: tds.VersionTDS80, PacketSize: uint32(packetSize), ClientProgVer: 1,
		OptionFlags1: 0xE0, OptionFlags2: 0x03, ClientLCID: 0x0409,
		HostName: "bench", UserName: "bench", Password: tds.NewPassword("bench"),
		AppName: "tdsproxy-bench", ServerName: "localhost", LibraryName: "tdsproxy-bench",
	}
	body, err := l.Append(nil)
	if err != nil {
		return nil, err
	}
	if err := w.WriteMessage(tds.PacketLogin7, body); err != nil {
		return nil, fmt.Errorf("LOGIN7: %w", err)
	}
	m, err := r.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("login response: %w", err)
	}
	if m.Type != tds.PacketReply {
		return nil, fmt.Errorf("login response: packet type %#x", m.Type)
	}
	_ = c.SetDeadline(time.Time{})
	ok = true
	return &loggedInConn{raw: c}, nil
}

// bulkRawStrict is bulkRaw over TDS 8.0 strict: the harness's own strict
// client logs in, sends the query and reads the reply through TLS, parsing
// only the TDS packet headers.
func bulkRawStrict(ctx context.Context, addr, caFile string, streams int, total int64) (int64, time.Duration, error) {
	return bulkRawWith(ctx, streams, total, func(ctx context.Context) (*loggedInConn, error) {
		lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		return strictLoginRaw(lctx, addr, caFile, bulkPacketSize)
	})
}

// bulkTDSStrict is bulkTDS with go-mssqldb over TDS 8.0 strict.
func bulkTDSStrict(ctx context.Context, addr, caFile string, streams int, total int64) (int64, time.Duration, error) {
	c, err := mssql.NewConnector(strictDSN(addr, caFile, bulkPacketSize))
	if err != nil {
		return 0, 0, err
	}
	return bulkWith(ctx, c, streams, total)
}

// latencyStrict is latency over TDS 8.0 strict.
func latencyStrict(ctx context.Context, addr, caFile string, n, warm int) (latencyResult, error) {
	c, err := mssql.NewConnector(strictDSN(addr, caFile, 0))
	if err != nil {
		return latencyResult{}, err
	}
	return latencyWith(ctx, c, n, warm)
}

// bridgeBulkVariants are the bulk tables of the bridge workload.
var bridgeBulkVariants = []bulkVariant{
	{"strict tds x1", "Bridge mode, bulk throughput over TDS 8.0 strict: go-mssqldb reads SELECT large (8000-byte rows), 1 stream", false, 1},
	{"strict raw x1", "Bridge mode, bulk throughput over TDS 8.0 strict: raw TDS byte stream (the harness's own TLS client), 1 stream", true, 1},
	{"strict raw x8", "Bridge mode, bulk throughput over TDS 8.0 strict: raw TDS byte stream (the harness's own TLS client), 8 concurrent streams", true, 8},
}

// wlBridge is the bridge workload's name for -only.
const wlBridge = "bridge"

// runBridge: the bridge workload. Each measurement kind runs its paths
// interleaved inside each repetition, as the other workloads do.
func runBridge(ctx context.Context, e *env) {
	if e.cert == nil {
		e.fail("bridge: no harness certificate")
		return
	}
	w := &bridgeRun{e: e, paths: bridgePaths(e.sel), connectors: map[string]*mssql.Connector{}}
	w.tables()
	w.start(ctx)
	defer stopAll(w.insts)
	for rep := 1; rep <= e.o.reps; rep++ {
		for i, v := range bridgeBulkVariants {
			w.bulk(ctx, rep, i, v)
		}
		w.latency(ctx, rep)
		w.loginRate(ctx, rep)
	}
}

// bridgePaths are the bridge workload's paths sel keeps.
func bridgePaths(sel selection) []string {
	var paths []string
	for _, p := range bridgeWorkloadPaths {
		if sel.path(p) {
			paths = append(paths, p)
		}
	}
	return paths
}

// bridgeRun is one run of the bridge workload: its paths, their
// instances and the tables it fills.
type bridgeRun struct {
	e          *env
	paths      []string
	insts      map[string]*instance
	bulkTables []*table
	lat, lg    *table
	all        []*table
	connectors map[string]*mssql.Connector // one per path, for the logins
}

// tables adds the workload's tables to the results.
func (w *bridgeRun) tables() {
	e := w.e
	for _, v := range bridgeBulkVariants {
		t := e.res.table(wlBridge, v.name, v.title, [2]string{"throughput", "MiB/s"},
			[2]string{"proxy CPU", "s per GiB"}, [2]string{"other load", "% of machine"})
		t.Note = fmt.Sprintf("%.2f GiB per run (all streams together), login before the clock starts; packet size %d; every path carries TLS end to end (direct and tdsproxy passthrough: one TLS session, client to emulator; tdsproxy-bridge and haproxy-tls: two, client to proxy and proxy to emulator).", float64(e.sz.bulkBytes)/(1<<30), bulkPacketSize)
		w.bulkTables = append(w.bulkTables, t)
	}
	w.lat = e.res.table(wlBridge, "strict select1",
		fmt.Sprintf("Bridge mode, latency over TDS 8.0 strict: %d SELECT 1 round trips on one established go-mssqldb connection", e.sz.latencyN),
		[2]string{"p50", "µs"}, [2]string{"p99", "µs"}, [2]string{"added p50 over direct", "µs"},
		[2]string{"other load", "% of machine"})
	w.lat.Note = fmt.Sprintf("%d warm-up round trips first; added p50 = path p50 − direct p50 of the same repetition.", e.sz.latencyWarm)
	w.lg = e.res.table(wlBridge, "strict logins",
		"Bridge mode, connection setup over TDS 8.0 strict: logins/s, 16 concurrent go-mssqldb clients",
		[2]string{"login rate", "logins/s"}, [2]string{"proxy CPU", "µs per login"}, [2]string{"failed", "logins"}, [2]string{"other load", "% of machine"})
	w.lg.Note = fmt.Sprintf("Each login: TCP connect, TLS handshake (certificate verified), PRELOGIN, LOGIN7, login response, close; a bridging path makes a second TLS handshake to the emulator. %d workers for %s per repetition.", e.sz.loginWorkers, e.sz.loginDur)
	w.all = append(append([]*table{}, w.bulkTables...), w.lat, w.lg)
}

// start starts an instance per path; a path that fails to start is noted
// in every table.
func (w *bridgeRun) start(ctx context.Context) {
	e := w.e
	w.insts = map[string]*instance{}
	for _, p := range w.paths {
		in, err := e.l.start(ctx, p, e.emuAddr, "bridge")
		if err != nil {
			e.fail("bridge: starting %s: %v", p, err)
			for _, t := range w.all {
				t.note(p, "failed to start")
			}
			continue
		}
		w.insts[p] = in
	}
}

// bulk measures bulk variant v (table i) on every path, once.
func (w *bridgeRun) bulk(ctx context.Context, rep, i int, v bulkVariant) {
	e := w.e
	for _, p := range w.paths {
		in := w.insts[p]
		if in == nil || ctx.Err() != nil {
			continue
		}
		var n int64
		var dur time.Duration
		use, err := e.measure(ctx, in, fmt.Sprintf("bridge bulk %s rep %d %s", v.name, rep, p), func() error {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			var err error
			if v.raw {
				n, dur, err = bulkRawStrict(rctx, in.addr, e.ca, v.streams, e.sz.bulkBytes)
			} else {
				n, dur, err = bulkTDSStrict(rctx, in.addr, e.ca, v.streams, e.sz.bulkBytes)
			}
			return err
		})
		if err != nil {
			e.fail("bridge bulk %s rep %d %s: %v", v.name, rep, p, err)
			continue
		}
		rate := float64(n) / mib / dur.Seconds()
		gib := float64(n) / (1 << 30)
		w.bulkTables[i].Metrics[0].add(p, rate)
		if in.proc != nil {
			w.bulkTables[i].Metrics[1].add(p, use.proxySeconds/gib)
		}
		w.bulkTables[i].Metrics[2].add(p, 100*use.other)
		progress("bridge bulk %-13s rep %d/%d %-15s %8.1f MiB/s  (%.2f GiB in %.2fs; proxy CPU %.2fs; other load %.0f%%; load avg %s)",
			v.name, rep, e.o.reps, p, rate, gib, dur.Seconds(), use.proxySeconds, 100*use.other, loadAvg())
	}
}

// latency measures SELECT 1 round trips on every path, once; the added
// p50 is against direct's of the same repetition.
func (w *bridgeRun) latency(ctx context.Context, rep int) {
	e, lat := w.e, w.lat
	direct := -1.0
	for _, p := range w.paths {
		in := w.insts[p]
		if in == nil || ctx.Err() != nil {
			continue
		}
		var r latencyResult
		use, err := e.measure(ctx, in, fmt.Sprintf("bridge latency rep %d %s", rep, p), func() error {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			var err error
			r, err = latencyStrict(rctx, in.addr, e.ca, e.sz.latencyN, e.sz.latencyWarm)
			return err
		})
		if err != nil {
			e.fail("bridge latency rep %d %s: %v", rep, p, err)
			continue
		}
		us50, us99 := float64(r.p50.Nanoseconds())/1e3, float64(r.p99.Nanoseconds())/1e3
		lat.Metrics[0].add(p, us50)
		lat.Metrics[1].add(p, us99)
		lat.Metrics[3].add(p, 100*use.other)
		if p == pathDirect {
			direct = us50
		}
		if direct >= 0 {
			lat.Metrics[2].add(p, us50-direct)
		}
		progress("bridge latency rep %d/%d %-15s p50 %7.1f µs  p99 %7.1f µs  (other load %.0f%%; load avg %s)", rep, e.o.reps, p, us50, us99, 100*use.other, loadAvg())
	}
}

// loginRate measures the login rate on every path, once.
func (w *bridgeRun) loginRate(ctx context.Context, rep int) {
	e, lg := w.e, w.lg
	for _, p := range w.paths {
		in := w.insts[p]
		if in == nil || ctx.Err() != nil {
			continue
		}
		c := w.connectors[p]
		if c == nil {
			var err error
			c, err = mssql.NewConnector(strictDSN(in.addr, e.ca, 0))
			if err != nil {
				e.fail("bridge logins %s: %v", p, err)
				continue
			}
			w.connectors[p] = c
		}
		var r loginResult
		use, err := e.measure(ctx, in, fmt.Sprintf("bridge logins rep %d %s", rep, p), func() error {
			r = logins(ctx, c, e.sz.loginWorkers, e.sz.loginDur)
			if r.ok == 0 {
				return fmt.Errorf("no login succeeded: %v", r.firstErr)
			}
			return nil
		})
		if err != nil {
			e.fail("bridge logins rep %d %s: %v", rep, p, err)
			continue
		}
		rate := float64(r.ok) / r.elapsed.Seconds()
		lg.Metrics[0].add(p, rate)
		if in.proc != nil {
			lg.Metrics[1].add(p, 1e6*use.proxySeconds/float64(r.ok))
		}
		lg.Metrics[2].add(p, float64(r.failed))
		lg.Metrics[3].add(p, 100*use.other)
		if r.failed > 0 {
			progress("bridge logins rep %d %s: %d failed, first: %v", rep, p, r.failed, r.firstErr)
		}
		progress("bridge logins rep %d/%d %-15s %7.1f logins/s (%d in %.2fs; other load %.0f%%; load avg %s)", rep, e.o.reps, p, rate, r.ok, r.elapsed.Seconds(), 100*use.other, loadAvg())
	}
}

// checkBridgeTargets evaluates issue 11's first bridge targets: bulk ≥ 0.8×
// HAProxy's TLS bridge and added p50 ≤ 1.2× HAProxy's.
func checkBridgeTargets(r *results, add func(target string, ok, known bool, detail string)) {
	for _, v := range bridgeBulkVariants {
		target := "bridge bulk ≥ 0.8× HAProxy TLS bridge"
		t := r.find(wlBridge, v.name)
		if t == nil {
			add(target, false, false, "not measured")
			continue
		}
		a, okA := t.Metrics[0].median(pathBridge)
		b, okB := t.Metrics[0].median(pathHAProxyTLS)
		if !okA || !okB || b == 0 {
			add(target, false, false, v.name+": tdsproxy-bridge or haproxy-tls not measured")
			continue
		}
		add(target, a/b >= 0.8, true, fmt.Sprintf("%s: tdsproxy-bridge %s / haproxy-tls %s MiB/s = %.2f× (want ≥ 0.80×)", v.name, fmtNum(a), fmtNum(b), a/b))
	}
	target := "bridge added p50 ≤ 1.2× HAProxy TLS bridge's"
	t := r.find(wlBridge, "strict select1")
	if t == nil {
		add(target, false, false, "not measured")
		return
	}
	m := t.Metrics[0]
	d, okD := m.median(pathDirect)
	br, okB := m.median(pathBridge)
	h, okH := m.median(pathHAProxyTLS)
	if !okD || !okB || !okH || h-d <= 0 {
		add(target, false, false, "direct, tdsproxy-bridge or haproxy-tls not measured")
		return
	}
	add(target, br-d <= 1.2*(h-d), true, fmt.Sprintf("tdsproxy-bridge +%s µs, haproxy-tls +%s µs over direct %s µs = %.2f× (want ≤ 1.20×)", fmtNum(br-d), fmtNum(h-d), fmtNum(d), (br-d)/(h-d)))
}

// errNoCert is returned when a bridge path starts without the harness
// certificate.
var errNoCert = errors.New("bridge paths need the harness certificate")
