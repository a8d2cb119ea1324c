package control

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tdsproxy/tdsproxy/diagnose"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// Metric names; every one starts with tdsproxy_. Label values come from
// fixed vocabularies (phases, close kinds, TLS version and IANA suite
// names, "other" for anything else) or from the configuration (proxy and
// rule names): never from client addresses or free text.
const (
	MetricConnectionsActive  = "tdsproxy_connections_active"
	MetricConnections        = "tdsproxy_connections_total"
	MetricCloses             = "tdsproxy_connection_closes_total"
	MetricTLSHandshakes      = "tdsproxy_tls_handshakes_total"
	MetricClientHellos       = "tdsproxy_tls_client_hellos_total"
	MetricFaultsInjected     = "tdsproxy_faults_injected_total"
	MetricBytes              = "tdsproxy_bytes_total"
	MetricNegotiationSeconds = "tdsproxy_negotiation_seconds"
	MetricAcceptWaitSeconds  = "tdsproxy_accept_wait_seconds"
	MetricConfigReloads      = "tdsproxy_config_reloads_total"
	MetricBuildInfo          = "tdsproxy_build_info"
	MetricDiagnoses          = "tdsproxy_diagnoses_total"
	MetricLoginStepSeconds   = "tdsproxy_login_step_seconds"
)

// Outcomes of a connection (tdsproxy_connections_total's outcome label).
const (
	// OutcomeOK: the server accepted the login (LOGINACK seen, or an
	// encrypted login answered).
	OutcomeOK = string(proxy.LoginOK)
	// OutcomeFailed: the server rejected the login (e.g. error 18456).
	OutcomeFailed = string(proxy.LoginFailed)
	// OutcomeUnknown: the login response came encrypted (or could not be
	// parsed), so whether the server accepted it is not known.
	OutcomeUnknown = string(proxy.LoginUnknown)
	// OutcomeIncomplete: the connection closed before the login response
	// (a negotiation failure, an injected fault, a client that gave up).
	OutcomeIncomplete = "incomplete"
	// OutcomeDialFailed: the upstream could not be reached.
	OutcomeDialFailed = "dial_failed"
	// OutcomeNotTDS: the client did not speak TDS.
	OutcomeNotTDS = "not_tds"
)

// Outcome classifies a finished connection for the metrics.
func Outcome(r *proxy.Record) string {
	switch {
	case r.Close != nil && r.Close.Kind == proxy.CloseDialFailed:
		return OutcomeDialFailed
	case r.Protocol == proxy.ProtocolNotTDS:
		return OutcomeNotTDS
	case r.Login != nil && r.Reached(proxy.PhaseLoginResponse):
		switch r.Login.Outcome {
		case proxy.LoginOK, proxy.LoginFailed:
			return string(r.Login.Outcome)
		}
		// Encrypted (TDS 8.0 strict, ENCRYPT_ON): the response was seen
		// but not read.
		return OutcomeUnknown
	}
	return OutcomeIncomplete
}

// metrics are an instance's Prometheus collectors.
type metrics struct {
	// mu guards rules: the rule names each proxy has injected with, so
	// a deleted rule's series can be removed; and the series finished
	// resolved (per, diagnosesBy, stepsBy).
	mu          sync.Mutex
	rules       map[string]map[string]bool
	per         map[string]*proxyMetrics
	diagnosesBy labelCache[prometheus.Counter]  // finding
	stepsBy     labelCache[prometheus.Observer] // step

	reg         *prometheus.Registry
	conns       *prometheus.CounterVec
	closes      *prometheus.CounterVec
	handshakes  *prometheus.CounterVec
	hellos      *prometheus.CounterVec
	faults      *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	negotiation *prometheus.HistogramVec
	acceptWait  *prometheus.HistogramVec
	reloads     *prometheus.CounterVec
	diagnoses   *prometheus.CounterVec
	steps       *prometheus.HistogramVec
}

// timeBuckets go from 1 ms to about 33 s: a LAN login takes milliseconds;
// a starved server (delayed-accept) tens of seconds.
var timeBuckets = prometheus.ExponentialBuckets(0.001, 2, 16)

