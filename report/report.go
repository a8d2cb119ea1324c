// Package report answers, from tdsproxy's connection records, three
// questions an operator asks: who are my clients and how do they negotiate;
// if I change the server's TLS settings, who breaks (readiness); why did
// connections fail and where are logins slow. It reads the JSON log lines of
// any number of tdsproxy instances or a running instance's GET /records,
// streaming: memory grows with the number of distinct clients, findings and
// hours covered, never with the number of lines. docs/report.md describes
// the output.
package report

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tdsproxy/tdsproxy/diagnose"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// Options tune a Builder; the zero value reads everything with the default
// slow_login.
type Options struct {
	// Since, if not zero, drops records of connections that ended before it.
	Since time.Time
	// SlowLogin is the slow_login threshold (diagnose.Options); 0 means
	// diagnose.DefaultSlowLogin.
	SlowLogin time.Duration
	// Examples is how many examples each failure and slow step keeps; 0
	// means 3.
	Examples int
}

func (o Options) examples() int {
	if o.Examples <= 0 {
		return 3
	}
	return o.Examples
}

// Builder aggregates records one at a time. Not safe for concurrent use.
type Builder struct {
	opts     Options
	in       Input
	clients  map[string]*clientAgg
	failures map[string]*failureAgg
	steps    map[string]*stepAgg
	// offered counts connections by the highest TLS version offered, per
	// hour (unix hours).
	offered map[int64]map[string]int
	// certs counts certificates seen by signature algorithm.
	certs map[string]int
}

// New returns an empty Builder.
func New(opts Options) *Builder {
	return &Builder{
		opts:     opts,
		clients:  map[string]*clientAgg{},
		failures: map[string]*failureAgg{},
		steps:    map[string]*stepAgg{},
		offered:  map[int64]map[string]int{},
		certs:    map[string]int{},
	}
}

// Input returns the counts of what was read so far.
func (b *Builder) Input() Input { return b.in }

// set is a small set of strings (versions, suites: a bounded vocabulary).
type set map[string]struct{}

func (s set) add(v ...string) {
	for _, x := range v {
		if x != "" {
			s[x] = struct{}{}
		}
	}
}

func (s set) has(v string) bool { _, ok := s[v]; return ok }

func (s set) sorted() []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// clientAgg is everything kept about one client identity.
type clientAgg struct {
	Client
	offered, negotiated, suitesOffered, suitesNegotiated set
	sigAlgs, protocols, encryption, certAlgs             set
	tls                                                  bool
	weakCert                                             int
	findings                                             map[string]int
}

// prepared is a record with what the per-record work (diagnosis, step
// times) found; workers prepare, the Builder folds.
type prepared struct {
	rec      *proxy.Record
	at       time.Time
	findings []diagnose.Finding
	steps    []diagnose.Step
}

func prepare(rec *proxy.Record, opts Options) *prepared {
	at := rec.End
	if at.IsZero() {
		at = rec.Start
	}
	p := &prepared{rec: rec, at: at}
	if !opts.Since.IsZero() && at.Before(opts.Since) {
		return p
	}
	// A record diagnosed when its connection closed (tdsproxy run) carries
	// its steps and findings: they are the proxy's word (its slow_login).
	// Older records are diagnosed here.
	if len(rec.Steps) > 0 || len(rec.Diagnosis) > 0 {
		p.findings, p.steps = rec.Diagnosis, rec.Steps
		return p
	}
	p.findings = diagnose.Record(rec, diagnose.Options{SlowLogin: opts.SlowLogin})
	p.steps = diagnose.Steps(rec)
	return p
}

// Add folds one record in.
func (b *Builder) Add(rec *proxy.Record) {
	if rec != nil {
		b.in.Records++
		b.addPrepared(prepare(rec, b.opts))
	}
}

func (b *Builder) addPrepared(p *prepared) {
	rec, at, findings := p.rec, p.at, p.findings
	if !b.opts.Since.IsZero() && at.Before(b.opts.Since) {
		b.in.Filtered++
		return
	}
	c := b.client(rec)
	c.Connections++
	if c.FirstSeen.IsZero() || at.Before(c.FirstSeen) {
		c.FirstSeen = at
	}
	if at.After(c.LastSeen) {
		c.LastSeen = at
	}
	c.protocols.add(string(rec.Protocol))
	if p := rec.Prelogin; p != nil && p.Client != nil {
		c.encryption.add(p.Client.Encryption)
	}
	highest := ""
	if t := rec.TLS; t != nil {
		if ch := t.ClientHello; ch != nil {
			c.tls = true
			vs := offeredVersions(ch)
			c.offered.add(vs...)
			highest = ch.HighestVersion
			for _, s := range ch.CipherSuites {
				if !strings.HasPrefix(s, "GREASE") && !strings.HasPrefix(s, "0x") && !strings.HasSuffix(s, "_SCSV") {
					c.suitesOffered.add(s)
				}
			}
			c.sigAlgs.add(ch.SignatureAlgorithms...)
			c.sigAlgs.add(ch.SignatureAlgorithmsCert...)
		}
		c.negotiated.add(t.Version)
		c.suitesNegotiated.add(t.CipherSuite)
		if len(t.Certificates) > 0 {
			leaf := t.Certificates[0]
			c.certAlgs.add(leaf.SignatureAlgorithm)
			b.certs[leaf.SignatureAlgorithm]++
		}
	}
	if highest != "" {
		h := at.Unix() / 3600
		m := b.offered[h]
		if m == nil {
			m = map[string]int{}
			b.offered[h] = m
		}
		m[highest]++
	}
	failed := false
	for _, f := range findings {
		if f.Finding != diagnose.SlowLogin {
			failed = true
		}
		if f.Finding == faults.ScenarioWeakCertHash {
			c.weakCert++
		}
		c.findings[f.Finding]++
		b.failure(f, rec, c.ID, at)
	}
	if failed {
		c.Failures++
	}
	b.addSteps(rec, p.steps, findings, c.ID, at)
}

