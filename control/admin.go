package control

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// DefaultAdminListen is where tdsproxy run serves the admin API unless told
// otherwise (configs.DefaultAdminListen).
const DefaultAdminListen = "127.0.0.1:8475"

// maxBody caps a request body: rules and proxy definitions are small.
const maxBody = 1 << 20

// ErrTokenRequired is returned by CheckAdminListen and ServeAdmin for an
// admin address that is not loopback when no token is set: the admin API
// can cut connections and change faults, so it is not exposed without
// authentication.
var ErrTokenRequired = errors.New("a non-loopback admin address needs a token")

// CheckAdminListen checks that the admin API may listen on addr with token:
// any address with a token, only a loopback one (127.0.0.0/8, ::1,
// localhost) without. It does not bind.
func CheckAdminListen(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin listen %q is not host:port: %w", addr, err)
	}
	if token != "" || isLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("%w: %q is not a loopback address; set admin.token (TDSPROXY_ADMIN_TOKEN) or listen on 127.0.0.1", ErrTokenRequired, addr)
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// adminServer is one ServeAdmin listener.
type adminServer struct {
	srv *http.Server
	ln  net.Listener
}

// ServeAdmin serves the admin API (Handler) on addr until Shutdown or Close
// and returns the bound address. Without a token addr must be loopback
// (ErrTokenRequired), checked again on the address actually bound.
func (in *Instance) ServeAdmin(addr, token string) (net.Addr, error) {
	if err := CheckAdminListen(addr, token); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listen: %w", err)
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && token == "" && !ta.IP.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("%w: %q is bound to %v", ErrTokenRequired, addr, ta.IP)
	}
	as := &adminServer{ln: ln, srv: &http.Server{
		Handler:           in.Handler(token),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(in.log.Named("admin")),
	}}
	in.mu.Lock()
	if in.closing {
		in.mu.Unlock()
		ln.Close()
		return nil, ErrClosed
	}
	in.admins = append(in.admins, as)
	in.mu.Unlock()
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		_ = as.srv.Serve(ln)
	}()
	in.log.Info("admin API listening", zap.Stringer("listen", ln.Addr()), zap.Bool("token", token != ""))
	return ln.Addr(), nil
}

// stopAdmins stops the admin servers, letting requests in flight finish
// for a moment.
func (in *Instance) stopAdmins() {
	in.mu.Lock()
	as := in.admins
	in.admins = nil
	in.mu.Unlock()
	for _, a := range as {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if a.srv.Shutdown(ctx) != nil {
			_ = a.srv.Close()
		}
		cancel()
	}
}

// buildVersion is the main module's version, with the VCS revision when the
// binary was built from a checkout.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	return v
}

