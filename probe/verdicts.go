package probe

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// evidence is everything the verdicts read.
type evidence struct {
	res      *Result
	v7, v8   []uint16
	tds7     map[uint16]answer
	strict   map[uint16]answer
	suites   []uint16 // every accepted suite, any version
	enums    map[uint16]enumeration
	profiles []profileRun
	slow     time.Duration
}

// accepted returns the versions clients meet: inside PRELOGIN when the
// server does TLS there, else in strict mode.
func (ev *evidence) accepted() ([]uint16, map[uint16]answer) {
	if len(ev.v7) > 0 || len(ev.v8) == 0 {
		return ev.v7, ev.tds7
	}
	return ev.v8, ev.strict
}

// judgements is the probe's judgement for each check a scenario of the
// table names (faults.ScenarioInfo.Probe); a scenario whose check has no
// judgement here gets n/a until it has one.
var judgements = map[faults.ProbeCheck]func(ev *evidence, scenario string) (status, why string){
	faults.ProbeVersions:  protocolVerdict,
	faults.ProbeSuites:    cipherVerdict,
	faults.ProbeDHESuites: dheEnabledVerdict,
	faults.ProbeCertHash:  weakHashVerdict,
	faults.ProbeDHESecret: leadingZeroVerdict,
	faults.ProbeTiming:    delayVerdict,
}

// verdicts returns one verdict per scenario, in the table's order, and
// fills in each profile's result.
func verdicts(ev *evidence) []Verdict {
	for i := range ev.profiles {
		ev.profiles[i].result = evalProfile(ev, ev.profiles[i])
	}
	out := []Verdict{}
	for _, sc := range faults.Scenarios() {
		v := Verdict{Scenario: sc.Name, Fix: sc.Fix, Status: StatusNA, Why: "the probe has no test for this scenario"}
		if f, ok := judgements[sc.Probe]; ok {
			v.Status, v.Why = f(ev, sc.Name)
		}
		out = append(out, v)
	}
	return out
}

// scenarioFor names the scenario the table judges by check: the one a
// failing client profile is exposed to.
func scenarioFor(check faults.ProbeCheck) string {
	for _, sc := range faults.Scenarios() {
		if sc.Probe == check {
			return sc.Name
		}
	}
	return ""
}

func refusal(a answer) string {
	switch {
	case a.silent():
		return "closed without an alert (" + map[bool]string{true: "RST", false: "FIN"}[a.Kind == answerReset] + ": the client's 10054)"
	case a.Kind == answerAlert:
		return "refused with alert " + tlsbridge.AlertName(a.Alert.Description) + " (a named TLS error, not 10054)"
	case a.accepted():
		return "answered " + a.String() + " (a version or suite the client did not offer: it gives up)"
	}
	return a.String()
}

func protocolVerdict(ev *evidence, scenario string) (string, string) {
	acc, answers := ev.accepted()
	if len(acc) == 0 {
		return StatusNA, "the server accepts no TLS version (" + ev.res.Prelogin.Encryption + ")"
	}
	var refused []string
	for _, v := range []uint16{tlsbridge.VersionTLS10, tlsbridge.VersionTLS11, tlsbridge.VersionTLS12} {
		if !slices.Contains(acc, v) {
			refused = append(refused, tlsbridge.VersionName(v)+" alone: "+refusal(answers[v]))
		}
	}
	why := "accepts " + joinVersions(acc)
	if len(refused) == 0 {
		return StatusOK, why + ": every version a client limits itself to is met"
	}
	why += "; " + strings.Join(refused, "; ")
	if f := failing(ev, scenario); len(f) > 0 {
		why += "; client profiles that fail: " + strings.Join(f, ", ")
	}
	return StatusRisk, why
}

func cipherVerdict(ev *evidence, scenario string) (string, string) {
	acc, _ := ev.accepted()
	if len(acc) == 0 {
		return StatusNA, "the server accepts no TLS version"
	}
	var counts []string
	for _, v := range acc {
		counts = append(counts, fmt.Sprintf("%d under %s", len(ev.enums[v].suites), tlsbridge.VersionName(v)))
	}
	why := "accepts " + strings.Join(counts, ", ")
	if len(ev.profiles) == 0 {
		return StatusNA, why + "; no client profile could be tried"
	}
	var bad []string
	for _, r := range ev.profiles {
		if r.result.Scenario == scenario && !r.result.Connects {
			bad = append(bad, r.prof.name+" ("+r.result.Why+")")
		}
	}
	if len(bad) > 0 {
		return StatusRisk, why + "; no common suite with " + strings.Join(bad, "; ")
	}
	return StatusOK, why + "; every known client profile that shares a version shares a suite"
}

