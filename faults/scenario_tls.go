package faults

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// Scenarios 1, 2 and 4: the server closes instead of answering the
// ClientHello (tls.client_hello), as Schannel does when it finds no common
// version, no common suite, or no certificate it may use.

const closedAtHello = "the server closes instead of sending ServerHello (tls.client_hello)"

var protocolMismatch = &scenario{
	Name:    ScenarioProtocolMismatch,
	Probe:   ProbeVersions,
	Summary: "client and server share no TLS version",
	Where:   closedAtHello,
	Phase:   proxy.PhaseTLSClientHello,
	Fix:     "upgrade the client driver (or SQL Server) to one that speaks TLS 1.2, or re-enable the old TLS version on both sides",
	Options: []Option{
		{Name: "server_tls", Flag: "server-tls", Type: OptString, Default: "1.2",
			Help: "TLS `versions` the emulated server allows, e.g. 1.2 or 1.2,1.3"},
		{Name: "client_tls", Flag: "client-tls", Type: OptString,
			Help: "instead: TLS `versions` an emulated old client allows, e.g. 1.0,1.1; closes when the real server's ServerHello picks another"},
	},
	rule:      func() scenarioRule { return &protocolRule{ServerTLS: tlsVersions{tls.VersionTLS12}} },
	recognise: recogniseOldTLS,
	Lab: LabSetup{
		Options: map[string]string{"server_tls": "1.2"}, Close: "rst",
		Server: LabServer{TLSMin: tls.VersionTLS12, TLSMax: tls.VersionTLS12, Desc: "emulator with TLS 1.2 only; rule server_tls=1.2"},
		Before: LabClient{TLSMin: tls.VersionTLS10, TLSMax: tls.VersionTLS11},
		After:  LabClient{TLSMin: tls.VersionTLS12, TLSMax: tls.VersionTLS12},
		Expect: LabExpect{By: proxy.SideProxy, Kind: proxy.CloseRST, Errors: resetErrors},
		Note: "The rule plays a TLS 1.2-only server and closes when the ClientHello offers no TLS 1.2: the client " +
			"before the fix offers TLS 1.0 and 1.1 only (an old driver). After the fix (a TLS 1.2 client) the same rule lets it through.",
		ExtNote:  "The client before the fix offers TLS 1.0 and 1.1 only; the rule plays a TLS 1.2-only server. After the fix (TLS 1.2) the same rule lets it through.",
		HoldNote: "The rule plays a server that allows TLS 1.2 only: a client offering only TLS 1.0/1.1 is closed at its ClientHello.",
	},
	Soak: []SoakCase{
		{Name: "protocol-mismatch-old-client", Encrypt: "true", Client: LabClient{TLSMin: tls.VersionTLS10, TLSMax: tls.VersionTLS11},
			Options: map[string]string{"server_tls": "1.2"},
			WantErr: []string{"TLS Handshake failed: cannot read handshake packet: read tcp", "connection reset by peer"}},
		{Name: "protocol-mismatch-alert", Encrypt: "true", Client: LabClient{TLSMax: tls.VersionTLS12},
			Options: map[string]string{"server_tls": "1.3"}, Close: "alert:protocol_version",
			WantErr: []string{"protocol version not supported"}},
	},
}

// protocolRule: the emulated server allows ServerTLS (checked at the
// ClientHello), or the emulated old client allows ClientTLS (checked at
// the real server's ServerHello).
type protocolRule struct {
	ServerTLS tlsVersions `opt:"server_tls"`
	ClientTLS tlsVersions `opt:"client_tls"`
}

func (p *protocolRule) check(given func(string) bool) error {
	if p.ClientTLS != nil && !given("server_tls") {
		p.ServerTLS = nil // the default is for the emulated server only
	}
	return nil
}

func (p *protocolRule) conn(float64) scenarioConn { return p }

func (p *protocolRule) decide(st *connRule, ev *proxy.Event, _ *proxy.Record) proxy.Verdict {
	switch {
	case ev.Phase == proxy.PhaseTLSClientHello && p.ServerTLS != nil:
		if ev.ClientHello == nil {
			return skip("the ClientHello could not be parsed")
		}
		offered := ev.ClientHello.OfferedVersions()
		if slices.ContainsFunc(offered, func(v uint16) bool { return slices.Contains(p.ServerTLS, v) }) {
			return pass(fmt.Sprintf("client offers %s; server allows %s", versionNames(offered), versionNames(p.ServerTLS)))
		}
		return st.close(fmt.Sprintf("client offers %s; emulated server allows only %s", versionNames(offered), versionNames(p.ServerTLS)))
	case ev.Phase == proxy.PhaseTLSServerHello && p.ClientTLS != nil:
		if ev.ServerHello == nil {
			return skip("the ServerHello could not be parsed")
		}
		v := ev.ServerHello.Version()
		if slices.Contains(p.ClientTLS, v) {
			return pass("server chose " + tlsbridge.VersionName(v))
		}
		return st.close(fmt.Sprintf("server chose %s; emulated client allows only %s", tlsbridge.VersionName(v), versionNames(p.ClientTLS)))
	}
	return proxy.Verdict{}
}

