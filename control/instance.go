package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	wire "github.com/tdsproxy/tdsproxy/control/api"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// DefaultRecordRing is how many finished connection records an Instance
// keeps when Options.RecordRing is 0.
const DefaultRecordRing = 1000

// Errors an Instance returns; the admin API maps them to HTTP statuses
// (ErrNoProxy and ErrNoConnection: 404; ErrProxyExists and ErrAddressInUse:
// 409; ErrClosed: 503). faults.ErrNoRule and faults.ErrRuleExists come
// through unchanged (404 and 409).
var (
	ErrNoProxy      = errors.New("no such proxy")
	ErrProxyExists  = errors.New("proxy already exists")
	ErrNoConnection = errors.New("no such connection")
	ErrAddressInUse = errors.New("address already in use")
	ErrClosed       = errors.New("instance is shut down")
)

// InvalidError is a request that cannot be carried out as given: a bad
// proxy definition, fault rule or configuration. Its message names the key
// at fault ("options.server_tls: ...", "proxies[1].upstream: ..."). The
// admin API answers it with 400.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying problem (configs.KeyErrors can list the keys
// of an Apply error through it).
func (e *InvalidError) Unwrap() error { return e.Err }

func invalid(err error) error {
	if err == nil {
		return nil
	}
	var ie *InvalidError
	if errors.As(err, &ie) {
		return err
	}
	return &InvalidError{Err: err}
}

func invalidf(format string, a ...any) error { return &InvalidError{Err: fmt.Errorf(format, a...)} }

// proxyNameRE is what a proxy name may be: it appears in URL paths, metric
// labels and log fields. The same rule as configs' proxies[i].name.
var proxyNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Options configure an Instance. The zero value works: no logs, a fresh
// fault engine, 1000 records kept, metrics on a private registry only.
type Options struct {
	// Logger receives the proxies' lines (one per finished connection) and
	// the instance's own (proxy added, config applied, ...). nil means none.
	Logger *zap.Logger
	// Engine holds the fault rules; nil means a new faults.NewEngine(nil).
	// New sets its OnInject (keeping any function already there), so pass
	// an engine no proxy uses yet.
	Engine *faults.Engine
	// RecordRing is how many finished connection records are kept for
	// Records and GET /records; 0 means DefaultRecordRing.
	RecordRing int
	// Registry, if set, gets the instance's metrics registered in addition
	// to the private registry that GET /metrics serves. Two instances
	// cannot share one Registry (their metrics would collide).
	Registry prometheus.Registerer
	// Version is reported by GET /version and tdsproxy_build_info; ""
	// means the main module's version from the build information.
	Version string
	// SlowLogin is the login time above which a finished connection's
	// diagnosis gets a slow-login finding; 0 means diagnose.DefaultSlowLogin
	// (2 s), negative turns the finding off.
	SlowLogin time.Duration
}

// Instance runs any number of named proxies with one fault engine, keeps
// the records of finished connections in a bounded ring, counts them in
// Prometheus metrics, and serves the admin API. Its methods are safe for
// concurrent use.
type Instance struct {
	log     *zap.Logger
	engine  *faults.Engine
	ids     atomic.Uint64 // connection ids, unique across the proxies
	records *ring
	metrics *metrics
	retries *retryTracker // retry chains (retries.go)
	version string
	// slowLogin is the diagnosis' slow_login in nanoseconds (finish):
	// Options.SlowLogin, then diagnosis.slow_login from each Apply.
	slowLogin atomic.Int64

	// structMu serialises changes to the set of proxies (AddProxy,
	// RemoveProxy, Apply); faultMu serialises read-modify-write of rules.
	// Lock order: structMu, faultMu, mu.
	structMu sync.Mutex
	faultMu  sync.Mutex

	mu      sync.Mutex
	proxies map[string]*entry
	// retired proxies no longer accept but still relay connections that
	// were open when they were removed or replaced.
	retired map[*proxy.Proxy]string
	// applied holds, per proxy, the rules the last Apply installed from
	// the configuration, so a reload touches only the rules that changed.
	applied map[string][]faults.RuleSpec
	closing bool
	admins  []*adminServer

	wg sync.WaitGroup // accept loops and retirement waiters
}

// entry is one running proxy.
type entry struct {
	cfg proxy.Config
	p   *proxy.Proxy
	ln  net.Listener
}