func dheEnabledVerdict(ev *evidence, scenario string) (string, string) {
	d := ev.res.DHE
	if len(d.Suites) == 0 {
		return StatusOK, "no TLS_DHE_* suite is accepted"
	}
	why := fmt.Sprintf("accepts %d DHE suite(s): %s", len(d.Suites), strings.Join(d.Suites, ", "))
	if len(d.GroupsBits) > 0 {
		why += fmt.Sprintf("; DH prime %v bits", d.GroupsBits)
	}
	var chose []string
	for _, r := range ev.profiles {
		if r.result.Connects && tlsbridge.SuiteKeyExchange(r.ans.ServerHello.CipherSuite) == tlsbridge.KeyExchangeDHE {
			chose = append(chose, r.prof.name)
		}
	}
	if len(chose) > 0 {
		why += "; negotiated with DHE by " + strings.Join(chose, ", ")
	}
	return StatusRisk, why
}

func leadingZeroVerdict(ev *evidence, scenario string) (string, string) {
	d := ev.res.DHE
	if len(d.Suites) == 0 {
		return StatusOK, "no DHE suite is accepted, so the encoding of the DH secret never matters"
	}
	var status, why string
	switch d.LeadingZero {
	case LeadingZeroPad:
		status, why = StatusRisk, "DHE accepted and the server pads a shared secret with a leading zero (unpatched): about 1 DHE handshake in 256 from RFC 5246 clients fails"
	case LeadingZeroStrip:
		status, why = StatusOK, "DHE accepted and the server strips the leading zero (RFC 5246 §8.1.2, patched); unpatched clients still fail about 1 DHE handshake in 256"
	default:
		status, why = StatusRisk, "DHE accepted ("+strings.Join(d.Suites, ", ")+"); whether the server strips or pads a leading zero was not tested ("+d.LeadingZeroReason+"): with a peer that encodes it the other way about 1 DHE handshake in 256 fails"
	}
	switch d.ShortPublic {
	case ShortPublicAccepted:
		why += "; a client public value shorter than p (OpenSSL 1.1.1) is accepted"
	case ShortPublicRejected:
		status = StatusRisk
		why += "; the server mishandles a client public value shorter than p (unpatched): about 1 DHE handshake in 256 from OpenSSL 1.1.1 clients fails"
	default:
		why += "; a short client public value was not tested (" + d.ShortPublicReason + ")"
	}
	return status, why
}

func weakHashVerdict(ev *evidence, scenario string) (string, string) {
	certs := ev.res.Certificates
	if len(certs) == 0 {
		return StatusNA, "no certificate was seen"
	}
	var weak []string
	for i, c := range certs {
		if c.WeakHash {
			role := "the leaf"
			if i > 0 {
				role = fmt.Sprintf("chain certificate %d", i)
			}
			weak = append(weak, fmt.Sprintf("%s %s is signed with %s (thumbprint %s)", role, c.Subject, c.SignatureAlgorithm, c.ThumbprintSHA1))
		}
	}
	if len(weak) == 0 {
		return StatusOK, "the chain is signed with " + certs[0].SignatureAlgorithm
	}
	why := strings.Join(weak, "; ") + "; under TLS 1.2 a client must list " + strings.Join(ev.res.SignatureAlgs.ClientMustList, ", ") +
		" in signature_algorithms, and SQL Server (Schannel) closes without an alert when it does not"
	if f := failing(ev, scenario); len(f) > 0 {
		why += "; client profiles that do not list it: " + strings.Join(f, ", ")
	}
	return StatusRisk, why
}

func delayVerdict(ev *evidence, scenario string) (string, string) {
	t := ev.res.Timing
	if len(t.PreloginMS) == 0 {
		return StatusNA, "no PRELOGIN timing: plaintext PRELOGIN was refused (prelogin.via " + ev.res.Prelogin.Via + ")"
	}
	cMed, cMax := stats(t.ConnectMS)
	pMed, pMax := stats(t.PreloginMS)
	why := fmt.Sprintf("connect median %.1f ms (max %.1f), PRELOGIN round trip median %.1f ms (max %.1f) over %d samples", cMed, cMax, pMed, pMax, len(t.PreloginMS))
	slow := ms(ev.slow)
	switch {
	case len(t.Failures) > 0:
		return StatusRisk, why + fmt.Sprintf("; %d sample(s) failed: %s", len(t.Failures), strings.Join(t.Failures, "; "))
	case cMax >= slow || pMax >= slow:
		return StatusRisk, why + fmt.Sprintf("; at or above %.0f ms: accepts or PRELOGIN answers come late", slow)
	}
	return StatusOK, why + fmt.Sprintf("; all below %.0f ms", slow)
}

