package lab

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// The lab's login. The emulator checks it; it is a lab credential printed
// in hold mode's connection strings, not a secret, but like every LOGIN7
// password it never reaches a record or a log.
const (
	labUser     = "sa"
	labPassword = "Lab-Pa55word"
)

// proxyName is the name of every lab proxy: records and rules use it.
const proxyName = "lab"

// recordWait bounds the wait for a connection's record after its client
// returned: the proxy finishes a record when both sides have closed.
const recordWait = 10 * time.Second

// env is one upstream (the emulator, or an external server such as
// openssl s_server) behind one proxy with a fault engine.
type env struct {
	emu      *emulator.Server // nil for an external upstream
	proxy    *proxy.Proxy
	engine   *faults.Engine
	recs     *recorder
	upstream string
}

// envConfig describes an env.
type envConfig struct {
	// Emulator configures the emulator; ignored when Upstream is set.
	Emulator emulator.Config
	// Upstream is an external upstream host:port; "" starts the emulator.
	Upstream string
	// Listen is the proxy's address; "" means 127.0.0.1:0.
	Listen string
	Rules  []faults.RuleSpec
	Logger *zap.Logger
	// Sink, if set, also receives every record (hold mode logs them).
	Sink func(*proxy.Record)
}

func startEnv(cfg envConfig) (*env, error) {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	e := &env{recs: newRecorder(), engine: faults.NewEngine(nil), upstream: cfg.Upstream}
	if err := e.engine.SetRules(proxyName, cfg.Rules); err != nil {
		return nil, fmt.Errorf("lab: rules: %w", err)
	}
	if e.upstream == "" {
		ec := cfg.Emulator
		ec.Listen = "127.0.0.1:0"
		ec.User, ec.Password = labUser, labPassword
		ec.Logger = log.Named("emulator")
		emu, err := emulator.New(ec)
		if err != nil {
			return nil, err
		}
		if err := emu.Start(); err != nil {
			return nil, err
		}
		e.emu = emu
		e.upstream = emu.Addr()
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	sink := e.recs.add
	if cfg.Sink != nil {
		sink = func(r *proxy.Record) { e.recs.add(r); cfg.Sink(r) }
	}
	p, err := proxy.New(proxy.Config{Name: proxyName, Listen: listen, Upstream: e.upstream, DialTimeout: 5 * time.Second},
		proxy.Options{Logger: log.Named("proxy"), Sink: sink, Decider: e.engine.Decider(proxyName)})
	if err == nil {
		err = p.Start()
	}
	if err != nil {
		e.close()
		return nil, err
	}
	e.proxy = p
	return e, nil
}

// addr is the proxy's address, where clients connect.
func (e *env) addr() string { return e.proxy.Addr().String() }

func (e *env) close() {
	if e.proxy != nil {
		_ = e.proxy.Close()
	}
	if e.emu != nil {
		_ = e.emu.Close()
	}
}

// recorder collects finished records by client address.
type recorder struct {
	mu      sync.Mutex
	recs    []*proxy.Record
	changed chan struct{} // closed and replaced at every add
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) add(rec *proxy.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	close(r.changed)
	r.changed = make(chan struct{})
}

// errNoRecord: the proxy did not finish a record for the connection in time.
var errNoRecord = errors.New("no connection record")

// wait returns the record of the connection from client (host:port), or
// the first record when client is "".
func (r *recorder) wait(ctx context.Context, client string) (*proxy.Record, error) {
	t := time.NewTimer(recordWait)
	defer t.Stop()
	for {
		r.mu.Lock()
		for _, rec := range r.recs {
			if client == "" || rec.Client == client {
				r.mu.Unlock()
				return rec, nil
			}
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-t.C:
			return nil, fmt.Errorf("%w within %v", errNoRecord, recordWait)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