// Handler returns the admin API. With a token, every request but GET
// /healthz needs "Authorization: Bearer TOKEN" (compared in constant time);
// "" means no authentication (keep such a handler on loopback).
func (in *Instance) Handler(token string) http.Handler {
	a := &api{in: in}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /proxies", a.listProxies)
	mux.HandleFunc("POST /proxies", a.addProxy)
	mux.HandleFunc("GET /proxies/{name}", a.getProxy)
	mux.HandleFunc("DELETE /proxies/{name}", a.deleteProxy)
	mux.HandleFunc("GET /proxies/{name}/faults", a.listFaults)
	mux.HandleFunc("POST /proxies/{name}/faults", a.addFault)
	mux.HandleFunc("PUT /proxies/{name}/faults", a.setFaults)
	mux.HandleFunc("GET /proxies/{name}/faults/{rule}", a.getFault)
	mux.HandleFunc("PATCH /proxies/{name}/faults/{rule}", a.patchFault)
	mux.HandleFunc("DELETE /proxies/{name}/faults/{rule}", a.deleteFault)
	mux.HandleFunc("POST /reset", a.reset)
	mux.HandleFunc("GET /connections", a.listConnections)
	mux.HandleFunc("GET /connections/{id}", a.getConnection)
	mux.HandleFunc("POST /connections/{id}/close", a.closeConnection)
	mux.HandleFunc("GET /records", a.records)
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /version", a.version)
	mux.Handle("GET /metrics", promhttp.HandlerFor(in.metrics.reg, promhttp.HandlerOpts{}))
	var sum [sha256.Size]byte
	if token != "" {
		sum = sha256.Sum256([]byte(token))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" && !(r.Method == http.MethodGet && r.URL.Path == "/healthz") && !authorized(r, sum) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tdsproxy"`)
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "missing or wrong bearer token (Authorization: Bearer TOKEN)")
			return
		}
		if _, pattern := mux.Handler(r); pattern == "" {
			notRouted(w, r, mux)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// authorized compares the bearer token in constant time: both sides are
// hashed first, so not even the length leaks.
func authorized(r *http.Request, want [sha256.Size]byte) bool {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// notRouted answers a request no pattern took: 405 when the path exists
// with another method, else 404; in the one error shape, not ServeMux's
// plain text.
func notRouted(w http.ResponseWriter, r *http.Request, mux *http.ServeMux) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := mux.Handler(probe); p != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
		return
	}
	writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("%s: no such endpoint", r.URL.Path))
}

type api struct{ in *Instance }

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		writeError(w, http.StatusInternalServerError, CodeInternal, "encoding the answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(ErrorBody{Error: ErrorDetail{Code: code, Message: msg}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// fail answers err with the status its kind calls for.
func fail(w http.ResponseWriter, err error) {
	var ie *InvalidError
	switch {
	case errors.Is(err, ErrNoProxy), errors.Is(err, ErrNoConnection), errors.Is(err, faults.ErrNoRule):
		writeError(w, http.StatusNotFound, CodeNotFound, err.Error())
	case errors.Is(err, ErrProxyExists), errors.Is(err, faults.ErrRuleExists), errors.Is(err, ErrAddressInUse):
		writeError(w, http.StatusConflict, CodeConflict, err.Error())
	case errors.Is(err, ErrClosed):
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, err.Error())
	case errors.As(err, &ie):
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
	}
}

// readBody reads a request body of at most maxBody bytes.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, invalidf("body: %v", err)
	}
	if len(b) > maxBody {
		return nil, invalidf("body: larger than %d bytes", maxBody)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, invalidf("body: empty; expected a JSON object")
	}
	return b, nil
}

// decodeStrict decodes one JSON value into v; an unknown field is an error
// naming it.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid(jsonFieldError(err))
	}
	if dec.More() {
		return invalidf("body: more than one JSON value")
	}
	return nil
}

// jsonFieldError rewrites encoding/json's errors to name the field as the
// user wrote it.
func jsonFieldError(err error) error {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) && ute.Field != "" {
		// encoding/json puts the Go struct's name before an embedded
		// struct's fields ("ProxyRequest.name"); users write only keys,
		// which are lower case.
		key := ute.Field
		for {
			first, rest, ok := strings.Cut(key, ".")
			if !ok || first == "" || first[0] < 'A' || first[0] > 'Z' {
				break
			}
			key = rest
		}
		value := ute.Value
		switch value {
		case "bool":
			value = "true/false"
		case "array":
			value = "a list"
		case "object":
			value = "an object"
		case "number", "string":
			value = "a " + value
		}
		return fmt.Errorf("%s: must be %s, not %s", key, jsonKind(ute.Type), value)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return fmt.Errorf("%s: unknown key", strings.Trim(f, `"`))
	}
	return fmt.Errorf("body: %v", jsonSyntax(err))
}

// jsonKind says what a JSON value of Go type t looks like, in JSON's words.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another kind of value"
}

// jsonSyntax words a syntax error with its offset.
func jsonSyntax(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errors.New("invalid JSON: unexpected end")
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}

func (a *api) listProxies(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.in.Proxies())
}