func newMetrics(in *Instance, extra prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		rules: map[string]map[string]bool{},
		reg:   prometheus.NewRegistry(),
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricConnections,
			Help: "Finished connections by proxy, outcome (ok, failed, unknown, incomplete, dial_failed, not_tds) and the phase they closed in.",
		}, []string{"proxy", "outcome", "close_phase"}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricCloses,
			Help: "Finished connections by proxy, who closed first (client, server, proxy) and how (fin, rst, timeout, alert, dial-failed, shutdown, limit, error).",
		}, []string{"proxy", "by", "kind"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricTLSHandshakes,
			Help: "Finished connections whose ServerHello was seen, by negotiated TLS version and IANA cipher suite name.",
		}, []string{"proxy", "version", "cipher_suite"}),
		hellos: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricClientHellos,
			Help: "Finished connections whose ClientHello was seen, by the highest TLS version the client offered.",
		}, []string{"proxy", "highest_version"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricFaultsInjected,
			Help: "Fault injections (a close, a delay or a generic fault attached) by proxy, rule, scenario (empty for generic faults), phase and action.",
		}, []string{"proxy", "rule", "scenario", "phase", "action"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricBytes,
			Help: "Bytes relayed by finished connections, by proxy and direction (client_to_server, server_to_client); counted when the connection closes.",
		}, []string{"proxy", "direction"}),
		negotiation: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricNegotiationSeconds,
			Help:    "Time from TCP accept to established (login answered), for connections that got there.",
			Buckets: timeBuckets,
		}, []string{"proxy"}),
		acceptWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricAcceptWaitSeconds,
			Help:    "Time from TCP accept until the proxy read the client's first message (PRELOGIN, ClientHello or LOGIN7); includes an injected accept delay.",
			Buckets: timeBuckets,
		}, []string{"proxy"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricConfigReloads,
			Help: "Configurations applied (Instance.Apply: start-up, SIGHUP, file change) by result (ok, rejected).",
		}, []string{"result"}),
		diagnoses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricDiagnoses,
			Help: "Findings of finished connections' diagnoses (package diagnose): a 10054 scenario or a connection-level pattern (client-cancelled, server-refused-encryption, login-failed, upstream-unreachable, negotiation-timeout, slow-login, injected-fault).",
		}, []string{"finding"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricLoginStepSeconds,
			Help:    "Duration of each login step (tcp.accept ... login.response, the step named by the phase that ends it) of finished connections; steps inferred from encrypted records included.",
			Buckets: timeBuckets,
		}, []string{"step"}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MetricBuildInfo,
		Help: "Always 1; the labels say which tdsproxy is running.",
	}, []string{"version", "go_version"})
	build.WithLabelValues(in.version, runtime.Version()).Set(1)
	own := []prometheus.Collector{
		m.conns, m.closes, m.handshakes, m.hellos, m.faults, m.bytes,
		m.negotiation, m.acceptWait, m.reloads, m.diagnoses, m.steps, build, &activeCollector{in: in},
	}
	for i, c := range own {
		m.reg.MustRegister(c)
		if extra != nil {
			if err := extra.Register(c); err != nil {
				for _, done := range own[:i] { // leave the caller's registry as it was
					extra.Unregister(done)
				}
				return nil, fmt.Errorf("control: registering metrics in Options.Registry: %w", err)
			}
		}
	}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.per = map[string]*proxyMetrics{}
	m.diagnosesBy = newLabelCache(func(k [2]string) prometheus.Counter { return m.diagnoses.WithLabelValues(k[0]) })
	m.stepsBy = newLabelCache(func(k [2]string) prometheus.Observer { return m.steps.WithLabelValues(k[0]) })
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("rejected")
	for _, f := range diagnose.Names() {
		m.diagnoses.WithLabelValues(f)
	}
	return m, nil
}