func stats(xs []float64) (median, maximum float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	return s[len(s)/2], s[len(s)-1]
}

// failing names the profiles whose result names scenario.
func failing(ev *evidence, scenario string) []string {
	var out []string
	for _, r := range ev.profiles {
		if r.result.Scenario == scenario {
			out = append(out, r.prof.name)
		}
	}
	return out
}

// evalProfile says whether a profile connected and which scenario fails
// it, or threatens it although it connected.
func evalProfile(ev *evidence, r profileRun) ProfileResult {
	pr := r.prof
	out := ProfileResult{Name: pr.name, Description: pr.description}
	ids := pr.suiteIDs()
	a := r.ans
	if a.accepted() && slices.Contains(pr.versions, a.ServerHello.Version()) && slices.Contains(ids, a.ServerHello.CipherSuite) && !a.ServerHello.IsHelloRetryRequest() {
		out.Connects = true
		out.Version = tlsbridge.VersionName(a.ServerHello.Version())
		out.CipherSuite = tlsbridge.CipherSuiteName(a.ServerHello.CipherSuite)
		out.Why = "ServerHello"
		switch {
		case tlsbridge.SuiteKeyExchange(a.ServerHello.CipherSuite) == tlsbridge.KeyExchangeDHE:
			out.Scenario = scenarioFor(faults.ProbeDHESecret)
			out.Why = "connects with DHE: exposed to the leading-zero mismatch (about 1 handshake in 256 when the two sides encode the DH secret differently)"
		case a.ServerHello.Version() == tlsbridge.VersionTLS12 && missesHash(ev, pr):
			out.Scenario = scenarioFor(faults.ProbeCertHash)
			out.Why = "connects here, but does not list " + strings.Join(ev.res.SignatureAlgs.ClientMustList, ", ") + ", which the certificate chain needs: SQL Server (Schannel) closes such a handshake"
		}
		return out
	}
	if a.accepted() && a.ServerHello.IsHelloRetryRequest() {
		out.Why = "HelloRetryRequest for group " + tlsbridge.GroupName(a.ServerHello.SelectedGroup) + " (the probe does not retry)"
		return out
	}
	acc, _ := ev.accepted()
	var common []uint16
	for _, v := range pr.versions {
		if slices.Contains(acc, v) {
			common = append(common, v)
		}
	}
	if len(common) == 0 {
		out.Scenario = scenarioFor(faults.ProbeVersions)
		out.Why = "offers " + joinVersions(pr.versions) + ", the server accepts " + joinVersions(acc) + "; " + refusal(a)
		return out
	}
	shared := false
	for _, v := range common {
		for _, s := range ev.enums[v].suites {
			if slices.Contains(ids, s) {
				shared = true
			}
		}
	}
	if !shared {
		out.Scenario = scenarioFor(faults.ProbeSuites)
		out.Why = "shares " + joinVersions(common) + " but none of its " + fmt.Sprint(len(ids)) + " suites; " + refusal(a)
		return out
	}
	if slices.Contains(common, tlsbridge.VersionTLS12) && missesHash(ev, pr) {
		out.Scenario = scenarioFor(faults.ProbeCertHash)
		out.Why = "does not list " + strings.Join(ev.res.SignatureAlgs.ClientMustList, ", ") + "; " + refusal(a)
		return out
	}
	out.Why = refusal(a)
	return out
}

// missesHash: the chain needs a scheme the profile does not list.
func missesHash(ev *evidence, pr profile) bool {
	need := ev.res.SignatureAlgs.ClientMustList
	if len(need) == 0 {
		return false
	}
	weak := false
	for _, c := range ev.res.Certificates {
		weak = weak || c.WeakHash
	}
	if !weak {
		return false
	}
	for _, n := range need {
		listed := false
		// A scheme in either list counts (RFC 8446 §4.2.3), as in the
		// weak-cert-hash scenario's own decision.
		for _, s := range append(slices.Clone(pr.sigAlgs), pr.sigAlgsCert...) {
			listed = listed || tlsbridge.SignatureSchemeName(s) == n
		}
		if !listed {
			return true
		}
	}
	return false
}
