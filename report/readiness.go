package report

import (
	"fmt"
	"slices"
	"strings"
)

// The changes an operator considers, in the order printed. Names are the
// JSON "change" values.
const (
	ChangeNoTLS10And11 = "disable TLS 1.0 and 1.1"
	ChangeTLS13Only    = "disable TLS 1.2 below 1.3 (strict only)"
	ChangeNoDHE        = "remove TLS_DHE_* suites"
	ChangeNoRSAKex     = "remove TLS_RSA (non-forward-secret) suites"
	ChangeCertSHA256   = "re-issue the certificate with SHA-256"
	ChangeCertSHA512   = "re-issue the certificate with SHA-512"
	ChangeStrictOnly   = "require TDS 8.0 strict"
)

// Changes lists the readiness changes in order.
var Changes = []string{ChangeNoTLS10And11, ChangeTLS13Only, ChangeNoDHE, ChangeNoRSAKex, ChangeCertSHA256, ChangeCertSHA512, ChangeStrictOnly}

// verdict is one client's outcome under one change.
type verdict int

const (
	unaffected verdict = iota
	changes
	breaks
)

// judge says what one change does to one client, and why. It looks only at
// what the client offered and negotiated across its connections, so a
// client seen once with an old configuration counts as that configuration.
func judge(change string, c *clientAgg) (verdict, string) {
	switch change {
	case ChangeNoTLS10And11:
		if !c.tls {
			return unaffected, ""
		}
		if !c.offered.has("TLS 1.2") && !c.offered.has("TLS 1.3") {
			return breaks, "offers only " + strings.Join(sortVersions(c.offered.sorted()), ", ")
		}
		if old := oldVersions(c.negotiated); len(old) > 0 {
			return changes, "negotiated " + strings.Join(old, ", ") + "; also offers TLS 1.2 or later"
		}
	case ChangeTLS13Only:
		// SQL Server has TLS 1.3 only in TDS 8.0 strict (docs/protocol.md):
		// a TLS 1.3-only server leaves TDS 7.x clients nothing.
		if !c.protocols.has("tds8-strict") {
			if !c.tls {
				return breaks, "connects without TLS (PRELOGIN encryption " + strings.Join(c.encryption.sorted(), ", ") + ")"
			}
			return breaks, "connects with TDS 7.x (TLS inside PRELOGIN), which has no TLS 1.3 on SQL Server; offers " + strings.Join(sortVersions(c.offered.sorted()), ", ")
		}
		if !c.offered.has("TLS 1.3") {
			return breaks, "strict, but offers only " + strings.Join(sortVersions(c.offered.sorted()), ", ")
		}
		if c.negotiated.has("TLS 1.2") || c.protocols.has("tds7") {
			return changes, "offers TLS 1.3 in strict mode; negotiated " + strings.Join(sortVersions(c.negotiated.sorted()), ", ") + " or used TDS 7.x on some connections"
		}
	case ChangeNoDHE:
		return suiteChange(c, "TLS_DHE_", "DHE")
	case ChangeNoRSAKex:
		return suiteChange(c, "TLS_RSA_WITH_", "RSA key exchange")
	case ChangeCertSHA256, ChangeCertSHA512:
		return certChange(change, c)
	case ChangeStrictOnly:
		if !c.protocols.has("tds8-strict") {
			return breaks, "connected only with " + strings.Join(c.protocols.sorted(), ", ") + " (PRELOGIN first; strict needs Encrypt=strict and a TDS 8.0 driver)"
		}
		if len(c.protocols) > 1 {
			return changes, "connected both strict and " + strings.Join(slices.DeleteFunc(c.protocols.sorted(), func(p string) bool { return p == "tds8-strict" }), ", ")
		}
	}
	return unaffected, ""
}

func oldVersions(s set) []string {
	var out []string
	for _, v := range []string{"SSL 3.0", "TLS 1.0", "TLS 1.1"} {
		if s.has(v) {
			out = append(out, v)
		}
	}
	return out
}

