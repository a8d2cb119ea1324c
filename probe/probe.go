// Package probe examines a SQL Server's TLS over TDS and says which of the
// causes of error 10054 (docs/protocol.md, "The failures behind error
// 10054") it is exposed to: what `tdsproxy probe` runs (docs/probe.md).
//
// It speaks PRELOGIN (MS-TDS §2.2.6.5) with each ENCRYPTION value, sends
// crafted ClientHellos inside PRELOGIN packets and in TDS 8.0 strict form
// (MS-TDS §3.3.5.1), one version at a time, enumerates cipher suites by
// removing the chosen one and offering again, reads the certificate chain
// and the DHE parameters, replays known clients' offers, times connect
// and PRELOGIN, and turns the evidence into one verdict per scenario of
// faults.Scenarios(). A ServerHello (or an alert, or the close) is enough
// for every question but the TLS 1.3 certificate, so handshakes are not
// completed; every connection is closed before Run returns.
package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// Defaults for zero Config fields.
const (
	DefaultTimeout       = 5 * time.Second
	DefaultConcurrency   = 4
	DefaultSamples       = 3
	DefaultSlowThreshold = time.Second
	// maxEnumeration bounds the offer-remove-offer rounds per version.
	maxEnumeration = 64
)

// Config says what to probe and how hard.
type Config struct {
	// Target is host:port.
	Target string
	// Instance is sent in PRELOGIN INSTOPT; "" sends none (MSSQLServer).
	Instance string
	// Timeout bounds each connection (connect plus every exchange on it);
	// 0 means DefaultTimeout.
	Timeout time.Duration
	// Concurrency caps the connections open to the target at once; 0
	// means DefaultConcurrency.
	Concurrency int
	// Profiles names the client profiles to report (ProfileNames); none
	// means all. Verdicts always weigh every profile.
	Profiles []string
	// Samples is the number of connect/PRELOGIN timings; 0 means
	// DefaultSamples.
	Samples int
	// SlowThreshold is the PRELOGIN round trip (or connect time) above
	// which the delayed-accept verdict is a risk; 0 means
	// DefaultSlowThreshold.
	SlowThreshold time.Duration
	// Progress receives one line per step while the probe runs; nil
	// means silent. It may be called from several goroutines, one at a
	// time.
	Progress func(line string)
	// Dial opens connections; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now is the clock for certificate validity; nil means time.Now.
	Now func() time.Time
}

// ErrUnreachable wraps every error that means the target could not be
// probed at all: refused, silent, or not TDS. Its message is one line.
var ErrUnreachable = errors.New("target unreachable or not TDS")

type unreachableError struct{ line string }

func (e *unreachableError) Error() string { return e.line }
func (e *unreachableError) Is(t error) bool {
	return t == ErrUnreachable
}

type prober struct {
	cfg     Config
	host    string
	timeout time.Duration
	sem     chan struct{}
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	now     func() time.Time

	progMu sync.Mutex
	noteMu sync.Mutex
	notes  []string
}

func (p *prober) progress(format string, a ...any) {
	if p.cfg.Progress == nil {
		return
	}
	p.progMu.Lock()
	defer p.progMu.Unlock()
	p.cfg.Progress(fmt.Sprintf(format, a...))
}

func (p *prober) note(format string, a ...any) {
	p.noteMu.Lock()
	defer p.noteMu.Unlock()
	p.notes = append(p.notes, fmt.Sprintf(format, a...))
}

// allVersions are the versions probed one at a time.
var allVersions = []uint16{tlsbridge.VersionTLS10, tlsbridge.VersionTLS11, tlsbridge.VersionTLS12, tlsbridge.VersionTLS13}

