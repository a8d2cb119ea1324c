package faults

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// A scenario is one documented cause of "error 10054: An existing connection
// was forcibly closed by the remote host" (docs/protocol.md, "The failures behind error 10054"),
// with three faces: inject (decide), recognise (for diagnosis of a record),
// and fix (what a user is told).
type scenario struct {
	Name    string
	Summary string
	// Where the real failure closes the connection.
	Where string
	// Fix is the remedy a user validates in the lab.
	Fix string
	// Options lists the options the scenario takes, with their meaning.
	Options [][2]string

	parse     func(opts map[string]string) (scenarioParams, error)
	atAccept  func(p scenarioParams) bool
	decide    func(p scenarioParams, st *connRule, ev *proxy.Event, rec *proxy.Record) proxy.Verdict
	recognise func(rec *proxy.Record) (string, bool)
}

// scenarioParams holds every scenario's parsed options; each scenario reads
// its own.
type scenarioParams struct {
	serverVersions []uint16
	clientVersions []uint16
	serverSuites   []uint16
	rate           float64
	rateText       string
	certHash       string
	acceptDelay    time.Duration
	preloginDelay  time.Duration
	loginDelay     time.Duration
	backlog        int
	reject         bool
}

// Scenario names.
const (
	ScenarioProtocolMismatch = "protocol-mismatch"
	ScenarioCipherMismatch   = "cipher-mismatch"
	ScenarioDHEEnabled       = "dhe-enabled"
	ScenarioWeakCertHash     = "weak-cert-hash"
	ScenarioDHELeadingZero   = "dhe-leading-zero"
	ScenarioDelayedAccept    = "delayed-accept"
)

// naturalLeadingZeroRate is the chance that a DH shared secret starts with a
// zero byte: 1 in 256 (KB4557473).
const naturalLeadingZeroRate = 1.0 / 256

