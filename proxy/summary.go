package proxy

import (
	"encoding/binary"
	"sync"

	"github.com/tdsproxy/tdsproxy/tlsbridge"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// The record stores names, not numbers: it is read by people and by
// diagnosis, and must not depend on tlsbridge's types.

// clientHelloInfo summarises a hello for the record. A client library sends
// the same lists on every login, so the rendered summary (JA3, JA4 and the
// name lists: ≈ 6% of the proxy's CPU per login in BENCHMARKS.md) is kept
// per distinct content and rendered once; only the length is the hello's own.
func clientHelloInfo(ch *tlsbridge.ClientHello) *ClientHelloInfo {
	var kb [512]byte
	key := helloKey(kb[:0], ch)
	helloCache.Lock()
	cached := helloCache.m[string(key)]
	helloCache.Unlock()
	if cached == nil {
		cached = renderClientHelloInfo(ch)
		helloCache.Lock()
		if len(helloCache.m) >= helloCacheMax {
			clear(helloCache.m)
		}
		helloCache.m[string(key)] = cached
		helloCache.Unlock()
	}
	ci := *cached // the slices are shared and never written
	ci.Length = len(ch.Raw)
	return &ci
}

// helloCache holds rendered hello summaries by helloKey; bounded like
// certCache (a client that varies its hello per connection, GREASE for
// one, costs at most what no cache would).
var helloCache = struct {
	sync.Mutex
	m map[string]*ClientHelloInfo
}{m: map[string]*ClientHelloInfo{}}

const helloCacheMax = 256

// helloKey appends to b every field of ch that renderClientHelloInfo reads
// (and JA3 and JA4 read), each list with its length: two hellos with the
// same key have the same summary but for Length.
func helloKey(b []byte, ch *tlsbridge.ClientHello) []byte {
	u16s := func(b []byte, vs []uint16) []byte {
		b = binary.BigEndian.AppendUint16(b, uint16(len(vs)))
		for _, v := range vs {
			b = binary.BigEndian.AppendUint16(b, v)
		}
		return b
	}
	str := func(b []byte, s string) []byte {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		return append(b, s...)
	}
	b = binary.BigEndian.AppendUint16(b, ch.LegacyVersion)
	b = u16s(b, ch.CipherSuites)
	b = binary.BigEndian.AppendUint16(b, uint16(len(ch.Extensions)))
	for _, e := range ch.Extensions {
		b = binary.BigEndian.AppendUint16(b, e.Type)
	}
	b = u16s(b, ch.SupportedVersions)
	b = u16s(b, ch.SignatureAlgorithms)
	b = u16s(b, ch.SignatureAlgorithmsCert)
	b = u16s(b, ch.SupportedGroups)
	b = u16s(b, ch.KeyShareGroups)
	b = binary.BigEndian.AppendUint16(b, uint16(len(ch.ECPointFormats)))
	b = append(b, ch.ECPointFormats...)
	b = str(b, ch.ServerName)
	b = binary.BigEndian.AppendUint16(b, uint16(len(ch.ALPN)))
	for _, a := range ch.ALPN {
		b = str(b, a)
	}
	return b
}

func renderClientHelloInfo(ch *tlsbridge.ClientHello) *ClientHelloInfo {
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
	if len(sh.Extensions) > 0 {
		si.Extensions = make([]string, 0, len(sh.Extensions))
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