// offeredVersions is the ClientHello's versions: supported_versions when
// sent (RFC 8446 §4.2.1), else everything from TLS 1.0 up to the legacy
// version.
func offeredVersions(ch *proxy.ClientHelloInfo) []string {
	if len(ch.SupportedVersions) > 0 {
		out := make([]string, 0, len(ch.SupportedVersions))
		for _, v := range ch.SupportedVersions {
			if !strings.HasPrefix(v, "GREASE") && !strings.HasPrefix(v, "0x") {
				out = append(out, v)
			}
		}
		return out
	}
	all := []string{"TLS 1.0", "TLS 1.1", "TLS 1.2"}
	i := slices.Index(all, ch.LegacyVersion)
	if i < 0 {
		return []string{ch.LegacyVersion}
	}
	return all[:i+1]
}

// identity is what tells clients apart: the address without its port,
// LOGIN7's host, application and library when visible (NOT_SUP), and the
// ClientHello's JA4.
func identity(rec *proxy.Record) (key string, c Client) {
	c.Address = rec.Client
	if h, _, err := net.SplitHostPort(rec.Client); err == nil {
		c.Address = h
	}
	if l := rec.Login; l != nil && l.Visible {
		c.Host, c.App, c.Library, c.LibraryVersion = l.Host, l.App, l.Library, l.LibraryVersion
	}
	if rec.TLS != nil && rec.TLS.ClientHello != nil {
		c.JA4 = rec.TLS.ClientHello.JA4
	}
	if rec.Prelogin != nil && rec.Prelogin.Client != nil {
		c.DriverVersion = rec.Prelogin.Client.Version
	}
	parts := []string{c.Address}
	if c.App != "" {
		parts = append(parts, "app="+c.App)
	}
	if c.Library != "" {
		parts = append(parts, "lib="+c.Library+" "+c.LibraryVersion)
	}
	if c.Host != "" {
		parts = append(parts, "host="+c.Host)
	}
	if c.DriverVersion != "" {
		parts = append(parts, "driver="+c.DriverVersion)
	}
	if c.JA4 != "" {
		parts = append(parts, "ja4="+c.JA4)
	}
	key = strings.Join(parts, " ")
	c.ID = key
	return key, c
}

func (b *Builder) client(rec *proxy.Record) *clientAgg {
	key, id := identity(rec)
	if c, ok := b.clients[key]; ok {
		return c
	}
	c := &clientAgg{
		Client:  id,
		offered: set{}, negotiated: set{}, suitesOffered: set{}, suitesNegotiated: set{},
		sigAlgs: set{}, protocols: set{}, encryption: set{}, certAlgs: set{},
		findings: map[string]int{},
	}
	b.clients[key] = c
	return c
}

// failureAgg aggregates one finding.
type failureAgg struct {
	Failure
}

func (b *Builder) failure(f diagnose.Finding, rec *proxy.Record, client string, at time.Time) {
	key := f.Finding
	if f.Number != 0 {
		key += "/" + itoa(int64(f.Number))
	}
	a, ok := b.failures[key]
	if !ok {
		a = &failureAgg{Failure{Finding: f.Finding, Number: f.Number, Fix: f.Fix, FirstSeen: at, LastSeen: at, Examples: []Example{}}}
		b.failures[key] = a
	}
	a.Count++
	if f.Injected {
		a.Injected++
	}
	if at.Before(a.FirstSeen) {
		a.FirstSeen = at
	}
	if at.After(a.LastSeen) {
		a.LastSeen = at
	}
	if len(a.Examples) < b.opts.examples() {
		a.Examples = append(a.Examples, Example{Client: client, Proxy: rec.Proxy, Conn: rec.ID, At: at, Evidence: f.Evidence, Injected: f.Injected, Rule: f.Rule})
	}
}

