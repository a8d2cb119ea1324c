package control

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
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
	mux.HandleFunc("GET /retries", a.listRetries)
	mux.HandleFunc("POST /proxies/{name}/failover", a.failover)
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