// New returns an Instance with no proxies. It fails only when Options.Registry
// refuses the metrics (e.g. another instance registered there already).
func New(opts Options) (*Instance, error) {
	in := &Instance{
		log:     opts.Logger,
		engine:  opts.Engine,
		proxies: map[string]*entry{},
		retired: map[*proxy.Proxy]string{},
		applied: map[string][]faults.RuleSpec{},
		version: opts.Version,
	}
	if in.log == nil {
		in.log = zap.NewNop()
	}
	if in.engine == nil {
		in.engine = faults.NewEngine(nil)
	}
	if in.version == "" {
		in.version = buildVersion()
	}
	in.slowLogin.Store(int64(opts.SlowLogin))
	size := opts.RecordRing
	if size <= 0 {
		size = DefaultRecordRing
	}
	in.records = newRing(size)
	m, err := newMetrics(in, opts.Registry)
	if err != nil {
		return nil, err
	}
	in.metrics = m
	in.retries = newRetryTracker(m.reg)
	prev := in.engine.OnInject
	in.engine.OnInject = func(proxyName, rule, scenario string, phase proxy.Phase, action string) {
		in.metrics.injected(proxyName, rule, scenario, phase, action)
		if prev != nil {
			prev(proxyName, rule, scenario, phase, action)
		}
	}
	return in, nil
}

// Engine returns the instance's fault engine.
func (in *Instance) Engine() *faults.Engine { return in.engine }

// Registry returns the private registry that GET /metrics serves.
func (in *Instance) Registry() *prometheus.Registry { return in.metrics.reg }

// sink receives every finished connection's record from the proxies (the
// proxy has already written its log line).
func (in *Instance) sink(rec *proxy.Record) {
	in.retries.observe(rec)
	in.records.add(rec)
	in.metrics.finished(rec)
}

// checkProxyConfig validates a proxy definition, naming the bad key.
func checkProxyConfig(cfg proxy.Config) error {
	if !proxyNameRE.MatchString(cfg.Name) {
		return invalidf("name: %q may hold only letters, digits, '.', '_' and '-' (1 to 64, not starting with a symbol)", cfg.Name)
	}
	if err := cfg.Validate(); err != nil {
		return invalid(err)
	}
	return nil
}

// listen binds addr for proxy name; an address in use is ErrAddressInUse.
func listen(name, addr string) (net.Listener, error) {
	ln, err := proxy.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("proxy %q: listen %s: %w", name, addr, ErrAddressInUse)
		}
		return nil, fmt.Errorf("proxy %q: listen %s: %w", name, addr, err)
	}
	return ln, nil
}

// newProxy builds (but does not start) a proxy wired to the instance: the
// shared connection ids, the engine's decider for its name, and the sink.
func (in *Instance) newProxy(cfg proxy.Config) (*proxy.Proxy, error) {
	return proxy.New(cfg, proxy.Options{
		Logger: in.log,
		Sink:   in.sink,
		Finish: in.finish,
		IDs:    &in.ids,
		// Always a decider, even with no rules yet: rules added later
		// through the API apply to the next connection.
		Decider: in.engine.Decider(cfg.Name),
	})
}

// serve starts p's accept loop on ln.
func (in *Instance) serve(p *proxy.Proxy, ln net.Listener) {
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		// nil once the proxy stops accepting; anything else (a loop the
		// checks before could not see) must not pass in silence.
		if err := p.Serve(ln); err != nil {
			in.log.Error("proxy stopped serving", zap.String("proxy", p.Config().Name), zap.Error(err))
		}
	}()
}

// AddProxy starts a proxy with the given rules (nil: none). The name must be
// new; the listen address is bound before AddProxy returns, so
// Proxy(name).Addr is the real address (useful with port 0).
func (in *Instance) AddProxy(cfg proxy.Config, rules []faults.RuleSpec) error {
	if err := checkProxyConfig(cfg); err != nil {
		return err
	}
	if err := faults.Compile(rules); err != nil {
		return ruleSetError(err)
	}
	in.structMu.Lock()
	defer in.structMu.Unlock()
	in.mu.Lock()
	closing, exists := in.closing, in.proxies[cfg.Name] != nil
	in.mu.Unlock()
	switch {
	case closing:
		return ErrClosed
	case exists:
		return fmt.Errorf("proxy %q: %w", cfg.Name, ErrProxyExists)
	}
	p, err := in.newProxy(cfg)
	if err != nil {
		return invalid(err)
	}
	ln, err := listen(cfg.Name, cfg.Listen)
	if err != nil {
		return err
	}
	// Checked on the bound address (port 0 resolved), before the proxy is
	// listed: a proxy relaying to itself would never serve (issue 18).
	if err := proxy.CheckSelfLoop(cfg.Upstream, ln.Addr()); err != nil {
		ln.Close()
		_ = p.Close()
		return invalid(fmt.Errorf("upstream: %w", err))
	}
	in.faultMu.Lock()
	err = in.engine.SetRules(cfg.Name, rules)
	in.faultMu.Unlock()
	if err != nil { // compiled above; kept for safety
		ln.Close()
		return invalid(err)
	}
	in.mu.Lock()
	in.proxies[cfg.Name] = &entry{cfg: cfg, p: p, ln: ln}
	delete(in.applied, cfg.Name)
	in.mu.Unlock()
	in.serve(p, ln)
	in.log.Info("proxy added", zap.String("proxy", cfg.Name), zap.Stringer("listen", ln.Addr()),
		zap.String("upstream", cfg.Upstream), zap.Int("fault_rules", len(rules)))
	return nil
}

