package control_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	wire "github.com/tdsproxy/tdsproxy/control/api"

	"github.com/tdsproxy/tdsproxy/internal/testkit"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/control/client"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// call sends one request and returns the status and body.
func call(t *testing.T, method, url, body, token string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// wantStatus checks the status, and for an error the one error shape with
// its code and a message containing want.
func wantStatus(t *testing.T, status int, body []byte, wantCode int, want string) {
	t.Helper()
	if status != wantCode {
		t.Fatalf("status = %d, want %d; body: %s", status, wantCode, body)
	}
	if status < 300 {
		if want != "" && !bytes.Contains(body, []byte(want)) {
			t.Errorf("body = %s, want it to contain %q", body, want)
		}
		return
	}
	var eb control.ErrorBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
		t.Fatalf("error body %s is not {\"error\": {\"code\", \"message\"}}: %v", body, err)
	}
	codes := map[int]string{400: control.CodeBadRequest, 401: control.CodeUnauthorized, 404: control.CodeNotFound,
		405: control.CodeMethodNotAllowed, 409: control.CodeConflict, 503: control.CodeUnavailable}
	if c := codes[status]; c != eb.Error.Code {
		t.Errorf("error code = %q, want %q", eb.Error.Code, c)
	}
	if !strings.Contains(eb.Error.Message, want) {
		t.Errorf("error message = %q, want it to contain %q", eb.Error.Message, want)
	}
}