var scenarios = []*scenario{
	{
		Name:    ScenarioProtocolMismatch,
		Summary: "client and server share no TLS version",
		Where:   "the server closes instead of sending ServerHello (tls.client_hello)",
		Fix:     "upgrade the client driver (or SQL Server) to one that speaks TLS 1.2, or re-enable the old TLS version on both sides",
		Options: [][2]string{
			{"server_tls", "TLS versions the emulated server allows, e.g. 1.2 or 1.2,1.3 (default 1.2)"},
			{"client_tls", "instead: TLS versions an emulated old client allows, e.g. 1.0,1.1; closes when the real server's ServerHello picks another"},
		},
		parse: func(o map[string]string) (scenarioParams, error) {
			var p scenarioParams
			if err := onlyOptions(o, "server_tls", "client_tls"); err != nil {
				return p, err
			}
			var err error
			if p.clientVersions, err = versions(o, "client_tls", ""); err != nil {
				return p, err
			}
			def := "1.2"
			if p.clientVersions != nil {
				def = ""
			}
			p.serverVersions, err = versions(o, "server_tls", def)
			return p, err
		},
		atAccept: never,
		decide: func(p scenarioParams, st *connRule, ev *proxy.Event, rec *proxy.Record) proxy.Verdict {
			switch {
			case ev.Phase == proxy.PhaseTLSClientHello && p.serverVersions != nil:
				if ev.ClientHello == nil {
					return skip("the ClientHello could not be parsed")
				}
				offered := ev.ClientHello.OfferedVersions()
				if slices.ContainsFunc(offered, func(v uint16) bool { return slices.Contains(p.serverVersions, v) }) {
					return pass(fmt.Sprintf("client offers %s; server allows %s", versionNames(offered), versionNames(p.serverVersions)))
				}
				return st.close(fmt.Sprintf("client offers %s; emulated server allows only %s", versionNames(offered), versionNames(p.serverVersions)))
			case ev.Phase == proxy.PhaseTLSServerHello && p.clientVersions != nil:
				if ev.ServerHello == nil {
					return skip("the ServerHello could not be parsed")
				}
				v := ev.ServerHello.Version()
				if slices.Contains(p.clientVersions, v) {
					return pass("server chose " + tlsbridge.VersionName(v))
				}
				return st.close(fmt.Sprintf("server chose %s; emulated client allows only %s", tlsbridge.VersionName(v), versionNames(p.clientVersions)))
			}
			return proxy.Verdict{}
		},
		recognise: func(r *proxy.Record) (string, bool) {
			if !closedAfterHello(r) || r.TLS.ClientHello == nil {
				return "", false
			}
			if hi := r.TLS.ClientHello.HighestVersion; hi == "TLS 1.0" || hi == "TLS 1.1" || hi == "SSL 3.0" {
				return "the client offered at most " + hi + " and the server closed before ServerHello", true
			}
			return "", false
		},
	},
	{
		Name:    ScenarioCipherMismatch,
		Summary: "same TLS version, no common cipher suite",
		Where:   "the server closes instead of sending ServerHello (tls.client_hello)",
		Fix:     "align the cipher suites: enable on one side a suite the other offers (Windows: the SSL cipher suite order policy / IIS Crypto)",
		Options: [][2]string{
			{"server_ciphers", "IANA names of the suites the emulated server allows, comma-separated (required)"},
		},
		parse: func(o map[string]string) (scenarioParams, error) {
			var p scenarioParams
			if err := onlyOptions(o, "server_ciphers"); err != nil {
				return p, err
			}
			s := strings.TrimSpace(o["server_ciphers"])
			if s == "" {
				return p, fmt.Errorf("server_ciphers: required, e.g. TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")
			}
			for _, n := range splitList(s) {
				id, ok := tlsbridge.CipherSuiteByName(n)
				if !ok {
					return p, fmt.Errorf("server_ciphers: %q is not an IANA cipher suite name", n)
				}
				p.serverSuites = append(p.serverSuites, id)
			}
			return p, nil
		},
		atAccept: never,
		decide: func(p scenarioParams, st *connRule, ev *proxy.Event, rec *proxy.Record) proxy.Verdict {
			if ev.Phase != proxy.PhaseTLSClientHello {
				return proxy.Verdict{}
			}
			if ev.ClientHello == nil {
				return skip("the ClientHello could not be parsed")
			}
			for _, s := range ev.ClientHello.CipherSuites {
				if slices.Contains(p.serverSuites, s) {
					return pass("common suite " + tlsbridge.CipherSuiteName(s))
				}
			}
			return st.close(fmt.Sprintf("none of the client's %d suites is among the server's %s", len(ev.ClientHello.CipherSuites), suiteNames(p.serverSuites)))
		},
		recognise: func(r *proxy.Record) (string, bool) {
			if !closedAfterHello(r) {
				return "", false
			}
			return "the server closed right after the ClientHello: no common version, cipher suite or usable certificate (compare the offer with the server's policy)", true
		},
	},
	dheScenario(ScenarioDHEEnabled, "TLS_DHE_* suites are enabled and the two Windows versions handle the DH secret differently",
		"remove every TLS_DHE_* suite from the cipher suite policy", "always"),
	{
		Name:    ScenarioWeakCertHash,
		Summary: "the server certificate is signed with MD5, SHA-224 or SHA-512 and cannot be used under TLS 1.2",
		Where:   "the server closes instead of sending ServerHello (tls.client_hello)",
		Fix:     "re-issue the certificate with SHA-256, or clear it in SQL Server Configuration Manager so the self-signed one is used",
		Options: [][2]string{
			{"cert_hash", "the emulated certificate's signature hash: md5, sha1, sha224 or sha512 (default md5)"},
		},
		parse: func(o map[string]string) (scenarioParams, error) {
			var p scenarioParams
			if err := onlyOptions(o, "cert_hash"); err != nil {
				return p, err
			}
			p.certHash = strings.ToLower(strings.TrimSpace(o["cert_hash"]))
			if p.certHash == "" {
				p.certHash = "md5"
			}
			if _, ok := rsaSchemeFor[p.certHash]; !ok {
				return p, fmt.Errorf("cert_hash: %q is not md5, sha1, sha224 or sha512", p.certHash)
			}
			return p, nil
		},
		atAccept: never,
		decide: func(p scenarioParams, st *connRule, ev *proxy.Event, rec *proxy.Record) proxy.Verdict {
			if ev.Phase != proxy.PhaseTLSClientHello {
				return proxy.Verdict{}
			}
			ch := ev.ClientHello
			if ch == nil {
				return skip("the ClientHello could not be parsed")
			}
			if !ch.Offers(tls.VersionTLS12) {
				return pass("the client does not offer TLS 1.2")
			}
			// RFC 5246 §7.4.2: the certificate chain must be signed with a
			// hash/signature pair the client lists; RFC 8446 §4.2.3 adds
			// signature_algorithms_cert for the same purpose.
			want := rsaSchemeFor[p.certHash]
			if slices.Contains(ch.SignatureAlgorithms, want) || slices.Contains(ch.SignatureAlgorithmsCert, want) {
				return pass("the client accepts " + tlsbridge.SignatureSchemeName(want))
			}
			return st.close(fmt.Sprintf("the emulated certificate is signed with RSA/%s, which the client's signature_algorithms do not list", strings.ToUpper(p.certHash)))
		},
		recognise: func(r *proxy.Record) (string, bool) {
			if r.TLS == nil {
				return "", false
			}
			for _, c := range r.TLS.Certificates {
				if c.WeakHashRisk {
					return "the server certificate " + c.Subject + " is signed with " + c.SignatureAlgorithm + " (thumbprint " + c.ThumbprintSHA1 + ")", true
				}
			}
			return "", false
		},
	},
	dheScenario(ScenarioDHELeadingZero, "a DHE shared secret starting with a zero byte (about 1 handshake in 256) is encoded differently by patched and unpatched Windows",
		"install the TLS_DHE leading-zero fix (KB4537806/KB4540670) on both sides, or remove TLS_DHE_* suites", "natural"),
	{
		Name:    ScenarioDelayedAccept,
		Summary: "accept/IOCP worker starvation: accepts come late, SYNs go unanswered, logins time out",
		Where:   "TCP connect, or PRELOGIN/login never answered in time",
		Fix:     "add capacity (SQL Server 2019+ has a login dispatcher pool); give clients longer connect/login timeouts and retries",
		Options: [][2]string{
			{"accept_delay", "hold each accepted connection this long before talking to the server, e.g. 5s"},
			{"backlog", "with accept_delay: a listen backlog this small, with accepts paused for accept_delay each, so new SYNs go unanswered (Linux; elsewhere accepts pause but the queue keeps its size). match.probability, first, every and window decide each pause; match.clients, instance, sni and protocol cannot apply before accept and are refused"},
			{"reject", "true: accept, then reset at once"},
			{"prelogin_delay", "hold the server's PRELOGIN response this long"},
			{"login_delay", "hold the server's login response this long"},
		},
		parse: func(o map[string]string) (scenarioParams, error) {
			var p scenarioParams
			if err := onlyOptions(o, "accept_delay", "backlog", "reject", "prelogin_delay", "login_delay"); err != nil {
				return p, err
			}
			var err error
			if p.acceptDelay, err = durationOpt(o, "accept_delay"); err != nil {
				return p, err
			}
			if p.preloginDelay, err = durationOpt(o, "prelogin_delay"); err != nil {
				return p, err
			}
			if p.loginDelay, err = durationOpt(o, "login_delay"); err != nil {
				return p, err
			}
			if v, ok := o["backlog"]; ok {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil || n < 1 || n > 65535 {
					return p, fmt.Errorf("backlog: %q is not a count from 1 to 65535", v)
				}
				if p.acceptDelay == 0 {
					return p, fmt.Errorf("backlog: needs accept_delay (how long accepts pause)")
				}
				p.backlog = n
			}
			if v, ok := o["reject"]; ok {
				b, err := strconv.ParseBool(strings.TrimSpace(v))
				if err != nil {
					return p, fmt.Errorf("reject: %q is not true or false", v)
				}
				p.reject = b
			}
			if !p.reject && p.acceptDelay == 0 && p.preloginDelay == 0 && p.loginDelay == 0 {
				return p, fmt.Errorf("accept_delay: set one of accept_delay, backlog, reject, prelogin_delay, login_delay")
			}
			return p, nil
		},
		atAccept: func(p scenarioParams) bool {
			return p.reject || p.acceptDelay > 0 && p.preloginDelay == 0 && p.loginDelay == 0
		},
		decide: func(p scenarioParams, st *connRule, ev *proxy.Event, rec *proxy.Record) proxy.Verdict {
			switch ev.Phase {
			case proxy.PhaseAccept:
				if p.reject {
					return st.close("accepted, then reset at once")
				}
				if p.acceptDelay > 0 && p.backlog == 0 {
					return st.delay(p.acceptDelay, "accept held for "+p.acceptDelay.String())
				}
			case proxy.PhasePreloginResponse:
				if p.preloginDelay > 0 {
					return st.delay(p.preloginDelay, "PRELOGIN response held for "+p.preloginDelay.String())
				}
			case proxy.PhaseLoginResponse:
				if p.loginDelay > 0 {
					return st.delay(p.loginDelay, "login response held for "+p.loginDelay.String())
				}
			}
			return proxy.Verdict{}
		},
		recognise: func(r *proxy.Record) (string, bool) {
			if r.Close == nil || r.Close.By != proxy.SideClient || r.Close.Awaiting != proxy.SideServer {
				return "", false
			}
			switch r.Close.Phase {
			case proxy.PhaseAccept, proxy.PhasePreloginRequest, proxy.PhaseLogin7:
				return fmt.Sprintf("the client gave up after the server was silent for %v in %s", r.Close.Silence.Round(time.Millisecond), r.Close.Phase), true
			}
			return "", false
		},
	},
}

