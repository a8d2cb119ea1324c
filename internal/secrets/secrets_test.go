package secrets_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/msdsn"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

// canary is the password every client in this file sends.
const (
	canary     = "S3cr3t-Canary-Pa55!"
	canaryUser = "canary_user"
	adminToken = "admin-token-for-the-test"
)

// needles returns every form in which the password could leak: as typed,
// its halves, the UCS-2LE bytes LOGIN7 carries, the obfuscated bytes on
// the wire (MS-TDS §2.2.6.4), each raw, in hex (both cases) and in base64,
// and the UCS-2 string as JSON would escape it.
func needles() map[string]string {
	ucs2 := make([]byte, 0, 2*len(canary))
	for _, r := range utf16.Encode([]rune(canary)) {
		ucs2 = append(ucs2, byte(r), byte(r>>8))
	}
	obf := tds.ObfuscatePassword(ucs2)
	n := map[string]string{
		"plain":        canary,
		"plain prefix": canary[:10],
		"plain suffix": canary[7:],
	}
	for name, b := range map[string][]byte{"utf8": []byte(canary), "ucs2": ucs2, "obfuscated": obf} {
		if name != "utf8" {
			n[name+" raw"] = string(b)
		}
		n[name+" hex"] = hex.EncodeToString(b)
		n[name+" HEX"] = strings.ToUpper(hex.EncodeToString(b))
		n[name+" base64"] = base64.StdEncoding.EncodeToString(b)
		n[name+" base64url"] = base64.RawURLEncoding.EncodeToString(b)
		n[name+" hex spaced"] = strings.TrimSpace(fmt.Sprintf("% x", b))
	}
	j, _ := json.Marshal(string(ucs2))
	n["ucs2 json"] = strings.Trim(string(j), `"`)
	return n
}

// find returns the names of the needles in what, with some context.
func find(what []byte) []string {
	var out []string
	for name, needle := range needles() {
		if i := bytes.Index(what, []byte(needle)); i >= 0 {
			lo, hi := max(0, i-80), min(len(what), i+len(needle)+80)
			out = append(out, fmt.Sprintf("%s: ...%q...", name, what[lo:hi]))
		}
	}
	return out
}

// scan reports every needle found in what, labelled where.
func scan(t *testing.T, where string, what []byte) {
	t.Helper()
	for _, f := range find(what) {
		t.Errorf("the password appears in %s (%s)", where, f)
	}
}