// RemoveProxy stops the named proxy accepting at once, which frees its name
// and address and removes its fault rules, then waits for its open
// connections to end until ctx is done and closes the rest in style
// (proxy.StyleRST or proxy.StyleFIN; "" means FIN). A ctx already done
// closes them at once, as Toxiproxy's proxy deletion does.
func (in *Instance) RemoveProxy(ctx context.Context, name string, style proxy.CloseStyle) error {
	reset, err := resetFor(style)
	if err != nil {
		return err
	}
	in.structMu.Lock()
	in.mu.Lock()
	e := in.proxies[name]
	if e != nil {
		delete(in.proxies, name)
		delete(in.applied, name)
	}
	in.mu.Unlock()
	if e == nil {
		in.structMu.Unlock()
		return fmt.Errorf("proxy %q: %w", name, ErrNoProxy)
	}
	in.faultMu.Lock()
	_ = in.engine.SetRules(name, nil)
	in.faultMu.Unlock()
	in.retire(e)
	in.structMu.Unlock()
	in.log.Info("proxy removed", zap.String("proxy", name))
	if err := e.p.Shutdown(ctx, reset); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// retire stops e accepting; its open connections go on, and the proxy is
// forgotten once the last one ends.
func (in *Instance) retire(e *entry) {
	e.p.StopAccepting()
	in.mu.Lock()
	in.retired[e.p] = e.cfg.Name
	in.mu.Unlock()
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		// Waits for the connections to end by themselves; Shutdown and
		// Close of the instance cut them when it is time.
		_ = e.p.Shutdown(context.Background(), false)
		in.mu.Lock()
		delete(in.retired, e.p)
		gone := in.proxies[e.cfg.Name] == nil && !in.retiredNamed(e.cfg.Name)
		in.mu.Unlock()
		if gone {
			// Its last connection has been counted: drop its series so
			// label sets stay bounded as proxies come and go.
			in.metrics.forgetProxy(e.cfg.Name)
		}
	}()
}

// retiredNamed reports whether a retired proxy called name still drains;
// in.mu is held.
func (in *Instance) retiredNamed(name string) bool {
	for _, n := range in.retired {
		if n == name {
			return true
		}
	}
	return false
}

func resetFor(style proxy.CloseStyle) (bool, error) {
	switch style {
	case proxy.StyleRST:
		return true, nil
	case proxy.StyleFIN, "":
		return false, nil
	}
	return false, invalidf("style: %q is not rst or fin", style)
}

func (in *Instance) info(e *entry) ProxyInfo {
	dt := e.cfg.DialTimeout
	if dt == 0 {
		dt = proxy.DefaultDialTimeout
	}
	rules := in.engine.Rules(e.cfg.Name)
	if rules == nil {
		rules = []faults.RuleSpec{}
	}
	// Connections still draining on a proxy of the same name that was
	// replaced (a reload changed its upstream) are this proxy's too.
	open := e.p.ActiveCount()
	in.mu.Lock()
	for p, n := range in.retired {
		if n == e.cfg.Name {
			open += p.ActiveCount()
		}
	}
	in.mu.Unlock()
	return ProxyInfo{
		Name:        e.cfg.Name,
		Listen:      e.cfg.Listen,
		Addr:        e.ln.Addr().String(),
		Upstream:    e.cfg.Upstream,
		DialTimeout: wire.Duration(dt),
		Connections: open,
		Faults:      apiRules(rules),
	}
}

// Proxies describes the running proxies, sorted by name.
func (in *Instance) Proxies() []ProxyInfo {
	in.mu.Lock()
	es := make([]*entry, 0, len(in.proxies))
	for _, e := range in.proxies {
		es = append(es, e)
	}
	in.mu.Unlock()
	slices.SortFunc(es, func(a, b *entry) int {
		switch {
		case a.cfg.Name < b.cfg.Name:
			return -1
		case a.cfg.Name > b.cfg.Name:
			return 1
		}
		return 0
	})
	out := make([]ProxyInfo, len(es))
	for i, e := range es {
		out[i] = in.info(e)
	}
	return out
}