// finished counts a finished connection. The series it touches are
// resolved once per label set (labelCache): WithLabelValues hashes every
// label value on each call, and a login touches a dozen series (issue 17:
// CPU per login).
func (m *metrics) finished(r *proxy.Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pm := m.per[r.Proxy]
	if pm == nil {
		pm = m.newProxyMetrics(r.Proxy)
		m.per[r.Proxy] = pm
	}
	closePhase := r.Phase
	if r.Close != nil {
		closePhase = r.Close.Phase
		pm.closes.get([2]string{string(r.Close.By), string(r.Close.Kind)}).Inc()
	}
	pm.conns.get([2]string{Outcome(r), string(closePhase)}).Inc()
	if t := r.TLS; t != nil {
		if t.ServerHello != nil {
			pm.handshakes.get([2]string{t.ServerHello.Version, t.ServerHello.CipherSuite}).Inc()
		}
		if t.ClientHello != nil {
			pm.hellos.get([2]string{t.ClientHello.HighestVersion}).Inc()
		}
	}
	pm.bytesC2S.Add(float64(r.BytesClientToServer))
	pm.bytesS2C.Add(float64(r.BytesServerToClient))
	for i, mk := range r.Phases {
		if i == 1 && mk.Phase != proxy.PhaseClosed {
			pm.acceptWait.Observe(mk.At.Seconds())
		}
		if mk.Phase == proxy.PhaseEstablished {
			pm.negotiation.Observe(mk.At.Seconds())
		}
	}
	for _, f := range r.Diagnosis {
		m.diagnosesBy.get([2]string{f.Finding}).Inc()
	}
	for _, st := range r.Steps {
		m.stepsBy.get([2]string{st.Step}).Observe(st.Duration.Seconds())
	}
}

// proxyMetrics are one proxy's series of the per-proxy vectors, resolved
// once; forgetProxy drops them with the series.
type proxyMetrics struct {
	conns      labelCache[prometheus.Counter] // outcome, close phase
	closes     labelCache[prometheus.Counter] // by, kind
	handshakes labelCache[prometheus.Counter] // version, cipher suite
	hellos     labelCache[prometheus.Counter] // highest version
	bytesC2S   prometheus.Counter
	bytesS2C   prometheus.Counter
	negotiation,
	acceptWait prometheus.Observer
}

func (m *metrics) newProxyMetrics(name string) *proxyMetrics {
	return &proxyMetrics{
		conns: newLabelCache(func(k [2]string) prometheus.Counter {
			return m.conns.WithLabelValues(name, k[0], phaseLabel(proxy.Phase(k[1])))
		}),
		closes: newLabelCache(func(k [2]string) prometheus.Counter {
			return m.closes.WithLabelValues(name, side(proxy.Side(k[0])), closeKind(proxy.CloseKind(k[1])))
		}),
		handshakes: newLabelCache(func(k [2]string) prometheus.Counter {
			return m.handshakes.WithLabelValues(name, versionLabel(k[0]), suiteLabel(k[1]))
		}),
		hellos: newLabelCache(func(k [2]string) prometheus.Counter {
			return m.hellos.WithLabelValues(name, versionLabel(k[0]))
		}),
		bytesC2S:    m.bytes.WithLabelValues(name, "client_to_server"),
		bytesS2C:    m.bytes.WithLabelValues(name, "server_to_client"),
		negotiation: m.negotiation.WithLabelValues(name),
		acceptWait:  m.acceptWait.WithLabelValues(name),
	}
}

// labelCache maps the values a record gives (up to two, before they are
// turned into labels) to their series. It holds at most labelCacheMax
// entries: past that, values that a record may carry without bound
// (an unknown suite's code) are resolved on each call, as before.
type labelCache[T any] struct {
	m       map[[2]string]T
	resolve func([2]string) T
}

const labelCacheMax = 256

func newLabelCache[T any](resolve func([2]string) T) labelCache[T] {
	return labelCache[T]{m: map[[2]string]T{}, resolve: resolve}
}

func (c labelCache[T]) get(k [2]string) T {
	if v, ok := c.m[k]; ok {
		return v
	}
	v := c.resolve(k)
	if len(c.m) < labelCacheMax {
		c.m[k] = v
	}
	return v
}