func dheScenario(name, summary, fix, defRate string) *scenario {
	return &scenario{
		Name:    name,
		Summary: summary,
		Where:   "after the client's ClientKeyExchange/ChangeCipherSpec/Finished flight (tls.client_finished)",
		Fix:     fix,
		Options: [][2]string{
			{"rate", "natural (1/256, the leading-zero odds), always, or a probability 0..1 (default " + defRate + ")"},
		},
		parse: func(o map[string]string) (scenarioParams, error) {
			var p scenarioParams
			if err := onlyOptions(o, "rate"); err != nil {
				return p, err
			}
			p.rateText = strings.ToLower(strings.TrimSpace(o["rate"]))
			if p.rateText == "" {
				p.rateText = defRate
			}
			switch p.rateText {
			case "natural":
				p.rate = naturalLeadingZeroRate
			case "always":
				p.rate = 1
			default:
				f, err := strconv.ParseFloat(p.rateText, 64)
				if err != nil || f < 0 || f > 1 {
					return p, fmt.Errorf("rate: %q is not natural, always or a probability 0..1", o["rate"])
				}
				p.rate = f
			}
			return p, nil
		},
		atAccept: never,
		decide: func(p scenarioParams, st *connRule, ev *proxy.Event, rec *proxy.Record) proxy.Verdict {
			switch ev.Phase {
			case proxy.PhaseTLSServerHello:
				if ev.ServerHello == nil {
					return skip("the ServerHello could not be parsed")
				}
				suite := ev.ServerHello.CipherSuite
				if tlsbridge.SuiteKeyExchange(suite) != "DHE" {
					return pass("server chose " + tlsbridge.CipherSuiteName(suite) + ", not DHE")
				}
				st.dheArmed = true
				return proxy.Verdict{Action: "armed", Detail: "server chose " + tlsbridge.CipherSuiteName(suite)}
			case proxy.PhaseTLSClientFinished:
				if !st.dheArmed {
					return proxy.Verdict{}
				}
				detail := "DHE suite " + rec.TLS.CipherSuite
				if ke := rec.TLS.KeyExchange; ke != nil && ke.DHPrimeBits > 0 {
					detail += fmt.Sprintf(", %d-bit prime", ke.DHPrimeBits)
				}
				if !st.rateHit {
					return pass(detail + "; rate " + p.rateText + " not hit")
				}
				return st.close(detail + "; rate " + p.rateText + " hit")
			}
			return proxy.Verdict{}
		},
		recognise: func(r *proxy.Record) (string, bool) {
			if r.TLS == nil || !strings.HasPrefix(r.TLS.CipherSuite, "TLS_DHE_") || r.Close == nil {
				return "", false
			}
			if r.Close.By != proxy.SideClient && r.Close.Phase == proxy.PhaseTLSClientFinished {
				return "the server closed right after the client's Finished with " + r.TLS.CipherSuite, true
			}
			return "", false
		},
	}
}