func recogniseOldTLS(r *proxy.Record) (string, bool) {
	if !closedAfterHello(r) || r.TLS.ClientHello == nil {
		return "", false
	}
	if hi := r.TLS.ClientHello.HighestVersion; hi == "TLS 1.0" || hi == "TLS 1.1" || hi == "SSL 3.0" {
		return "the client offered at most " + hi + " and the server closed before ServerHello", true
	}
	return "", false
}

var cipherMismatch = &scenario{
	Name:  ScenarioCipherMismatch,
	Probe: ProbeSuites,
	// Its recogniser matches any close right after the ClientHello.
	ByElimination: true,
	Summary:       "same TLS version, no common cipher suite",
	Where:         closedAtHello,
	Phase:         proxy.PhaseTLSClientHello,
	Fix:           "align the cipher suites: enable on one side a suite the other offers (Windows: the SSL cipher suite order policy / IIS Crypto)",
	Options: []Option{
		{Name: "server_ciphers", Flag: "server-ciphers", Type: OptString,
			Help: "IANA `names` of the suites the emulated server allows, comma-separated (required)"},
	},
	rule: func() scenarioRule { return &cipherRule{} },
	recognise: func(r *proxy.Record) (string, bool) {
		if !closedAfterHello(r) {
			return "", false
		}
		return "the server closed right after the ClientHello: no common version, cipher suite or usable certificate (compare the offer with the server's policy)", true
	},
	Lab: LabSetup{
		Options: map[string]string{"server_ciphers": tlsbridge.CipherSuiteName(labServerSuite)}, Close: "rst",
		Server: LabServer{TLSMax: tls.VersionTLS12, Suites: []uint16{labServerSuite},
			Desc: "emulator allowing only " + tlsbridge.CipherSuiteName(labServerSuite) + "; rule server_ciphers=" + tlsbridge.CipherSuiteName(labServerSuite)},
		Before: LabClient{TLSMax: tls.VersionTLS12, Suite: labClientSuite},
		After:  LabClient{TLSMax: tls.VersionTLS12, Suite: labServerSuite},
		// GnuTLS priorities name ciphers, not suites: after the fix,
		// GnuTLS's defaults.
		AfterFor: map[string]LabClient{LabTSQL: {TLSMax: tls.VersionTLS12}},
		Expect:   LabExpect{By: proxy.SideProxy, Kind: proxy.CloseRST, Errors: resetErrors},
		Note: fmt.Sprintf("The rule plays a server whose policy allows only %s; the client before the fix offers only %s "+
			"(TLS 1.2, where Go lets a client choose its suites). After the fix the client offers the server's suite and the same rule lets it through.",
			tlsbridge.CipherSuiteName(labServerSuite), tlsbridge.CipherSuiteName(labClientSuite)),
		ExtNote: fmt.Sprintf("The client before the fix does not offer %s, the server's only suite; after the fix it does.", tlsbridge.CipherSuiteName(labServerSuite)),
		NoteFor: map[string]string{LabTSQL: " (GnuTLS priorities name ciphers, not suites: before the fix AES-256 is disabled; after, GnuTLS's defaults.)"},
		HoldNote: "The rule plays a server whose policy allows only " + tlsbridge.CipherSuiteName(labServerSuite) +
			" (OpenSSL: ECDHE-RSA-AES256-GCM-SHA384): a client that does not offer it is closed at its ClientHello. Clients' defaults offer it.",
	},
	Soak: []SoakCase{{Name: ScenarioCipherMismatch, Encrypt: "true", Client: LabClient{TLSMax: tls.VersionTLS12},
		Options: map[string]string{"server_ciphers": "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"}, WantErr: soakHandshakeReset}},
}

// cipherRule: the emulated server allows ServerCiphers only.
type cipherRule struct {
	ServerCiphers suiteList `opt:"server_ciphers"`
}

func (p *cipherRule) check(func(string) bool) error {
	if len(p.ServerCiphers) == 0 {
		return keyed("server_ciphers", "required, e.g. TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")
	}
	return nil
}

func (p *cipherRule) conn(float64) scenarioConn { return p }

