package proxy

import (
	"sync"

	"github.com/tdsproxy/tdsproxy/tlsbridge"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// The record stores names, not numbers: it is read by people and by
// diagnosis, and must not depend on tlsbridge's types.

func clientHelloInfo(ch *tlsbridge.ClientHello) *ClientHelloInfo {
	full, hash := ch.JA3()
	ci := &ClientHelloInfo{
		LegacyVersion:           tlsbridge.VersionName(ch.LegacyVersion),
		SupportedVersions:       names(ch.SupportedVersions, tlsbridge.VersionName),
		HighestVersion:          tlsbridge.VersionName(ch.HighestVersion()),
		CipherSuites:            names(ch.CipherSuites, tlsbridge.CipherSuiteName),
		SNI:                     ch.ServerName,
		ALPN:                    ch.ALPN,
		SignatureAlgorithms:     names(ch.SignatureAlgorithms, tlsbridge.SignatureSchemeName),
		SignatureAlgorithmsCert: names(ch.SignatureAlgorithmsCert, tlsbridge.SignatureSchemeName),
		SupportedGroups:         names(ch.SupportedGroups, tlsbridge.GroupName),
		KeyShareGroups:          names(ch.KeyShareGroups, tlsbridge.GroupName),
		JA3:                     full,
		JA3Hash:                 hash,
		JA4:                     ch.JA4(),
		Length:                  len(ch.Raw),
	}
	for _, e := range ch.Extensions {
		ci.Extensions = append(ci.Extensions, tlsbridge.ExtensionName(e.Type))
	}
	return ci
}

func serverHelloInfo(sh *tlsbridge.ServerHello) *ServerHelloInfo {
	si := &ServerHelloInfo{
		Version:           tlsbridge.VersionName(sh.Version()),
		CipherSuite:       tlsbridge.CipherSuiteName(sh.CipherSuite),
		ALPN:              sh.ALPN,
		HelloRetryRequest: sh.IsHelloRetryRequest(),
	}
	if sh.SelectedGroup != 0 {
		si.SelectedGroup = tlsbridge.GroupName(sh.SelectedGroup)
	}
	for _, e := range sh.Extensions {
		si.Extensions = append(si.Extensions, tlsbridge.ExtensionName(e.Type))
	}
	return si
}

func certificateInfo(cs tlsbridge.CertSummary) CertificateInfo {
	return CertificateInfo{
		Subject:            cs.Subject,
		Issuer:             cs.Issuer,
		SignatureAlgorithm: cs.SignatureAlgorithm,
		SignatureHash:      cs.SignatureHash,
		PublicKey:          cs.PublicKeyType,
		PublicKeyBits:      cs.PublicKeyBits,
		NotBefore:          cs.NotBefore,
		NotAfter:           cs.NotAfter,
		ThumbprintSHA1:     cs.ThumbprintSHA1,
		SelfSigned:         cs.SelfSigned,
		WeakHashRisk:       tlsbridge.CertHashRisk(cs.SignatureHash),
	}
}

func keyExchangeInfo(ske *tlsbridge.ServerKeyExchange) *KeyExchangeInfo {
	ki := &KeyExchangeInfo{Kind: ske.Kind}
	switch {
	case ske.PrimeBits > 0:
		ki.DHPrimeBits = ske.PrimeBits
		if ske.Generator != nil {
			ki.DHGroup = dhe.IdentifyGroup(ske.Prime, ske.Generator.Bytes())
		}
		ki.DHPublicLeadingZero = ske.PublicLeadingZero || ske.PublicShorterThanPrime
	case ske.CurveID != 0:
		ki.Curve = tlsbridge.GroupName(ske.CurveID)
	}
	return ki
}

func names[T any](xs []T, name func(T) string) []string {
	if len(xs) == 0 {
		return nil
	}
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = name(x)
	}
	return out
}

// certCache keeps the summaries of the certificates the proxy has seen,
// keyed by their DER: a server presents the same chain on every
// connection, and summarising it (SHA-1 thumbprint, names, dates) was the
// largest parsing cost per login (BENCHMARKS.md). Bounded: when full it
// starts over, so a server rotating through certificates costs at most
// what no cache would.
var certCache = struct {
	sync.Mutex
	m map[string]tlsbridge.CertSummary
}{m: map[string]tlsbridge.CertSummary{}}

const certCacheMax = 64

func summarizeCertificate(der []byte) (tlsbridge.CertSummary, error) {
	certCache.Lock()
	cs, ok := certCache.m[string(der)]
	certCache.Unlock()
	if ok {
		return cs, nil
	}
	cs, err := tlsbridge.SummarizeCertificate(der)
	if err != nil {
		return cs, err
	}
	certCache.Lock()
	if len(certCache.m) >= certCacheMax {
		clear(certCache.m)
	}
	certCache.m[string(der)] = cs
	certCache.Unlock()
	return cs, nil
}