// rsaSchemeFor maps a certificate hash to the TLS 1.2 SignatureAndHashAlgorithm
// for RSA PKCS#1 v1.5 (RFC 5246 §7.4.1.4.1: hash byte, then rsa=1).
var rsaSchemeFor = map[string]uint16{
	"md5":    0x0101,
	"sha1":   0x0201,
	"sha224": 0x0301,
	"sha256": 0x0401,
	"sha384": 0x0501,
	"sha512": 0x0601,
}

func never(scenarioParams) bool { return false }

// closedAfterHello: the server (or the proxy playing it) closed after the
// ClientHello, before any ServerHello: how Schannel fails scenarios 1, 2
// and 4.
func closedAfterHello(r *proxy.Record) bool {
	return r.Close != nil && r.Close.By != proxy.SideClient && r.Close.Phase == proxy.PhaseTLSClientHello &&
		r.TLS != nil && r.TLS.ServerHello == nil
}

func scenarioByName(name string) (*scenario, bool) {
	for _, s := range scenarios {
		if strings.EqualFold(s.Name, name) {
			return s, true
		}
	}
	return nil, false
}

// ScenarioNames lists the scenarios in the documented order.
func ScenarioNames() []string {
	out := make([]string, len(scenarios))
	for i, s := range scenarios {
		out[i] = s.Name
	}
	return out
}

