package probe

import (
	"context"
	"crypto/x509"
	"slices"
	"time"

	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// expiringWindow is how close to NotAfter a certificate counts as expiring.
const expiringWindow = 30 * 24 * time.Hour

// certificates describes a chain, leaf first. tlsbridge parses the ASN.1
// itself, so MD5 and SHA-224 signatures (which crypto/x509 cannot verify)
// are still named; the host-name check uses crypto/x509, which parses
// such certificates even if it would not verify them.
func (p *prober) certificates(chain [][]byte) []CertResult {
	out := []CertResult{}
	now := p.now()
	for i, der := range chain {
		sum, err := tlsbridge.SummarizeCertificate(der)
		if err != nil {
			p.note("certificate %d: %v", i, err)
			continue
		}
		c := CertResult{
			Subject:            sum.Subject,
			Issuer:             sum.Issuer,
			SignatureAlgorithm: sum.SignatureAlgorithm,
			SignatureHash:      sum.SignatureHash,
			ThumbprintSHA1:     sum.ThumbprintSHA1,
			KeyType:            sum.PublicKeyType,
			KeyBits:            sum.PublicKeyBits,
			NotBefore:          sum.NotBefore.UTC().Format(time.RFC3339),
			NotAfter:           sum.NotAfter.UTC().Format(time.RFC3339),
			Expired:            now.After(sum.NotAfter) || now.Before(sum.NotBefore),
			SelfSigned:         sum.SelfSigned,
		}
		c.ExpiresSoon = !c.Expired && sum.NotAfter.Sub(now) < expiringWindow
		// A self-signed certificate that is not the leaf is a trust
		// anchor: clients do not check its own signature (RFC 5280 §6.1).
		c.WeakHash = tlsbridge.CertHashRisk(sum.SignatureHash) && (i == 0 || !sum.SelfSigned)
		if i == 0 {
			match := false
			if xc, err := x509.ParseCertificate(der); err == nil {
				match = xc.VerifyHostname(p.host) == nil
			}
			c.HostNameMatch = &match
		}
		out = append(out, c)
	}
	return out
}

// mustList names the RSA schemes a TLS 1.2 client must list in
// signature_algorithms (or signature_algorithms_cert) for the chain to be
// usable (RFC 5246 §7.4.2, RFC 8446 §4.2.3).
func mustList(certs []CertResult) []string {
	out := []string{}
	for i, c := range certs {
		if i > 0 && c.SelfSigned {
			continue
		}
		for _, h := range rsaHashSchemes {
			if h.hash == c.SignatureHash {
				n := tlsbridge.SignatureSchemeName(h.scheme)
				if !slices.Contains(out, n) {
					out = append(out, n)
				}
			}
		}
	}
	return out
}

// sigAlgProbe is the answers to TLS 1.2 hellos listing one hash each.
type sigAlgProbe struct {
	tested   bool
	accepted []string
	refused  []string
}

// sigAlgs sends, per RSA PKCS #1 hash, a TLS 1.2 hello whose
// signature_algorithms lists only that scheme: the hashes the server can
// live with. (A Go or OpenSSL server looks at the scheme for its key
// exchange signature; Schannel also at the chain's signatures.)
func (p *prober) sigAlgs(ctx context.Context, m mode) sigAlgProbe {
	r := sigAlgProbe{tested: true}
	type res struct {
		name string
		ok   bool
	}
	out := make([]res, len(rsaHashSchemes))
	done := make(chan struct{}, len(rsaHashSchemes))
	for i, h := range rsaHashSchemes {
		go func() {
			defer func() { done <- struct{}{} }()
			a := p.hello(ctx, m, helloSpec{Versions: []uint16{tlsbridge.VersionTLS12}, Suites: suitesFor(tlsbridge.VersionTLS12), SigAlgs: []uint16{h.scheme}})
			out[i] = res{tlsbridge.SignatureSchemeName(h.scheme), a.accepted() && a.Done}
		}()
	}
	for range rsaHashSchemes {
		<-done
	}
	for _, x := range out {
		if x.ok {
			r.accepted = append(r.accepted, x.name)
		} else {
			r.refused = append(r.refused, x.name)
		}
	}
	p.progress("signature algorithms alone under TLS 1.2: accepted %v, refused %v", r.accepted, r.refused)
	return r
}

func (s sigAlgProbe) result(m mode) SigAlgResult {
	r := SigAlgResult{AcceptedAlone: []string{}, RefusedAlone: []string{}}
	if !s.tested {
		return r
	}
	r.Tested = "TLS 1.2 " + m.String()
	r.AcceptedAlone = append(r.AcceptedAlone, s.accepted...)
	r.RefusedAlone = append(r.RefusedAlone, s.refused...)
	return r
}