func (a *api) getProxy(w http.ResponseWriter, r *http.Request) {
	pi, err := a.in.Proxy(r.PathValue("name"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, pi)
}

func (a *api) addProxy(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(r)
	if err != nil {
		fail(w, err)
		return
	}
	// The wire form takes dial_timeout as a string so a bad one is
	// reported with its key (a TextUnmarshaler's error is not), and each
	// rule raw, so an error in one names faults[i].key.
	var req struct {
		ProxyRequest
		DialTimeout string            `json:"dial_timeout"`
		Faults      []json.RawMessage `json:"faults"`
	}
	if err := decodeStrict(b, &req); err != nil {
		fail(w, err)
		return
	}
	cfg := proxy.Config{Name: req.Name, Listen: req.Listen, Upstream: req.Upstream, Bridge: bridgeFromWire(req.Bridge)}
	if req.DialTimeout != "" {
		d, err := time.ParseDuration(req.DialTimeout)
		if err != nil || d <= 0 {
			fail(w, invalidf("dial_timeout: %q is not a positive duration like 5s", req.DialTimeout))
			return
		}
		cfg.DialTimeout = d
	}
	rules, err := parseRules(req.Faults)
	if err != nil {
		fail(w, err)
		return
	}
	if err := a.in.AddProxy(cfg, rules); err != nil {
		fail(w, err)
		return
	}
	pi, err := a.in.Proxy(req.Name)
	if err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Location", "/proxies/"+url.PathEscape(req.Name))
	writeJSON(w, http.StatusCreated, pi)
}

// parseRules decodes a list of rules; an error names faults[i].key.
func parseRules(raw []json.RawMessage) ([]faults.RuleSpec, error) {
	specs := make([]faults.RuleSpec, len(raw))
	for i, m := range raw {
		var err error
		if specs[i], err = faults.ParseRuleSpec(m); err != nil {
			return nil, invalid(indexedKey(i, err))
		}
	}
	return specs, nil
}

// indexedKey puts faults[i] in front of the key err names:
// "match.a: unknown key" becomes "faults[2].match.a: unknown key".
func indexedKey(i int, err error) error {
	msg := err.Error()
	if k, rest, ok := strings.Cut(msg, ": "); ok && k != "" && !strings.ContainsAny(k, " \"") {
		return fmt.Errorf("faults[%d].%s: %s", i, k, rest)
	}
	return fmt.Errorf("faults[%d]: %s", i, msg)
}

// ruleSetError words a rule set's error (faults.RuleError, "faults[2]:
// key: what") with the key's whole path, as parseRules does.
func ruleSetError(err error) error {
	var re *faults.RuleError
	if errors.As(err, &re) {
		return invalid(indexedKey(re.Index, re.Err))
	}
	return invalid(err)
}

// deleteProxy: ?drain=DURATION lets open connections finish for that long
// (default 0: closed at once, as Toxiproxy does); ?style=fin|rst.
func (a *api) deleteProxy(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var drain time.Duration
	if s := q.Get("drain"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			fail(w, invalidf("drain: %q is not a duration like 0s or 30s", s))
			return
		}
		drain = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), drain)
	defer cancel()
	if err := a.in.RemoveProxy(ctx, r.PathValue("name"), proxy.CloseStyle(q.Get("style"))); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) listFaults(w http.ResponseWriter, r *http.Request) {
	rules, err := a.in.Faults(r.PathValue("name"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rules)
}

func (a *api) getFault(w http.ResponseWriter, r *http.Request) {
	rule, err := a.in.Fault(r.PathValue("name"), r.PathValue("rule"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rule)
}

func (a *api) addFault(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !a.in.hasProxy(name) {
		fail(w, fmt.Errorf("proxy %q: %w", name, ErrNoProxy))
		return
	}
	b, err := readBody(r)
	if err != nil {
		fail(w, err)
		return
	}
	spec, err := faults.ParseRuleSpec(b)
	if err != nil {
		fail(w, invalid(err))
		return
	}
	rule, err := a.in.AddFault(name, spec)
	if err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Location", "/proxies/"+url.PathEscape(name)+"/faults/"+url.PathEscape(rule.Name))
	writeJSON(w, http.StatusCreated, rule)
}

func (a *api) setFaults(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !a.in.hasProxy(name) {
		fail(w, fmt.Errorf("proxy %q: %w", name, ErrNoProxy))
		return
	}
	b, err := readBody(r)
	if err != nil {
		fail(w, err)
		return
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		fail(w, invalidf("body: expected a JSON array of rules: %v", jsonSyntax(err)))
		return
	}
	specs, err := parseRules(raw)
	if err != nil {
		fail(w, err)
		return
	}
	if err := a.in.SetFaults(name, specs); err != nil {
		fail(w, err)
		return
	}
	rules, _ := a.in.Faults(name)
	writeJSON(w, http.StatusOK, rules)
}

func (a *api) patchFault(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(r)
	if err != nil {
		fail(w, err)
		return
	}
	rule, err := a.in.PatchFault(r.PathValue("name"), r.PathValue("rule"), b)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rule)
}

func (a *api) deleteFault(w http.ResponseWriter, r *http.Request) {
	if err := a.in.DeleteFault(r.PathValue("name"), r.PathValue("rule")); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) reset(w http.ResponseWriter, r *http.Request) {
	a.in.Reset()
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) listConnections(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.in.Connections())
}

func connID(r *http.Request) (uint64, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, invalidf("id: %q is not a connection id (a number)", s)
	}
	return id, nil
}

func (a *api) getConnection(w http.ResponseWriter, r *http.Request) {
	id, err := connID(r)
	if err != nil {
		fail(w, err)
		return
	}
	rec, err := a.in.Connection(id)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// closeConnection: ?style=rst (the client sees a reset: 10054) or fin
// (default).
func (a *api) closeConnection(w http.ResponseWriter, r *http.Request) {
	id, err := connID(r)
	if err != nil {
		fail(w, err)
		return
	}
	if err := a.in.CloseConnection(id, proxy.CloseStyle(r.URL.Query().Get("style"))); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ParseRecordQuery reads GET /records's parameters: since (a cursor, i.e. a
// previous answer's next, or an RFC 3339 time), limit and last.
func ParseRecordQuery(since, limit, last string) (RecordQuery, error) {
	var q RecordQuery
	if since != "" {
		if c, err := strconv.ParseUint(since, 10, 64); err == nil {
			q.After = c
		} else if t, err := time.Parse(time.RFC3339Nano, since); err == nil {
			q.Since = t
		} else {
			return q, invalidf("since: %q is neither a cursor (the next of a previous answer) nor an RFC 3339 time like 2024-05-01T12:00:00Z", since)
		}
	}
	count := func(key, s string) (int, error) {
		if s == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, invalidf("%s: %q is not a count", key, s)
		}
		return n, nil
	}
	var err error
	if q.Limit, err = count("limit", limit); err != nil {
		return q, err
	}
	q.Last, err = count("last", last)
	return q, err
}

func (a *api) records(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q, err := ParseRecordQuery(v.Get("since"), v.Get("limit"), v.Get("last"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.in.Records(q))
}

func (a *api) healthz(w http.ResponseWriter, r *http.Request) {
	if a.in.isClosing() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *api) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, VersionInfo{Version: a.in.version, Go: runtime.Version()})
}