// Every endpoint, with its error cases, against a running instance.
func TestAdminAPIEndpoints(t *testing.T) {
	emu := testkit.StartEmulator(t, emulator.Config{})
	in := newInstance(t, control.Options{})
	mainAddr := addProxy(t, in, "main", emu.Addr())
	base := serveAdmin(t, in, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("proxies", func(t *testing.T) {
		st, b := call(t, "GET", base+"/proxies", "", "")
		wantStatus(t, st, b, 200, `"name": "main"`)
		var ps []control.ProxyInfo
		if err := json.Unmarshal(b, &ps); err != nil || len(ps) != 1 || ps[0].Addr != mainAddr || ps[0].Upstream != emu.Addr() {
			t.Errorf("GET /proxies = %s (%v), want main at %s", b, err, mainAddr)
		}
		st, b = call(t, "GET", base+"/proxies/main", "", "")
		wantStatus(t, st, b, 200, `"dial_timeout": "10s"`)
		st, b = call(t, "GET", base+"/proxies/nope", "", "")
		wantStatus(t, st, b, 404, `"nope"`)
	})

	t.Run("add and delete proxy", func(t *testing.T) {
		body := `{"name": "extra", "listen": "127.0.0.1:0", "upstream": "` + emu.Addr() + `", "dial_timeout": "2s",
			"faults": [{"name": "slow", "action": "latency", "options": {"latency": "1ms"}}]}`
		st, b := call(t, "POST", base+"/proxies", body, "")
		wantStatus(t, st, b, 201, `"name": "slow"`)
		tests := []struct {
			name, body string
			code       int
			want       string
		}{
			{"same name", body, 409, "already exists"},
			{"bad JSON", `{"name": `, 400, "invalid JSON"},
			{"empty body", ``, 400, "body: empty"},
			{"unknown field", `{"nmae": "x", "listen": "127.0.0.1:0", "upstream": "h:1"}`, 400, "nmae: unknown key"},
			{"wrong type", `{"name": 7}`, 400, "name: must be a string, not a number"},
			{"bad upstream", `{"name": "x", "listen": "127.0.0.1:0", "upstream": "nohost"}`, 400, "upstream:"},
			{"bad name", `{"name": "a b", "listen": "127.0.0.1:0", "upstream": "h:1"}`, 400, "name:"},
			{"bad dial timeout", `{"name": "x", "listen": "127.0.0.1:0", "upstream": "h:1", "dial_timeout": "soon"}`, 400, "dial_timeout"},
			{"bad rule", `{"name": "x", "listen": "127.0.0.1:0", "upstream": "h:1", "faults": [{"name": "r", "scenario": "nope"}]}`, 400, "faults[0].scenario: "},
			{"address in use", `{"name": "x", "listen": "` + mainAddr + `", "upstream": "h:1"}`, 409, "address already in use"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				st, b := call(t, "POST", base+"/proxies", tt.body, "")
				wantStatus(t, st, b, tt.code, tt.want)
			})
		}
		if _, err := in.Proxy("x"); err == nil {
			t.Error("a refused POST /proxies left proxy x running")
		}
		st, b = call(t, "DELETE", base+"/proxies/extra?drain=0s&style=rst", "", "")
		wantStatus(t, st, b, 204, "")
		st, b = call(t, "DELETE", base+"/proxies/extra", "", "")
		wantStatus(t, st, b, 404, "no such proxy")
		st, b = call(t, "DELETE", base+"/proxies/main?drain=forever", "", "")
		wantStatus(t, st, b, 400, "drain:")
	})

	t.Run("faults", func(t *testing.T) {
		u := base + "/proxies/main/faults"
		st, b := call(t, "GET", u, "", "")
		wantStatus(t, st, b, 200, "[]")
		st, b = call(t, "POST", u, `{"name": "old", "scenario": "protocol-mismatch", "options": {"server_tls": "1.0"}, "match": {"clients": ["127.0.0.99"]}}`, "")
		wantStatus(t, st, b, 201, `"seed": `)
		for _, tt := range []struct {
			name, method, url, body string
			code                    int
			want                    string
		}{
			{"add same name", "POST", u, `{"name": "old", "action": "latency", "options": {"latency": "1ms"}}`, 409, "already exists"},
			{"add unknown key", "POST", u, `{"name": "n", "scenaro": "delayed-accept"}`, 400, "scenaro: unknown key"},
			{"add bad option", "POST", u, `{"name": "n", "scenario": "protocol-mismatch", "options": {"server_tls": "9"}}`, 400, "options.server_tls"},
			{"add bad JSON", "POST", u, `[`, 400, ""},
			{"add to unknown proxy", "POST", base + "/proxies/nope/faults", `{"name": "n", "action": "latency", "options": {"latency": "1ms"}}`, 404, "no such proxy"},
			{"list unknown proxy", "GET", base + "/proxies/nope/faults", "", 404, "no such proxy"},
			{"get", "GET", u + "/old", "", 200, `"server_tls": "1.0"`},
			{"get unknown", "GET", u + "/nope", "", 404, "no such rule"},
			{"patch", "PATCH", u + "/old", `{"close": "fin", "match": {"probability": 1}}`, 200, `"close": "fin"`},
			{"add with a 64-bit seed", "POST", u, `{"name": "seeded", "action": "latency", "options": {"latency": "1ms"}, "seed": 9007199254740993}`, 201, `"seed": 9007199254740993`},
			{"patch keeps the seed exact", "PATCH", u + "/seeded", `{"close": "fin"}`, 200, `"seed": 9007199254740993`},
			{"patch unknown key", "PATCH", u + "/old", `{"bogus": 1}`, 400, "bogus: unknown key"},
			{"patch bad value", "PATCH", u + "/old", `{"match": {"probability": 2}}`, 400, "match.probability"},
			{"patch not an object", "PATCH", u + "/old", `[1]`, 400, "merge patch"},
			{"patch unknown rule", "PATCH", u + "/nope", `{"close": "fin"}`, 404, "no such rule"},
			{"put set", "PUT", u, `[{"name": "old", "scenario": "protocol-mismatch", "options": {"server_tls": "1.0"}, "match": {"clients": ["127.0.0.99"]}},
				{"name": "other", "action": "latency", "options": {"latency": "1ms"}, "match": {"clients": ["127.0.0.98"]}}]`, 200, `"name": "other"`},
			{"patch rename onto another", "PATCH", u + "/old", `{"name": "other"}`, 409, "already exists"},
			{"put bad rule", "PUT", u, `[{"name": "a", "action": "latency", "options": {"latency": "1ms"}}, {"name": "b", "action": "nope"}]`, 400, "faults[1]"},
			{"put not a list", "PUT", u, `{}`, 400, "array"},
			{"delete", "DELETE", u + "/other", "", 204, ""},
			{"delete again", "DELETE", u + "/other", "", 404, "no such rule"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				st, b := call(t, tt.method, tt.url, tt.body, "")
				wantStatus(t, st, b, tt.code, tt.want)
			})
		}
		rules, _ := in.Faults("main")
		if len(rules) != 1 || rules[0].Name != "old" || rules[0].Options["server_tls"] != "1.0" {
			t.Errorf("rules = %+v, want only old as PUT set it (refused changes change nothing)", rules)
		}
		st, b = call(t, "POST", base+"/reset", "", "")
		wantStatus(t, st, b, 204, "")
		if rules, _ := in.Faults("main"); len(rules) != 0 {
			t.Errorf("rules after POST /reset = %+v, want none", rules)
		}
	})

	t.Run("connections and records", func(t *testing.T) {
		c := newSQLClient(t, mainAddr, nil, "app", "pw", "false")
		conn, err := c.connect(ctx)
		if err != nil {
			t.Fatalf("connect through the proxy: %v", err)
		}
		defer conn.Close()
		if _, err := query(ctx, conn, "SELECT 1", 0); err != nil {
			t.Fatal(err)
		}
		st, b := call(t, "GET", base+"/connections", "", "")
		wantStatus(t, st, b, 200, `"phase": "established"`)
		var recs []proxy.Record
		if err := json.Unmarshal(b, &recs); err != nil || len(recs) != 1 {
			t.Fatalf("GET /connections = %s (%v), want one connection", b, err)
		}
		id := itoa(recs[0].ID)
		st, b = call(t, "GET", base+"/connections/"+id, "", "")
		wantStatus(t, st, b, 200, `"id": `+id)
		st, b = call(t, "GET", base+"/connections/abc", "", "")
		wantStatus(t, st, b, 400, "id:")
		st, b = call(t, "GET", base+"/connections/999999", "", "")
		wantStatus(t, st, b, 404, "no such connection")
		st, b = call(t, "POST", base+"/connections/"+id+"/close?style=slam", "", "")
		wantStatus(t, st, b, 400, "style:")
		st, b = call(t, "POST", base+"/connections/999999/close", "", "")
		wantStatus(t, st, b, 404, "no such connection")
		st, b = call(t, "POST", base+"/connections/"+id+"/close?style=rst", "", "")
		wantStatus(t, st, b, 204, "")
		if _, err := query(ctx, conn, "SELECT 1", 0); err == nil {
			t.Error("a query on a connection closed through the API succeeded")
		}

		// The record reaches the ring once the session has ended.
		var page control.RecordPage
		testkit.WaitFor(t, func() bool {
			page = in.Records(control.RecordQuery{})
			return len(page.Records) > 0
		}, 10*time.Second, "the closed connection's record")
		if len(page.Records) != 1 || itoa(page.Records[0].ID) != id || page.Records[0].Close == nil ||
			page.Records[0].Close.By != proxy.SideProxy {
			t.Fatalf("records = %+v, want connection %s closed by the proxy", page.Records, id)
		}
		st, b = call(t, "GET", base+"/records", "", "")
		wantStatus(t, st, b, 200, `"next": 1`)
		st, b = call(t, "GET", base+"/records?since=1", "", "")
		wantStatus(t, st, b, 200, `"records": []`)
		st, b = call(t, "GET", base+"/records?since=2000-01-01T00:00:00Z&limit=5&last=5", "", "")
		wantStatus(t, st, b, 200, `"id": `+id)
		st, b = call(t, "GET", base+"/records?since="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "", "")
		wantStatus(t, st, b, 200, `"records": []`)
		st, b = call(t, "GET", base+"/records?since=yesterday", "", "")
		wantStatus(t, st, b, 400, "since:")
		st, b = call(t, "GET", base+"/records?limit=-1", "", "")
		wantStatus(t, st, b, 400, "limit:")
	})

	t.Run("health version metrics", func(t *testing.T) {
		st, b := call(t, "GET", base+"/healthz", "", "")
		wantStatus(t, st, b, 200, `"ok"`)
		st, b = call(t, "GET", base+"/version", "", "")
		wantStatus(t, st, b, 200, `"go": "go`)
		st, b = call(t, "GET", base+"/metrics", "", "")
		wantStatus(t, st, b, 200, control.MetricConnections+`{close_phase="established",outcome="ok",proxy="main"} 1`)
		for _, name := range []string{control.MetricConnectionsActive, control.MetricCloses, control.MetricBytes,
			control.MetricNegotiationSeconds, control.MetricAcceptWaitSeconds, control.MetricBuildInfo, control.MetricConfigReloads} {
			if !bytes.Contains(b, []byte(name)) {
				t.Errorf("GET /metrics has no %s", name)
			}
		}
	})

	t.Run("routing errors", func(t *testing.T) {
		st, b := call(t, "GET", base+"/nowhere", "", "")
		wantStatus(t, st, b, 404, "no such endpoint")
		st, b = call(t, "DELETE", base+"/records", "", "")
		wantStatus(t, st, b, 405, "use GET")
		st, b = call(t, "PUT", base+"/proxies/main", "", "")
		wantStatus(t, st, b, 405, "DELETE")
	})

	t.Run("client errors", func(t *testing.T) {
		c := client.New(base, "")
		_, err := c.Proxy(ctx, "nope")
		var ae *client.APIError
		if !errors.As(err, &ae) || !errors.Is(err, client.ErrNotFound) || ae.Code != control.CodeNotFound {
			t.Errorf("Proxy(nope) = %v, want an APIError matching ErrNotFound", err)
		}
		_, err = c.AddFault(ctx, "main", wire.Rule{Name: "x", Scenario: "nope"})
		if !errors.Is(err, client.ErrBadRequest) || !strings.Contains(err.Error(), "scenario:") {
			t.Errorf("AddFault(bad) = %v, want ErrBadRequest naming scenario", err)
		}
	})
}