// Run probes cfg.Target. An error wrapping ErrUnreachable means nothing
// could be learnt (refused, silent, not TDS); other errors are bad
// arguments or a cancelled context.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	p, err := newProber(cfg)
	if err != nil {
		return nil, err
	}
	r := &run{res: newResult(cfg.Target)}
	// 1. Reachability: the first PRELOGIN is also the first timing sample.
	if err := p.reach(ctx, r.res); err != nil {
		return nil, err
	}
	// 2. Independent questions, in parallel under the concurrency cap.
	if err := p.askVersions(ctx, r); err != nil {
		return nil, err
	}
	// 3. Cipher suites per version, in the mode that has TLS.
	if err := p.enumerateSuites(ctx, r); err != nil {
		return nil, err
	}
	// 4. Certificate: plaintext in TLS 1.0-1.2, else one TLS 1.3 handshake.
	r.res.Certificates = p.certificates(p.chain(ctx, r))
	p.progress("certificate chain: %d certificate(s)", len(r.res.Certificates))
	// 5. DHE.
	r.res.DHE = p.dhe(ctx, r.enumMode, r.enums, r.allSuites, r.dheAnswers)
	// 6. Signature algorithms.
	r.res.SignatureAlgs = r.sig.result(r.enumMode)
	r.res.SignatureAlgs.ClientMustList = mustList(r.res.Certificates)
	// 7. Profiles and verdicts.
	p.finish(r)
	return r.res, nil
}

// run is what one Run has learnt so far, step by step.
type run struct {
	res          *Result
	tds7, strict map[uint16]answer // answers per version, inside PRELOGIN and strict
	v7, v8       []uint16          // versions accepted in each mode
	enumMode     mode              // the mode that has TLS (tds7 unless only strict has it)
	enumVersions []uint16
	enums        map[uint16]enumeration
	sig          sigAlgProbe
	profs        []profileRun
	allSuites    []uint16 // every accepted suite, any version
	dheAnswers   []answer
	chain        [][]byte // first certificate chain seen during enumeration
}