// Proxy describes the named proxy, or returns ErrNoProxy.
func (in *Instance) Proxy(name string) (ProxyInfo, error) {
	in.mu.Lock()
	e := in.proxies[name]
	in.mu.Unlock()
	if e == nil {
		return ProxyInfo{}, fmt.Errorf("proxy %q: %w", name, ErrNoProxy)
	}
	return in.info(e), nil
}

// hasProxy reports whether name is a running proxy.
func (in *Instance) hasProxy(name string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.proxies[name] != nil
}

// allProxies returns every proxy that may hold connections: the running
// ones and the retired ones still draining.
func (in *Instance) allProxies() []*proxy.Proxy {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]*proxy.Proxy, 0, len(in.proxies)+len(in.retired))
	for _, e := range in.proxies {
		out = append(out, e.p)
	}
	for p := range in.retired {
		out = append(out, p)
	}
	return out
}

// Connections returns snapshots of the open connections' records (the
// record so far: phase reached, TLS, bytes), sorted by id. Connections of
// a proxy removed or replaced but still draining are included.
func (in *Instance) Connections() []*proxy.Record {
	var out []*proxy.Record
	for _, p := range in.allProxies() {
		out = append(out, p.Connections()...)
	}
	slices.SortFunc(out, func(a, b *proxy.Record) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	if out == nil {
		out = []*proxy.Record{}
	}
	return out
}

// Connection returns a snapshot of the open connection id, or
// ErrNoConnection (also for one that has finished: see Records).
func (in *Instance) Connection(id uint64) (*proxy.Record, error) {
	for _, p := range in.allProxies() {
		for _, r := range p.Connections() {
			if r.ID == id {
				return r, nil
			}
		}
	}
	return nil, fmt.Errorf("connection %d: %w", id, ErrNoConnection)
}

// CloseConnection closes the open connection id now, with an RST
// (proxy.StyleRST: the client sees 10054 / connection reset) or a FIN
// (proxy.StyleFIN, or ""), and returns once it is no longer listed by
// Connections. Its record, which says the proxy closed it, reaches Records
// a moment later.
func (in *Instance) CloseConnection(id uint64, style proxy.CloseStyle) error {
	reset, err := resetFor(style)
	if err != nil {
		return err
	}
	style = proxy.StyleFIN
	if reset {
		style = proxy.StyleRST
	}
	for _, p := range in.allProxies() {
		// The record says what went on the wire (rst or fin) and who asked.
		if p.CloseConnection(id, style, "closed by admin API") {
			waitGone(p, id)
			return nil
		}
	}
	return fmt.Errorf("connection %d: %w", id, ErrNoConnection)
}

// waitGone waits (briefly) until connection id has left p's live set, so
// that after CloseConnection the connection is no longer listed. The
// session ends on its own goroutine once both
// sockets are closed, which takes microseconds; the bound only guards
// against a stuck goroutine.
func waitGone(p *proxy.Proxy, id uint64) {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if !slices.ContainsFunc(p.Connections(), func(r *proxy.Record) bool { return r.ID == id }) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// Shutdown stops every proxy accepting, waits until the open connections end
// or ctx is done, then closes the rest (with an RST when reset is true,
// else a FIN), and finally stops the admin servers. It returns an error
// wrapping ctx.Err() when connections had to be closed; the instance is
// shut down either way.
func (in *Instance) Shutdown(ctx context.Context, reset bool) error {
	in.structMu.Lock()
	in.mu.Lock()
	in.closing = true
	in.mu.Unlock()
	in.structMu.Unlock()

	var cut atomic.Int64
	var wg sync.WaitGroup
	for _, p := range in.allProxies() {
		wg.Go(func() {
			open := p.ActiveCount()
			if err := p.Shutdown(ctx, reset); err != nil && open > 0 {
				cut.Add(int64(open))
			}
		})
	}
	wg.Wait()
	in.stopAdmins()
	in.wg.Wait()
	if n := cut.Load(); n > 0 {
		return fmt.Errorf("drain ended with connections still open (about %d); closed them: %w", n, ctx.Err())
	}
	return nil
}

// Close stops every proxy and admin server now, closing open connections
// with a FIN, and waits for their goroutines.
func (in *Instance) Close() error {
	in.structMu.Lock()
	in.mu.Lock()
	in.closing = true
	in.mu.Unlock()
	in.structMu.Unlock()
	for _, p := range in.allProxies() {
		_ = p.Close()
	}
	in.stopAdmins()
	in.wg.Wait()
	return nil
}

// isClosing reports whether Shutdown or Close has begun.
func (in *Instance) isClosing() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.closing
}
