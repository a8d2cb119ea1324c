package tlsbridge

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
)

// ServerPolicy configures the client-facing TLS server of a bridged
// connection: the protocol-mismatch, cipher-mismatch and weak-cert-hash
// scenarios set it, and then the handshake itself decides (docs/bridge.md).
// The zero value allows TLS 1.0 to 1.3, Go's default suites and a SHA-256
// certificate.
type ServerPolicy struct {
	// Versions the client leg allows; nil means TLS 1.0 to 1.3.
	Versions []uint16
	// CipherSuites for TLS 1.0-1.2; nil means Go's defaults. Go cannot
	// restrict TLS 1.3 suites, so a list without any TLS 1.2-or-lower
	// suite a client offers fails only when 1.3 is not allowed.
	CipherSuites []uint16
	// CertHash signs the certificate the client sees: md5, sha1, sha224,
	// sha256 (""), sha384 or sha512, always with RSA.
	CertHash string
	// Alert closes a failed handshake with the TLS stack's own alert;
	// false (the default, "rst") closes with a TCP reset and no alert,
	// as Schannel does.
	Alert bool
	// Scenario names the rule that set the policy, for the report.
	Scenario string
	// DHE, when set, answers a client that offers one of its suites with
	// a DHE server instead of crypto/tls, which has no DHE (the
	// dhe-enabled and dhe-leading-zero scenarios; docs/dhe.md).
	DHE *DHELeg
}

// DHELeg is a client-leg TLS server for TLS_DHE_RSA: the DHE engine
// (tlsbridge/dhe, which imports this package, so its user supplies it).
type DHELeg struct {
	// Suites are the DHE suites Server implements; a ClientHello that
	// offers one of them meets Server.
	Suites []uint16
	// Server returns the server on transport, showing cert; strict sets
	// ALPN tds/8.0; keyLog, when set, receives its secrets (NSS format).
	Server func(transport net.Conn, cert tls.Certificate, strict bool, keyLog io.Writer) DHEConn
	// Desc describes the server for the report, e.g. "DHE engine,
	// ffdhe2048, Z padded".
	Desc string
	// Fail is how the server closes when the client's Finished fails:
	// "rst", "fin" or "alert".
	Fail string
}

// DHEConn is a DHE server conn of a DHELeg.
type DHEConn interface {
	net.Conn
	Handshake() error
	// State is what the handshake agreed, as far as it got.
	State() DHEState
}

// DHEState is a DHE handshake's outcome, for the report and the record.
type DHEState struct {
	Version, CipherSuite uint16
	ALPN                 string
	Group                string // a built-in group's name, or "custom"
	PrimeBits            int
	// ZLeadingZero: the shared secret started with a zero byte, where a
	// peer that encodes it the other way computes another master secret.
	ZLeadingZero bool
	// FinishedFailed: the client's Finished did not decrypt (the
	// leading-zero mismatch), and the server closed.
	FinishedFailed bool
}

// offers reports whether ch offers one of d's suites.
func (d *DHELeg) offers(ch *ClientHello) bool {
	return d != nil && ch != nil && slices.ContainsFunc(ch.CipherSuites, func(s uint16) bool { return slices.Contains(d.Suites, s) })
}

func (p *ServerPolicy) versionRange() (lo, hi uint16) {
	if p == nil || len(p.Versions) == 0 {
		return tls.VersionTLS10, tls.VersionTLS13
	}
	return slices.Min(p.Versions), slices.Max(p.Versions)
}

// rsaSchemes maps a certificate hash to the RSA PKCS #1 v1.5 signature
// scheme a client must list to accept it (RFC 5246 §7.4.1.4.1 hash and
// signature codes; RFC 8446 §4.2.3).
var rsaSchemes = map[string]uint16{
	"md5": 0x0101, "sha1": 0x0201, "sha224": 0x0301, "sha256": 0x0401, "sha384": 0x0501, "sha512": 0x0601,
}

// CertHashRefusal applies Schannel's certificate rule to a ClientHello:
// under TLS 1.2 the server certificate must be signed with a hash and
// signature pair the client lists in signature_algorithms (RFC 5246
// §7.4.2), or in signature_algorithms_cert (RFC 8446 §4.2.3); a client
// that sends neither accepts only SHA-1 (RFC 5246 §7.4.1.4.1). It returns
// why the server must close, or "" when the certificate is usable. Go's
// TLS server does not check this (it signs the handshake, not the
// certificate), so the bridge checks it itself.
func CertHashRefusal(ch *ClientHello, hash string) string {
	hash = strings.ToLower(hash)
	if hash == "" || ch == nil {
		return ""
	}
	want, ok := rsaSchemes[hash]
	if !ok {
		return ""
	}
	if ch.HighestVersion() < tls.VersionTLS12 {
		return "" // TLS 1.0/1.1 have no signature_algorithms: the certificate is not checked
	}
	if len(ch.SignatureAlgorithms) == 0 && len(ch.SignatureAlgorithmsCert) == 0 {
		if hash == "sha1" {
			return ""
		}
		return fmt.Sprintf("the certificate is signed with RSA/%s and the client sends no signature_algorithms (SHA-1 only)", strings.ToUpper(hash))
	}
	if slices.Contains(ch.SignatureAlgorithms, want) || slices.Contains(ch.SignatureAlgorithmsCert, want) {
		return ""
	}
	return fmt.Sprintf("the certificate is signed with RSA/%s, which the client's signature_algorithms do not list", strings.ToUpper(hash))
}

// PolicyRefusal says whether crypto/tls, configured by p, will refuse ch
// (no common version, or no common suite), so that the upstream is not
// bothered with a connection the client leg is about to fail. The
// handshake still decides: the refusal only skips the upstream leg.
func PolicyRefusal(p *ServerPolicy, ch *ClientHello) string {
	if p == nil || ch == nil {
		return ""
	}
	lo, hi := p.versionRange()
	var common []uint16
	for _, v := range ch.OfferedVersions() {
		if v >= lo && v <= hi && (len(p.Versions) == 0 || slices.Contains(p.Versions, v)) {
			common = append(common, v)
		}
	}
	if len(common) == 0 {
		return "no TLS version in common with the client leg's policy"
	}
	if len(p.CipherSuites) > 0 && slices.Max(common) < tls.VersionTLS13 &&
		!slices.ContainsFunc(ch.CipherSuites, func(s uint16) bool { return slices.Contains(p.CipherSuites, s) }) {
		return "no cipher suite in common with the client leg's policy"
	}
	return ""
}