// The scan finds each form of the password where a leak would put it.
func TestScanFindsEveryForm(t *testing.T) {
	for name, needle := range needles() {
		for _, wrap := range []string{"%s", `{"msg":"login","field":"%s"}`, "error: %s: failed"} {
			if len(find([]byte(fmt.Sprintf(wrap, needle)))) == 0 {
				t.Errorf("form %q not found in %q", name, wrap)
			}
		}
	}
	ucs2 := needles()["ucs2 raw"]
	j, _ := json.Marshal(map[string]string{"password": ucs2})
	if len(find(j)) == 0 {
		t.Errorf("UCS-2 password marshalled into JSON not found: %s", j)
	}
	if got := find([]byte(`{"user":"canary_user","outcome":"ok"}`)); len(got) > 0 {
		t.Errorf("false positive: %v", got)
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Sync() error { return nil }

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// TestPasswordNeverLeaks drives the canary password through every mode of
// go-mssqldb (and failed logins) through a control.Instance (proxies,
// records ring, metrics, admin API) to emulators, with everything logging
// JSON at debug level, and scans every output.
func TestPasswordNeverLeaks(t *testing.T) {
	logs := &syncBuffer{}
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), logs, zap.DebugLevel))

	good := startEmulator(t, emulator.Config{User: canaryUser, Password: canary, Logger: logger.Named("emulator")})
	// The failing server expects another password: the client still sends
	// the canary, and the login fails (error 18456).
	bad := startEmulator(t, emulator.Config{User: canaryUser, Password: "another-password", Logger: logger.Named("emulator-bad")})

	in, err := control.New(control.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	// Armed rules that match nothing real, so the decider runs and logs.
	rules := []faults.RuleSpec{
		{Name: "tls12-or-13", Scenario: faults.ScenarioProtocolMismatch, Options: map[string]string{"server_tls": "1.2,1.3"}},
		{Name: "latency-nobody", Action: "latency", Options: map[string]string{"delay": "1ms"}, Match: faults.Match{Clients: []string{"127.0.0.99"}}},
	}
	for name, up := range map[string]string{"good": good.Addr(), "bad": bad.Addr()} {
		if err := in.AddProxy(proxy.Config{Name: name, Listen: "127.0.0.1:0", Upstream: up}, rules); err != nil {
			t.Fatal(err)
		}
	}
	admin := httptest.NewServer(in.Handler(adminToken))
	t.Cleanup(admin.Close)

	certFile := filepath.Join(t.TempDir(), "emulator.pem")
	if err := os.WriteFile(certFile, good.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	badCert := filepath.Join(t.TempDir(), "emulator-bad.pem")
	if err := os.WriteFile(badCert, bad.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}

	var outputs bytes.Buffer // everything but the log, labelled
	add := func(label string, b []byte) {
		fmt.Fprintf(&outputs, "\n--- %s\n", label)
		outputs.Write(b)
	}
	cases := []struct {
		proxy, encrypt, cert string
		wantOK               bool
	}{
		{"good", "disable", "", true},
		{"good", "false", "", true},
		{"good", "true", "", true},
		{"good", "strict", certFile, true},
		{"bad", "disable", "", false},
		{"bad", "false", "", false},
		{"bad", "strict", badCert, false},
	}
	for _, tc := range cases {
		name := tc.proxy + "/" + tc.encrypt
		pi, err := in.Proxy(tc.proxy)
		if err != nil {
			t.Fatal(err)
		}
		// Poll the live views while the session runs: Connections (the
		// snapshot API) and GET /connections.
		stop := make(chan struct{})
		polled := make(chan []byte)
		go func() {
			var b bytes.Buffer
			defer func() { polled <- b.Bytes() }()
			for i := 0; i < 5000; i++ { // bounded: at most 5000 polls
				select {
				case <-stop:
					return
				default:
				}
				for _, r := range in.Connections() {
					j, _ := json.Marshal(r)
					b.Write(j)
					fmt.Fprintf(&b, "%+v", *r)
					if r.Login != nil {
						fmt.Fprintf(&b, "%+v", *r.Login)
					}
				}
				b.Write(adminGet(admin.URL + "/connections"))
				time.Sleep(time.Millisecond)
			}
		}()
		err = selectOne(pi.Addr, tc.encrypt, tc.cert)
		close(stop)
		add(name+" polled connections", <-polled)
		if (err == nil) != tc.wantOK {
			t.Errorf("%s: SELECT 1 error = %v, want ok=%v", name, err, tc.wantOK)
		}
		if err != nil {
			add(name+" client error", []byte(err.Error()+fmt.Sprintf(" %+v %#v", err, err)))
		}
	}
	// Wait until every connection has finished, then take the final views.
	deadline := time.Now().Add(10 * time.Second)
	for len(in.Connections()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	page := in.Records(control.RecordQuery{})
	if len(page.Records) < len(cases) {
		t.Errorf("%d records for %d sessions", len(page.Records), len(cases))
	}
	sawLogin7 := false
	for _, r := range page.Records {
		j, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		add(fmt.Sprintf("record %d", r.ID), j)
		add(fmt.Sprintf("record %d %%+v", r.ID), []byte(fmt.Sprintf("%+v %+v %+v %+v", *r, r.Login, r.Prelogin, r.Close)))
		if r.Login != nil && r.Login.Visible {
			sawLogin7 = true // the watcher parsed a plaintext LOGIN7
		}
	}
	if !sawLogin7 {
		t.Error("no record shows a parsed plaintext LOGIN7: the disable cases did not exercise the parser")
	}
	for _, path := range []string{"/records", "/connections", "/proxies", "/metrics", "/proxies/good", "/proxies/good/faults"} {
		add("GET "+path, adminGet(admin.URL+path))
	}

	scan(t, "the log", logs.Bytes())
	scan(t, "records, snapshots, API answers, metrics and errors", outputs.Bytes())
	if !bytes.Contains(logs.Bytes(), []byte(`"connection closed"`)) || !bytes.Contains(logs.Bytes(), []byte(`"phase"`)) {
		t.Error("the log holds no connection or phase lines: the scan saw nothing")
	}
	if !bytes.Contains(outputs.Bytes(), []byte(canaryUser)) {
		t.Error("no output names the user: the scan saw no login")
	}
	if t.Failed() {
		t.Logf("scanned %d bytes of log and %d bytes of other outputs", len(logs.Bytes()), outputs.Len())
	}
}

func startEmulator(t *testing.T, cfg emulator.Config) *emulator.Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	s, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func adminGet(u string) []byte {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return b
}

func selectOne(addr, encrypt, cert string) error {
	q := url.Values{}
	q.Set("database", "master")
	q.Set("encrypt", encrypt)
	q.Set("TrustServerCertificate", "true")
	q.Set("connection timeout", "10")
	q.Set("dial timeout", "5")
	if cert != "" {
		q.Set("certificate", cert)
		q.Set("hostNameInCertificate", "localhost")
	}
	u := url.URL{Scheme: "sqlserver", User: url.UserPassword(canaryUser, canary), Host: addr, RawQuery: q.Encode()}
	cfg, err := msdsn.Parse(u.String())
	if err != nil {
		return err
	}
	db := sql.OpenDB(mssql.NewConnectorConfig(cfg))
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var v int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&v)
}

// A raw LOGIN7 with the canary, sent in plaintext straight after PRELOGIN
// (tds7-login, no PRELOGIN at all), also never reaches the outputs; and the
// parsed Login7 itself does not print it.
func TestLogin7PasswordNotPrinted(t *testing.T) {
	l := &tds.Login7{TDSVersion: tds.VersionTDS74, PacketSize: 4096, UserName: canaryUser, Password: tds.NewPassword(canary), ServerName: "srv"}
	raw := l.Marshal()
	back, err := tds.ParseLogin7(raw)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(back)
	scan(t, "Login7 printed", []byte(fmt.Sprintf("%v %+v %#v %s", back, back, back, j)))
	if back.Password.Reveal() != canary {
		t.Fatal("the fixture does not carry the password")
	}
	// The raw message does carry the obfuscated form: the needles work.
	found := false
	for name, n := range needles() {
		if strings.HasPrefix(name, "obfuscated raw") && bytes.Contains(raw, []byte(n)) {
			found = true
		}
	}
	if !found {
		t.Fatal("the obfuscated needle is not in the LOGIN7 it was made for")
	}
}