// newProber checks cfg and resolves its defaults.
func newProber(cfg Config) (*prober, error) {
	host, _, err := net.SplitHostPort(cfg.Target)
	if err != nil {
		return nil, fmt.Errorf("probe: target %q: %w", cfg.Target, err)
	}
	for _, n := range cfg.Profiles {
		if _, ok := profileByName(n); !ok {
			return nil, fmt.Errorf("probe: unknown client profile %q (known: %v)", n, ProfileNames())
		}
	}
	p := &prober{cfg: cfg, host: host, timeout: cfg.Timeout, dial: cfg.Dial, now: cfg.Now}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	conc := cfg.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	p.sem = make(chan struct{}, conc)
	if p.dial == nil {
		p.dial = (&net.Dialer{}).DialContext
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

// newResult is an empty Result whose lists and maps encode as [] and {}.
func newResult(target string) *Result {
	return &Result{
		Target:         target,
		Versions:       []string{},
		CipherSuites:   map[string][]string{},
		VersionAnswers: map[string]string{},
		CipherOrder:    map[string]string{},
		KeyExchange:    map[string]string{},
		Certificates:   []CertResult{},
		Profiles:       []ProfileResult{},
		Verdicts:       []Verdict{},
		Strict:         StrictResult{Versions: []string{}, Answers: map[string]string{}, CipherSuites: map[string][]string{}},
		Notes:          []string{},
	}
}

// reach sends the first PRELOGIN and fills res.Prelogin: in plaintext
// (via tds7), inside TDS 8.0 strict TLS (via strict), or not at all when
// only a TLS-first hello is answered (via none). It returns an error
// wrapping ErrUnreachable when nothing answers as TDS or TLS.
func (p *prober) reach(ctx context.Context, res *Result) error {
	target := p.cfg.Target
	p.progress("connecting to %s", target)
	first, err := p.timedPrelogin(ctx)
	if err == nil {
		p.fillPrelogin(&res.Prelogin, first.pl)
		res.Prelogin.Via = "tds7"
		res.Timing.ConnectMS = append(res.Timing.ConnectMS, ms(first.connect))
		res.Timing.PreloginMS = append(res.Timing.PreloginMS, ms(first.rtt))
		p.progress("PRELOGIN: server %s, answer to ENCRYPT_OFF %s (connect %v, round trip %v)",
			res.Prelogin.Version, res.Prelogin.Answers["OFF"], first.connect.Round(time.Microsecond), first.rtt.Round(time.Microsecond))
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var de *dialError
	if errors.As(err, &de) || classify(err) == answerTimeout {
		return &unreachableError{reason(target, p.timeout, err)}
	}
	// Refused a plaintext PRELOGIN: perhaps a server that takes
	// TDS 8.0 only (MS-TDS §3.3.5.1). Try that before giving up.
	pl, serr := p.strictPrelogin(ctx)
	var inner *notTDSError
	switch {
	case errors.As(serr, &inner):
		// A TLS service (HTTPS, say) that answers inside TLS with
		// something else than TDS.
		return &unreachableError{target + ": a TLS service, but inside TLS " + inner.Error()}
	case serr == nil:
		p.progress("plaintext PRELOGIN refused; PRELOGIN inside TDS 8.0 strict works")
		p.fillPrelogin(&res.Prelogin, pl)
		res.Prelogin.Via = "strict"
		res.Prelogin.Encryption = "strict only"
		res.Prelogin.Answers["OFF"] = "closed"
		return nil
	}
	// PRELOGIN inside TLS failed too (crypto/tls has no DHE, or the TLS
	// service is not TDS inside): if a crafted strict hello is answered,
	// the TLS findings still stand.
	legacy, tls13 := knownSuites()
	a := p.hello(ctx, modeStrict, helloSpec{Versions: allVersions, Suites: append(slices.Clone(tls13), legacy...)})
	if !a.accepted() {
		line := reason(target, p.timeout, err)
		var nt *notTDSError
		if !errors.As(err, &nt) {
			// Closed on PRELOGIN: say how TLS first fared too.
			line += "; a TDS 8.0 (TLS-first) hello got " + a.String()
		}
		return &unreachableError{line}
	}
	p.progress("plaintext PRELOGIN refused, PRELOGIN inside TLS failed (%v); a TLS-first hello works: probing TLS only", serr)
	p.note("PRELOGIN could not be run: in plaintext (%s), nor inside TDS 8.0 TLS (%v); the findings are TLS only", reason(target, p.timeout, err), serr)
	res.Prelogin.Via = "none"
	res.Prelogin.Answers = map[string]string{}
	return nil
}

// askVersions asks, in parallel, the other ENCRYPTION answers, the
// timings and each version alone in both modes, and fills the versions
// accepted (r.v7, r.v8) and their answers.
func (p *prober) askVersions(ctx context.Context, r *run) error {
	res := r.res
	var wg sync.WaitGroup
	var mu sync.Mutex
	r.tds7 = map[uint16]answer{}
	r.strict = map[uint16]answer{}
	if res.Prelogin.Via == "tds7" {
		for _, enc := range []tds.Encryption{tds.EncryptOn, tds.EncryptNotSup} {
			wg.Go(func() {
				ans := p.encryptionAnswer(ctx, enc)
				mu.Lock()
				res.Prelogin.Answers[enc.String()] = ans
				mu.Unlock()
			})
		}
		wg.Go(func() { p.timings(ctx, res) })
		for _, v := range allVersions {
			wg.Go(func() {
				a := p.hello(ctx, modeTDS7, helloSpec{Versions: []uint16{v}, Suites: suitesFor(v)})
				p.progress("%s %s: %s", tlsbridge.VersionName(v), modeTDS7, a)
				mu.Lock()
				r.tds7[v] = a
				mu.Unlock()
			})
		}
	}
	for _, v := range allVersions {
		wg.Go(func() {
			a := p.hello(ctx, modeStrict, helloSpec{Versions: []uint16{v}, Suites: suitesFor(v)})
			p.progress("%s %s: %s", tlsbridge.VersionName(v), modeStrict, a)
			mu.Lock()
			r.strict[v] = a
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	p.fillEncryption(&res.Prelogin)

	for _, v := range allVersions {
		if a, ok := r.tds7[v]; ok {
			res.VersionAnswers[tlsbridge.VersionName(v)] = a.String()
			if a.accepted() && a.ServerHello.Version() == v {
				r.v7 = append(r.v7, v)
			}
		}
		a := r.strict[v]
		res.Strict.Answers[tlsbridge.VersionName(v)] = a.String()
		if a.accepted() && a.ServerHello.Version() == v {
			r.v8 = append(r.v8, v)
			if res.Strict.ALPN == "" {
				res.Strict.ALPN = a.ServerHello.ALPN
			}
		}
	}
	res.Versions = versionNames(r.v7)
	res.Strict.Versions = versionNames(r.v8)
	res.Strict.Supported = len(r.v8) > 0
	return nil
}

// enumerateSuites enumerates the suites of each accepted version and,
// beside it, the signature algorithm sensitivity and the client
// profiles, then gathers the suites, DHE answers and first chain seen.
func (p *prober) enumerateSuites(ctx context.Context, r *run) error {
	res := r.res
	r.enumMode, r.enumVersions = modeTDS7, r.v7
	if len(r.v7) == 0 && len(r.v8) > 0 {
		r.enumMode, r.enumVersions = modeStrict, r.v8
		p.note("no TLS inside PRELOGIN: cipher suites were enumerated in TDS 8.0 strict mode (strict.cipher_suites)")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	r.enums = make(map[uint16]enumeration)
	for _, v := range r.enumVersions {
		wg.Go(func() {
			e := p.enumerate(ctx, r.enumMode, v)
			p.progress("cipher suites %s %s: %d (%s order)", tlsbridge.VersionName(v), r.enumMode, len(e.suites), e.order)
			mu.Lock()
			r.enums[v] = e
			mu.Unlock()
		})
	}
	// Signature algorithm sensitivity and the profiles need only the
	// versions, so they run beside the enumeration.
	if slices.Contains(r.enumVersions, tlsbridge.VersionTLS12) {
		wg.Go(func() { r.sig = p.sigAlgs(ctx, r.enumMode) })
	}
	if len(r.enumVersions) > 0 {
		if r.enumMode == modeStrict {
			p.note("client profiles were sent in TDS 8.0 strict form: the server has no TLS inside PRELOGIN")
		}
		wg.Go(func() { r.profs = p.runProfiles(ctx, r.enumMode) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}

	for _, v := range r.enumVersions {
		e := r.enums[v]
		name := tlsbridge.VersionName(v)
		if r.enumMode == modeStrict {
			res.Strict.CipherSuites[name] = suiteNames(e.suites)
		} else {
			res.CipherSuites[name] = suiteNames(e.suites)
		}
		res.CipherOrder[name] = e.order
		for _, s := range e.suites {
			res.KeyExchange[tlsbridge.CipherSuiteName(s)] = tlsbridge.SuiteKeyExchange(s)
			if !slices.Contains(r.allSuites, s) {
				r.allSuites = append(r.allSuites, s)
			}
		}
		r.dheAnswers = append(r.dheAnswers, e.dhe...)
		if r.chain == nil && len(e.chain) > 0 {
			r.chain = e.chain
		}
	}
	return nil
}

// chain returns the server's certificate chain: the one seen during
// enumeration, else one from a TDS 7 answer, else one TLS 1.3 handshake
// (the certificate is encrypted there), else one from a strict answer.
func (p *prober) chain(ctx context.Context, r *run) [][]byte {
	if r.chain != nil {
		return r.chain
	}
	var chain [][]byte
	for _, a := range r.tds7 {
		if len(a.Chain) > 0 {
			chain = a.Chain
		}
	}
	if chain != nil {
		return chain
	}
	var err error
	switch {
	case slices.Contains(r.v7, tlsbridge.VersionTLS13):
		chain, err = p.handshake13(ctx, modeTDS7, tlsbridge.VersionTLS13)
	case slices.Contains(r.v8, tlsbridge.VersionTLS13):
		chain, err = p.handshake13(ctx, modeStrict, tlsbridge.VersionTLS13)
	case len(r.v8) > 0:
		for _, a := range r.strict {
			if len(a.Chain) > 0 {
				chain = a.Chain
			}
		}
	}
	if err != nil {
		p.note("certificate: the TLS 1.3 handshake to read it failed: %v", err)
	}
	return chain
}

// finish judges the evidence (verdicts, profiles) and closes the
// Result's lists.
func (p *prober) finish(r *run) {
	res := r.res
	ev := &evidence{res: res, v7: r.v7, v8: r.v8, tds7: r.tds7, strict: r.strict, suites: r.allSuites, enums: r.enums, profiles: r.profs, slow: p.slowThreshold()}
	res.Verdicts = verdicts(ev)
	res.Profiles = selectProfiles(ev.profiles, p.cfg.Profiles)
	res.Timing.Samples = len(res.Timing.PreloginMS)
	res.Timing.SlowThreshold = ms(ev.slow)
	if res.Timing.ConnectMS == nil {
		res.Timing.ConnectMS, res.Timing.PreloginMS = []float64{}, []float64{}
	}
	if res.Timing.Failures == nil {
		res.Timing.Failures = []string{}
	}
	p.noteMu.Lock()
	res.Notes = append(res.Notes, p.notes...)
	p.noteMu.Unlock()
}

func (p *prober) slowThreshold() time.Duration {
	if p.cfg.SlowThreshold > 0 {
		return p.cfg.SlowThreshold
	}
	return DefaultSlowThreshold
}

// enumeration is the cipher suites one version accepts.
type enumeration struct {
	suites []uint16
	order  string // server, client, unknown
	dhe    []answer
	chain  [][]byte
}

// enumerate offers every known suite for version v, takes the chosen one
// out and offers the rest again, until the server refuses (bounded by
// maxEnumeration). Then it offers the accepted suites reversed: the same
// first pick means the server orders by its own preference, and the
// enumeration order is that preference.
func (p *prober) enumerate(ctx context.Context, m mode, v uint16) enumeration {
	var e enumeration
	offer := suitesFor(v)
	for range maxEnumeration {
		if len(offer) == 0 || ctx.Err() != nil {
			break
		}
		a := p.hello(ctx, m, helloSpec{Versions: []uint16{v}, Suites: offer})
		if !a.accepted() {
			break
		}
		s := a.ServerHello.CipherSuite
		if a.ServerHello.Version() != v || !slices.Contains(offer, s) {
			p.note("%s %s: the server chose %s, which was not offered", tlsbridge.VersionName(v), m, tlsbridge.CipherSuiteName(s))
			break
		}
		e.suites = append(e.suites, s)
		if e.chain == nil && len(a.Chain) > 0 {
			e.chain = a.Chain
		}
		if a.SKE != nil && a.SKE.Kind == tlsbridge.KindDHE {
			e.dhe = append(e.dhe, a)
		}
		offer = slices.DeleteFunc(offer, func(x uint16) bool { return x == s })
	}
	e.order = "unknown"
	if len(e.suites) >= 2 {
		// In code point order the first pick could be the client's order
		// by chance; reversing the offer tells the two apart.
		fwd := slices.Clone(e.suites)
		sort.Slice(fwd, func(i, j int) bool { return fwd[i] < fwd[j] })
		rev := slices.Clone(fwd)
		slices.Reverse(rev)
		a1 := p.hello(ctx, m, helloSpec{Versions: []uint16{v}, Suites: fwd})
		a2 := p.hello(ctx, m, helloSpec{Versions: []uint16{v}, Suites: rev})
		switch {
		case !a1.accepted() || !a2.accepted():
		case a1.ServerHello.CipherSuite == a2.ServerHello.CipherSuite:
			e.order = "server"
		case a1.ServerHello.CipherSuite == fwd[0] && a2.ServerHello.CipherSuite == rev[0]:
			e.order = "client"
			// No preference of its own: report the suites in code
			// point order rather than in the order of our offer.
			e.suites = fwd
		}
	}
	return e
}