func (p *cipherRule) decide(st *connRule, ev *proxy.Event, _ *proxy.Record) proxy.Verdict {
	if ev.Phase != proxy.PhaseTLSClientHello {
		return proxy.Verdict{}
	}
	if ev.ClientHello == nil {
		return skip("the ClientHello could not be parsed")
	}
	for _, s := range ev.ClientHello.CipherSuites {
		if slices.Contains(p.ServerCiphers, s) {
			return pass("common suite " + tlsbridge.CipherSuiteName(s))
		}
	}
	return st.close(fmt.Sprintf("none of the client's %d suites is among the server's %s", len(ev.ClientHello.CipherSuites), suiteNames(p.ServerCiphers)))
}

var weakCertHash = &scenario{
	Name:    ScenarioWeakCertHash,
	Probe:   ProbeCertHash,
	Summary: "the server certificate is signed with MD5, SHA-1, SHA-224 or SHA-512 and cannot be used under TLS 1.2",
	Where:   closedAtHello,
	Phase:   proxy.PhaseTLSClientHello,
	Fix:     "re-issue the certificate with SHA-256, or clear it in SQL Server Configuration Manager so the self-signed one is used",
	Options: []Option{
		{Name: "cert_hash", Flag: "cert-hash", Type: OptString, Default: "md5",
			Help: "the emulated certificate's signature `hash`: md5, sha1, sha224 or sha512"},
	},
	rule: func() scenarioRule { return &weakHashRule{CertHash: "md5"} },
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
	Lab: LabSetup{
		Options: map[string]string{"cert_hash": "md5"}, Close: "rst",
		Server: LabServer{TLSMax: tls.VersionTLS12, CertHash: "md5", Desc: "emulator serving a certificate signed with MD5-RSA; rule cert_hash=md5"},
		// After the fix the certificate is re-issued with SHA-256 (the
		// emulator's own), and no rule is needed: a SHA-256 certificate
		// is what every client's signature_algorithms list.
		Fixed:  &LabServer{TLSMax: tls.VersionTLS12, Desc: "emulator serving its certificate signed with SHA256-RSA; no rule"},
		Expect: LabExpect{By: proxy.SideProxy, Kind: proxy.CloseRST, Errors: resetErrors},
		Note: "The emulator serves a certificate signed with MD5; the rule closes at the ClientHello because go-mssqldb " +
			"(Go crypto/tls) lists no RSA/MD5 in signature_algorithms, as Schannel does with a certificate it cannot use under TLS 1.2.",
		ExtNote: "The emulator serves a certificate signed with MD5; the rule closes at the ClientHello because the client lists no RSA/MD5 in signature_algorithms. After the fix the certificate is re-issued with SHA-256.",
		HoldNote: "The emulator serves a certificate signed with MD5-RSA: under TLS 1.2 every client fails at its ClientHello " +
			"(none lists RSA/MD5 in signature_algorithms). The fix is on the server (re-issue with SHA-256), so no client passes here: " +
			"run `tdsproxy lab --scenario " + ScenarioWeakCertHash + "` to see after the fix.",
	},
	Soak: []SoakCase{{Name: ScenarioWeakCertHash, Encrypt: "true", Options: map[string]string{"cert_hash": "md5"}, WantErr: soakHandshakeReset}},
}

// weakHashRule: the emulated certificate is signed with RSA/CertHash.
type weakHashRule struct {
	CertHash certHash `opt:"cert_hash"`
}

func (p *weakHashRule) check(func(string) bool) error { return nil }

func (p *weakHashRule) conn(float64) scenarioConn { return p }

func (p *weakHashRule) decide(st *connRule, ev *proxy.Event, _ *proxy.Record) proxy.Verdict {
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
	want := rsaSchemeFor[string(p.CertHash)]
	if slices.Contains(ch.SignatureAlgorithms, want) || slices.Contains(ch.SignatureAlgorithmsCert, want) {
		return pass("the client accepts " + tlsbridge.SignatureSchemeName(want))
	}
	return st.close(fmt.Sprintf("the emulated certificate is signed with RSA/%s, which the client's signature_algorithms do not list", strings.ToUpper(string(p.CertHash))))
}

// certHash is a certificate signature hash option; empty means md5.
type certHash string

func (h *certHash) UnmarshalText(b []byte) error {
	s := strings.ToLower(strings.TrimSpace(string(b)))
	if s == "" {
		s = "md5"
	}
	if _, ok := rsaSchemeFor[s]; !ok {
		return fmt.Errorf("%q is not md5, sha1, sha224 or sha512", s)
	}
	*h = certHash(s)
	return nil
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