// With a token, every request but GET /healthz needs it, compared exactly.
func TestAdminAPIToken(t *testing.T) {
	in := newInstance(t, control.Options{})
	base := serveAdmin(t, in, "s3cret-token")
	for _, tt := range []struct {
		name, path, token string
		code              int
	}{
		{"no token", "/proxies", "", 401},
		{"wrong token", "/proxies", "s3cret-tokem", 401},
		{"longer token", "/proxies", "s3cret-token-and-more", 401},
		{"right token", "/proxies", "s3cret-token", 200},
		{"metrics without token", "/metrics", "", 401},
		{"health without token", "/healthz", "", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, b := call(t, "GET", base+tt.path, "", tt.token)
			wantStatus(t, st, b, tt.code, "")
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.New(base, "nope").Proxies(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("client with a wrong token: %v, want ErrUnauthorized", err)
	}
	if _, err := client.New(base, "s3cret-token").Proxies(ctx); err != nil {
		t.Errorf("client with the token: %v", err)
	}
}

// A non-loopback admin address without a token refuses to start (checked
// before binding); loopback ones, or any with a token, are fine.
func TestAdminListenNeedsToken(t *testing.T) {
	for _, tt := range []struct {
		addr, token string
		ok          bool
	}{
		{"0.0.0.0:8475", "", false},
		{":8475", "", false},
		{"[::]:8475", "", false},
		{"192.0.2.1:8475", "", false},
		{"db.example.com:8475", "", false},
		{"0.0.0.0:8475", "t", true},
		{"127.0.0.1:8475", "", true},
		{"127.0.0.2:8475", "", true},
		{"[::1]:8475", "", true},
		{"localhost:8475", "", true},
	} {
		err := control.CheckAdminListen(tt.addr, tt.token)
		if (err == nil) != tt.ok || (!tt.ok && !errors.Is(err, control.ErrTokenRequired)) {
			t.Errorf("CheckAdminListen(%q, token %v) = %v, want ok %v", tt.addr, tt.token != "", err, tt.ok)
		}
	}
	in := newInstance(t, control.Options{})
	// Refused before any bind: no traffic ever reaches a public interface.
	if addr, err := in.ServeAdmin("0.0.0.0:0", ""); !errors.Is(err, control.ErrTokenRequired) {
		t.Errorf("ServeAdmin(0.0.0.0:0, no token) = %v, %v; want ErrTokenRequired", addr, err)
	}
}

// No API answer ever holds the LOGIN7 password, even when the proxy saw
// the login in plaintext (encrypt=disable).
func TestAdminAPINeverShowsPassword(t *testing.T) {
	const user, password = "app", "Pa55-w0rd-Never-Shown!"
	emu := testkit.StartEmulator(t, emulator.Config{User: user, Password: password})
	in := newInstance(t, control.Options{})
	addr := addProxy(t, in, "main", emu.Addr())
	base := serveAdmin(t, in, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c := newSQLClient(t, addr, nil, user, password, "disable")
	if _, err := c.queryOnce(ctx, "SELECT 1"); err != nil {
		t.Fatalf("query through the proxy: %v", err)
	}
	live, err := c.connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, err := query(ctx, live, "SELECT @@VERSION", 0); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, func() bool { return len(in.Records(control.RecordQuery{}).Records) > 0 },
		10*time.Second, "the first connection's record")
	var seenUser bool
	for _, path := range []string{"/proxies", "/connections", "/records", "/metrics", "/connections/2", "/version"} {
		st, b := call(t, "GET", base+path, "", "")
		if st != 200 {
			t.Errorf("GET %s: %d %s", path, st, b)
		}
		if bytes.Contains(b, []byte(password)) || bytes.Contains(b, []byte("Pa55")) {
			t.Errorf("GET %s shows the password: %s", path, b)
		}
		seenUser = seenUser || bytes.Contains(b, []byte(`"user": "app"`))
	}
	if !seenUser {
		t.Error("no answer shows the plaintext login's user name: the proxy did not see LOGIN7, so the scan proves nothing")
	}
}

// Options.Registry gets the metrics too; a second instance on the same
// registry is refused rather than silently merged.
func TestOptionsRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	newInstance(t, control.Options{Registry: reg})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == control.MetricBuildInfo
	}
	if !found {
		t.Errorf("the registry has no %s", control.MetricBuildInfo)
	}
	if _, err := control.New(control.Options{Registry: reg}); err == nil {
		t.Error("a second instance registered on the same registry")
	}
}