// injected counts one injection (faults.Engine.OnInject).
func (m *metrics) injected(proxyName, rule, scenario string, phase proxy.Phase, action string) {
	m.mu.Lock()
	rs := m.rules[proxyName]
	if rs == nil {
		rs = map[string]bool{}
		m.rules[proxyName] = rs
	}
	rs[rule] = true
	m.faults.WithLabelValues(proxyName, rule, scenario, phaseLabel(phase), actionLabel(action)).Inc()
	m.mu.Unlock()
}

// forgetRulesExcept removes the fault series of proxyName's rules that are
// not in keep (deleted or replaced rules), so that rule churn does not
// grow the label sets without bound.
func (m *metrics) forgetRulesExcept(proxyName string, keep []faults.RuleSpec) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for rule := range m.rules[proxyName] {
		if slices.ContainsFunc(keep, func(r faults.RuleSpec) bool { return r.Name == rule }) {
			continue
		}
		m.faults.DeletePartialMatch(prometheus.Labels{"proxy": proxyName, "rule": rule})
		delete(m.rules[proxyName], rule)
	}
}

// forgetProxy removes every series of a proxy that is gone (removed, and
// its last connection counted).
func (m *metrics) forgetProxy(name string) {
	// Under mu, so that finished does not count on a series deleted here
	// (the next record of the name resolves its series again).
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rules, name)
	delete(m.per, name)
	l := prometheus.Labels{"proxy": name}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.conns, m.closes, m.handshakes, m.hellos, m.faults, m.bytes, m.negotiation, m.acceptWait,
	} {
		v.DeletePartialMatch(l)
	}
}

func (m *metrics) reloaded(ok bool) {
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
	} else {
		m.reloads.WithLabelValues("rejected").Inc()
	}
}

// activeCollector reports the open connections per proxy at scrape time
// (the running proxies and the retired ones still draining).
type activeCollector struct{ in *Instance }

var activeDesc = prometheus.NewDesc(MetricConnectionsActive,
	"Connections open now, by proxy (including proxies removed or replaced that still drain).", []string{"proxy"}, nil)

func (c *activeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- activeDesc }

func (c *activeCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	c.in.mu.Lock()
	type named struct {
		name string
		p    *proxy.Proxy
	}
	ps := make([]named, 0, len(c.in.proxies)+len(c.in.retired))
	for n, e := range c.in.proxies {
		ps = append(ps, named{n, e.p})
		counts[n] = 0
	}
	for p, n := range c.in.retired {
		ps = append(ps, named{n, p})
	}
	c.in.mu.Unlock()
	for _, x := range ps {
		counts[x.name] += x.p.ActiveCount()
	}
	for n, v := range counts {
		ch <- prometheus.MustNewConstMetric(activeDesc, prometheus.GaugeValue, float64(v), n)
	}
}

// Label vocabularies.

const other = "other"

func phaseLabel(p proxy.Phase) string {
	if p.Valid() {
		return string(p)
	}
	return other
}

func side(s proxy.Side) string {
	switch s {
	case proxy.SideClient, proxy.SideServer, proxy.SideProxy:
		return string(s)
	}
	return other
}

func closeKind(k proxy.CloseKind) string {
	switch k {
	case proxy.CloseFIN, proxy.CloseRST, proxy.CloseTimeout, proxy.CloseAlert,
		proxy.CloseDialFailed, proxy.CloseShutdown, proxy.CloseLimit, proxy.CloseError:
		return string(k)
	}
	return other
}

var tlsVersions = []string{"SSL 3.0", "TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"}

func versionLabel(v string) string {
	if slices.Contains(tlsVersions, v) {
		return v
	}
	return other
}

// suiteLabel keeps IANA names tlsbridge knows (a fixed table); an
// unassigned code ("0x1A2B") becomes "other".
func suiteLabel(s string) string {
	if strings.HasPrefix(s, "TLS_") {
		if _, ok := tlsbridge.CipherSuiteByName(s); ok {
			return s
		}
	}
	return other
}

func actionLabel(a string) string {
	switch {
	case a == "delay", a == "close:rst", a == "close:fin", a == "close:alert":
		return a
	case slices.Contains(faults.StageKinds(), a), faults.IsTDSFault(a):
		return a
	}
	return other
}