// tls13Suite: TLS 1.3 suites (RFC 8446 §B.4) are not TLS 1.2 key exchanges
// and survive every suite removal.
func tls13Suite(s string) bool {
	return strings.HasPrefix(s, "TLS_AES_") || strings.HasPrefix(s, "TLS_CHACHA20_")
}

// suiteChange: removing the suites starting with prefix breaks a client all
// of whose TLS 1.0-1.2 suites start with it (unless it uses TLS 1.3, whose
// suites are separate), and changes one that negotiated such a suite.
func suiteChange(c *clientAgg, prefix, what string) (verdict, string) {
	if !c.tls {
		return unaffected, ""
	}
	var left, gone []string
	for s := range c.suitesOffered {
		switch {
		case tls13Suite(s):
		case strings.HasPrefix(s, prefix):
			gone = append(gone, s)
		default:
			left = append(left, s)
		}
	}
	only13 := c.negotiated.has("TLS 1.3") && len(c.negotiated) == 1
	if len(left) == 0 && len(gone) > 0 && !only13 {
		slices.Sort(gone)
		return breaks, fmt.Sprintf("offers only %s suites below TLS 1.3: %s", what, strings.Join(gone, ", "))
	}
	var used []string
	for s := range c.suitesNegotiated {
		if strings.HasPrefix(s, prefix) {
			used = append(used, s)
		}
	}
	if len(used) > 0 {
		slices.Sort(used)
		slices.Sort(left)
		return changes, fmt.Sprintf("negotiated %s; would move to one of its other %d suites", strings.Join(used, ", "), len(left))
	}
	return unaffected, ""
}

// certChange: under TLS 1.2 the server's certificate chain must be signed
// with a hash/signature pair the client lists in signature_algorithms (RFC
// 5246 §7.4.2) or signature_algorithms_cert (RFC 8446 §4.2.3). A client
// that offered no TLS 1.2 sends no list and is not judged on it. SQL
// Server on Windows cannot use a SHA-512-signed certificate under TLS 1.2
// (the weak-cert-hash scenario), so SHA-512 changes every TLS 1.2 client
// into one at risk.
func certChange(change string, c *clientAgg) (verdict, string) {
	if !c.tls || !c.offered.has("TLS 1.2") && !c.offered.has("TLS 1.3") {
		return unaffected, ""
	}
	hash, scheme := "SHA-256", "rsa_pkcs1_sha256"
	if change == ChangeCertSHA512 {
		hash, scheme = "SHA-512", "rsa_pkcs1_sha512"
	}
	if len(c.sigAlgs) > 0 && !c.sigAlgs.has(scheme) && !c.sigAlgs.has(strings.Replace(scheme, "pkcs1", "pss_rsae", 1)) {
		return breaks, fmt.Sprintf("its signature_algorithms do not list %s (%d listed)", scheme, len(c.sigAlgs))
	}
	if change == ChangeCertSHA512 && c.negotiated.has("TLS 1.2") {
		return changes, "negotiates TLS 1.2, under which SQL Server cannot use a SHA-512-signed certificate (weak-cert-hash)"
	}
	if c.weakCert > 0 && change == ChangeCertSHA256 {
		return changes, fmt.Sprintf("met a weak-hash certificate on %d connections (certificates seen: %s); a %s one removes the risk", c.weakCert, strings.Join(c.certAlgs.sorted(), ", "), hash)
	}
	return unaffected, ""
}

func readiness(aggs []*clientAgg) []Readiness {
	out := make([]Readiness, 0, len(Changes))
	for _, ch := range Changes {
		r := Readiness{Change: ch, Breaks: []string{}, Changes: []string{}, Evidence: map[string]string{}}
		for _, c := range aggs {
			v, why := judge(ch, c)
			switch v {
			case breaks:
				r.Breaks = append(r.Breaks, c.ID)
				r.Evidence[c.ID] = why
			case changes:
				r.Changes = append(r.Changes, c.ID)
				r.Evidence[c.ID] = why
			default:
				r.Unaffected++
			}
		}
		out = append(out, r)
	}
	return out
}