// ScenarioInfo describes a scenario for help texts and the lab.
type ScenarioInfo struct {
	Name, Summary, Where, Fix string
	Options                   [][2]string
}

// Scenarios describes every scenario, in the documented order.
func Scenarios() []ScenarioInfo {
	out := make([]ScenarioInfo, len(scenarios))
	for i, s := range scenarios {
		out[i] = ScenarioInfo{Name: s.Name, Summary: s.Summary, Where: s.Where, Fix: s.Fix, Options: s.Options}
	}
	return out
}

// Finding is a scenario recognised in a connection record.
type Finding struct {
	Scenario string `json:"scenario"`
	Evidence string `json:"evidence"`
	Fix      string `json:"fix"`
}

// Diagnose lists the scenarios whose symptoms a finished connection shows.
// It reads only the record, so it works on connections no rule touched.
func Diagnose(rec *proxy.Record) []Finding {
	var out []Finding
	for _, s := range scenarios {
		if ev, ok := s.recognise(rec); ok {
			out = append(out, Finding{Scenario: s.Name, Evidence: ev, Fix: s.Fix})
		}
	}
	return out
}

func onlyOptions(o map[string]string, allowed ...string) error {
	for k := range o {
		if !slices.Contains(allowed, k) {
			return fmt.Errorf("%s: unknown option (valid: %s)", k, strings.Join(allowed, ", "))
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func versions(o map[string]string, key, def string) ([]uint16, error) {
	s, ok := o[key]
	if !ok {
		s = def
	}
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []uint16
	for _, f := range splitList(s) {
		v, err := tlsbridge.ParseVersion(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a TLS version (1.0, 1.1, 1.2, 1.3)", key, f)
		}
		out = append(out, v)
	}
	return out, nil
}

func durationOpt(o map[string]string, key string) (time.Duration, error) {
	s, ok := o[key]
	if !ok {
		return 0, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s: %q is not a duration like 5s", key, s)
	}
	return d, nil
}

func versionNames(vs []uint16) string {
	return strings.Join(mapNames(vs, tlsbridge.VersionName), ", ")
}

func suiteNames(vs []uint16) string {
	return strings.Join(mapNames(vs, tlsbridge.CipherSuiteName), ", ")
}

func mapNames(vs []uint16, f func(uint16) string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = f(v)
	}
	return out
}

func skip(why string) proxy.Verdict {
	return proxy.Verdict{Action: "skip", Detail: "cannot evaluate: " + why}
}

func pass(why string) proxy.Verdict {
	return proxy.Verdict{Action: "pass", Detail: why}
}