// stepBuckets are the upper bounds of the step-time histogram: 1 ms to
// 100 s, three per decade. Percentiles are read from it, so memory does not
// grow with logins.
var stepBuckets = func() []time.Duration {
	var out []time.Duration
	for d := time.Millisecond; d <= 100*time.Second; d *= 10 {
		out = append(out, d, 2*d, 5*d)
	}
	return out
}()

type stepAgg struct {
	SlowStep
	sum    time.Duration
	counts []int64 // len(stepBuckets)+1
}

func (b *Builder) addSteps(rec *proxy.Record, steps []diagnose.Step, findings []diagnose.Finding, client string, at time.Time) {
	if _, done := diagnose.LoginTime(steps); !done {
		return
	}
	slow := ""
	var ev string
	for _, f := range findings {
		if f.Finding == diagnose.SlowLogin {
			slow, ev = f.Step, f.Evidence
		}
	}
	for _, s := range steps {
		a, ok := b.steps[s.Step]
		if !ok {
			a = &stepAgg{SlowStep: SlowStep{Step: s.Step, Awaited: s.Awaited, Examples: []Example{}}, counts: make([]int64, len(stepBuckets)+1)}
			b.steps[s.Step] = a
		}
		a.Logins++
		a.sum += s.Duration
		if s.Inferred {
			a.Inferred++
		}
		a.Max = max(a.Max, s.Duration)
		i, _ := slices.BinarySearch(stepBuckets, s.Duration)
		a.counts[i]++
		if s.Step == slow {
			a.Slow++
			if len(a.Examples) < b.opts.examples() {
				a.Examples = append(a.Examples, Example{Client: client, Proxy: rec.Proxy, Conn: rec.ID, At: at, Evidence: ev})
			}
		}
	}
}

// quantile reads the q-quantile from the histogram: the upper bound of the
// bucket holding it (the largest value seen for the last bucket).
func (a *stepAgg) quantile(q float64) time.Duration {
	want := int64(q*float64(a.Logins) + 0.5)
	want = max(want, 1)
	var seen int64
	for i, n := range a.counts {
		seen += n
		if seen >= want {
			if i < len(stepBuckets) {
				return min(stepBuckets[i], a.Max)
			}
			return a.Max
		}
	}
	return a.Max
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Result builds the report from what was added so far.
func (b *Builder) Result() *Report {
	r := &Report{Clients: []Client{}, Readiness: []Readiness{}, Failures: []Failure{}, SlowLogins: []SlowStep{}, input: b.in, offered: b.offered, certs: b.certs}
	aggs := make([]*clientAgg, 0, len(b.clients))
	for _, c := range b.clients {
		aggs = append(aggs, c)
	}
	slices.SortFunc(aggs, func(x, y *clientAgg) int {
		return cmp.Or(cmp.Compare(y.Connections, x.Connections), cmp.Compare(x.ID, y.ID))
	})
	for _, c := range aggs {
		cl := c.Client
		cl.Protocols = c.protocols.sorted()
		cl.Encryption = c.encryption.sorted()
		cl.TLSOffered = sortVersions(c.offered.sorted())
		cl.TLSNegotiated = sortVersions(c.negotiated.sorted())
		cl.SuitesOffered = c.suitesOffered.sorted()
		cl.SuitesNegotiated = c.suitesNegotiated.sorted()
		cl.CertificateSignatures = c.certAlgs.sorted()
		if len(c.findings) > 0 {
			cl.Findings = c.findings
		}
		r.Clients = append(r.Clients, cl)
	}
	r.Readiness = readiness(aggs)
	for _, f := range b.failures {
		r.Failures = append(r.Failures, f.Failure)
	}
	slices.SortFunc(r.Failures, func(x, y Failure) int {
		return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Finding, y.Finding), cmp.Compare(x.Number, y.Number))
	})
	for _, name := range diagnose.StepNames {
		a, ok := b.steps[name]
		if !ok {
			continue
		}
		s := a.SlowStep
		if a.Logins > 0 {
			s.Mean = a.sum / time.Duration(a.Logins)
		}
		s.P50, s.P95 = a.quantile(0.5), a.quantile(0.95)
		s.Histogram = make([]Bucket, 0, len(a.counts))
		for i, n := range a.counts {
			if n == 0 {
				continue
			}
			var le time.Duration
			if i < len(stepBuckets) {
				le = stepBuckets[i]
			}
			s.Histogram = append(s.Histogram, Bucket{LE: le, Count: n})
		}
		r.SlowLogins = append(r.SlowLogins, s)
	}
	return r
}

var versionOrder = []string{"SSL 3.0", "TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"}

func sortVersions(v []string) []string {
	slices.SortStableFunc(v, func(a, b string) int {
		ia, ib := slices.Index(versionOrder, a), slices.Index(versionOrder, b)
		if ia < 0 || ib < 0 {
			return cmp.Compare(a, b)
		}
		return cmp.Compare(ia, ib)
	})
	return v
}
