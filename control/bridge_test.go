package control_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/interop"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/tds"
)

// POST /proxies with a bridge section starts a bridge: a client gets
// through with the generated CA, and GET /records shows the bridge
// section; a bad bridge section is refused with its key named.
func TestAPIAddBridgeProxy(t *testing.T) {
	emu := testkit.StartEmulator(t, emulator.Config{Encrypt: tds.EncryptOff, User: "u", Password: "Pa55-word!"})
	in := newInstance(t, control.Options{})
	base := serveAdmin(t, in, "")
	dir := t.TempDir()
	caOut := filepath.Join(dir, "ca.pem")
	body := `{"name": "br", "listen": "127.0.0.1:0", "upstream": "` + emu.Addr() + `",
		"bridge": {"ca_out": "` + caOut + `", "upstream_insecure": true, "record_queries": "text"}}`
	st, b := call(t, "POST", base+"/proxies", body, "")
	wantStatus(t, st, b, 201, `"name": "br"`)
	var pi control.ProxyInfo
	if err := json.Unmarshal(b, &pi); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(caOut)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	_, port, _ := strings.Cut(pi.Addr, ":")
	p, _ := strconv.Atoi(port)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := interop.RunMSSQL(ctx, interop.MSSQLConfig{Port: p, User: "u", Password: "Pa55-word!", Encrypt: "strict",
		Query: "SELECT 1", Timeout: 20 * time.Second, TLS: func(c *tls.Config) { c.RootCAs = pool }})
	if err != nil || !res.OK {
		t.Fatalf("through the bridge: %v %q", err, res.Error)
	}
	var recs string
	testkit.WaitFor(t, func() bool {
		_, rb := call(t, "GET", base+"/records?proxy=br", "", "")
		recs = string(rb)
		return strings.Contains(recs, `"bridge"`)
	}, 10*time.Second, "a bridged record in GET /records")
	for _, want := range []string{`"upstream_insecure": true`, `"record_queries": "text"`, `"keylog": false`, `"SELECT 1"`} {
		if !strings.Contains(recs, want) {
			t.Errorf("GET /records lacks %s:\n%.2000s", want, recs)
		}
	}
	if strings.Contains(recs, "Pa55-word!") {
		t.Fatal("password in GET /records")
	}
	st, b = call(t, "POST", base+"/proxies", `{"name": "b2", "listen": "127.0.0.1:0", "upstream": "h:1", "bridge": {"upstream_hello": "chrome"}}`, "")
	wantStatus(t, st, b, 400, "upstream-hello")
	st, b = call(t, "POST", base+"/proxies", `{"name": "b3", "listen": "127.0.0.1:0", "upstream": "h:1", "bridge": {"certificate": "x"}}`, "")
	wantStatus(t, st, b, 400, "certificate: unknown key")
}
