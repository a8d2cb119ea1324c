package soak

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/msdsn"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

var cleanModes = []string{"disable", "false", "true", "strict"}

type env struct {
	emu       *emulator.Server
	p         *proxy.Proxy
	eng       *faults.Engine
	certFile  string
	scenarios []Scenario
	byAddr    map[netip.Addr]*Scenario

	mu         sync.Mutex
	rep        *Report
	injections map[string]int
	records    int
	violations []string
	nViolation int
	closeKinds map[string]int
}

const (
	soakUser     = "soak"
	soakPassword = "Soak-Pa55-word"
	proxyName    = "soak"
)

func start(dir string, rep *Report) (*env, error) {
	e := &env{rep: rep, injections: map[string]int{}, closeKinds: map[string]int{}, byAddr: map[netip.Addr]*Scenario{}}
	emu, err := emulator.New(emulator.Config{Encrypt: tds.EncryptOff, User: soakUser, Password: soakPassword, LoginTimeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	if err := emu.Start(); err != nil {
		return nil, err
	}
	e.emu = emu
	e.certFile = filepath.Join(dir, "emulator.pem")
	if err := os.WriteFile(e.certFile, emu.CertificatePEM(), 0o600); err != nil {
		emu.Close()
		return nil, err
	}
	e.scenarios = Scenarios()
	var rules []faults.RuleSpec
	for i := range e.scenarios {
		sc := &e.scenarios[i]
		r := sc.Rule
		r.Name = sc.Name
		r.Match.Clients = []string{sc.Addr.String()}
		r.Seed = uint64(i + 1)
		rules = append(rules, r)
		e.byAddr[sc.Addr] = sc
	}
	e.eng = faults.NewEngine(nil)
	e.eng.OnInject = func(_, rule, _ string, _ proxy.Phase, _ string) {
		e.mu.Lock()
		e.injections[rule]++
		e.mu.Unlock()
	}
	if err := e.eng.SetRules(proxyName, rules); err != nil {
		emu.Close()
		return nil, err
	}
	p, err := proxy.New(proxy.Config{Name: proxyName, Listen: "127.0.0.1:0", Upstream: emu.Addr()},
		proxy.Options{Decider: e.eng.Decider(proxyName), Sink: e.sink})
	if err != nil {
		emu.Close()
		return nil, err
	}
	if err := p.Start(); err != nil {
		emu.Close()
		return nil, err
	}
	e.p = p
	return e, nil
}

func (e *env) close() {
	e.p.Close()
	e.emu.Close()
}

func (e *env) resetCounts() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.injections)
	clear(e.closeKinds)
	e.records, e.nViolation, e.violations = 0, 0, nil
}

// drain waits until the proxy holds no connection (bounded).
func (e *env) drain(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for len(e.p.Connections()) > 0 {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d connections still open after 30s", len(e.p.Connections()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// sink checks each finished record: a clean connection logged in and was
// never touched by a rule; a faulted one names its rule.
func (e *env) sink(r *proxy.Record) {
	var problem string
	ap, _ := netip.ParseAddrPort(r.Client)
	sc := e.byAddr[ap.Addr()]
	switch {
	case sc == nil:
		switch {
		case len(r.Faults) > 0:
			problem = "clean connection with faults"
		case len(r.ParseIssues) > 0:
			problem = "parse issue: " + r.ParseIssues[0].Error
		case !r.Reached(proxy.PhaseEstablished):
			problem = "clean connection never established"
		}
	default:
		hit := false
		for _, f := range r.Faults {
			// Acted: pass, skip and armed are not injections (as the
			// lab judges them).
			if f.Rule == sc.Name && f.Acted() {
				hit = true
			}
		}
		if !hit {
			problem = "faulted connection without its rule " + sc.Name
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.records++
	if r.Close != nil {
		e.closeKinds[string(r.Close.By)+"/"+string(r.Close.Kind)]++
	}
	if problem != "" {
		e.nViolation++
		if len(e.violations) < 5 {
			e.violations = append(e.violations, fmt.Sprintf("conn %d from %s: %s", r.ID, r.Client, problem))
		}
	}
}

func (e *env) fill(rep *Report) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, v := range e.injections {
		rep.Injections[k] = v
	}
	for k, v := range e.closeKinds {
		rep.CloseKinds[k] = v
	}
	rep.Records, rep.RecordViolations, rep.ViolationSamples = e.records, e.nViolation, e.violations
	rep.EmulatorProtocolErrors = e.emu.Stats().ProtocolErrors
}

// dsn is go-mssqldb's connection string for one client.
func (e *env) dsn(encrypt string, connTimeout int) string {
	host, port, _ := net.SplitHostPort(e.p.Addr().String())
	q := url.Values{}
	q.Set("database", "master")
	q.Set("encrypt", encrypt)
	q.Set("TrustServerCertificate", "true")
	if connTimeout <= 0 {
		connTimeout = 10
	}
	q.Set("connection timeout", strconv.Itoa(connTimeout))
	q.Set("dial timeout", "10")
	q.Set("app name", "tdsproxy-soak")
	if encrypt == "strict" {
		// Strict mode ignores TrustServerCertificate (msdsn parseTLS).
		q.Set("certificate", e.certFile)
		q.Set("hostNameInCertificate", "localhost")
	}
	u := url.URL{Scheme: "sqlserver", User: url.UserPassword(soakUser, soakPassword), Host: net.JoinHostPort(host, port), RawQuery: q.Encode()}
	return u.String()
}

func (e *env) open(encrypt string, connTimeout int, from netip.Addr, tlsMin, tlsMax uint16) (*sql.DB, error) {
	cfg, err := msdsn.Parse(e.dsn(encrypt, connTimeout))
	if err != nil {
		return nil, err
	}
	if cfg.TLSConfig != nil {
		if tlsMin != 0 {
			cfg.TLSConfig.MinVersion = tlsMin
		}
		if tlsMax != 0 {
			cfg.TLSConfig.MaxVersion = tlsMax
		}
	}
	c := mssql.NewConnectorConfig(cfg)
	c.Dialer = &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: from.AsSlice()}}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1)
	return db, nil
}
