package dhe

import (
	"crypto/sha256"
	"crypto/sha512"
	"hash"
)

// The TLS_DHE_RSA cipher suites the engine implements (IANA "TLS Cipher
// Suites"; RFC 5246 Appendix A.5, RFC 5288 §3).
const (
	TLS_DHE_RSA_WITH_AES_128_CBC_SHA    uint16 = 0x0033 // RFC 5246 A.5
	TLS_DHE_RSA_WITH_AES_256_CBC_SHA    uint16 = 0x0039 // RFC 5246 A.5
	TLS_DHE_RSA_WITH_AES_128_CBC_SHA256 uint16 = 0x0067 // RFC 5246 A.5
	TLS_DHE_RSA_WITH_AES_256_CBC_SHA256 uint16 = 0x006B // RFC 5246 A.5
	TLS_DHE_RSA_WITH_AES_128_GCM_SHA256 uint16 = 0x009E // RFC 5288 §3
	TLS_DHE_RSA_WITH_AES_256_GCM_SHA384 uint16 = 0x009F // RFC 5288 §3
)

// scsvRenegotiation is TLS_EMPTY_RENEGOTIATION_INFO_SCSV (RFC 5746 §3.3).
const scsvRenegotiation uint16 = 0x00FF

// suite describes one cipher suite's record protection and PRF.
type suite struct {
	id      uint16
	name    string
	keyLen  int
	macLen  int // 0 for AEAD
	ivLen   int // fixed IV bytes from the key block: 4 for GCM (RFC 5288 §3), 16 for CBC (TLS 1.0 only)
	aead    bool
	tls12   bool             // only defined for TLS 1.2 (GCM, SHA-256 MAC)
	macHash func() hash.Hash // CBC: the HMAC hash
	prfHash func() hash.Hash // TLS 1.2 PRF hash (RFC 5246 §5; RFC 5288 §3 for SHA-384)
}

// suites in the server's order of preference: AEAD first, as OpenSSL and
// Schannel order them.
var suites = []*suite{
	{id: TLS_DHE_RSA_WITH_AES_128_GCM_SHA256, name: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", keyLen: 16, ivLen: 4, aead: true, tls12: true, prfHash: sha256.New},
	{id: TLS_DHE_RSA_WITH_AES_256_GCM_SHA384, name: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", keyLen: 32, ivLen: 4, aead: true, tls12: true, prfHash: sha512.New384},
	{id: TLS_DHE_RSA_WITH_AES_128_CBC_SHA256, name: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", keyLen: 16, macLen: 32, ivLen: 16, tls12: true, macHash: sha256.New, prfHash: sha256.New},
	{id: TLS_DHE_RSA_WITH_AES_256_CBC_SHA256, name: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", keyLen: 32, macLen: 32, ivLen: 16, tls12: true, macHash: sha256.New, prfHash: sha256.New},
	{id: TLS_DHE_RSA_WITH_AES_128_CBC_SHA, name: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", keyLen: 16, macLen: 20, ivLen: 16, macHash: sha1New, prfHash: sha256.New},
	{id: TLS_DHE_RSA_WITH_AES_256_CBC_SHA, name: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", keyLen: 32, macLen: 20, ivLen: 16, macHash: sha1New, prfHash: sha256.New},
}

func suiteByID(id uint16) *suite {
	for _, s := range suites {
		if s.id == id {
			return s
		}
	}
	return nil
}

// CipherSuites returns the IDs of the suites the engine implements, in
// its default order of preference.
func CipherSuites() []uint16 {
	ids := make([]uint16, len(suites))
	for i, s := range suites {
		ids[i] = s.id
	}
	return ids
}

// CipherSuiteName returns the IANA name of a suite the engine implements,
// or "" for any other ID.
func CipherSuiteName(id uint16) string {
	if s := suiteByID(id); s != nil {
		return s.name
	}
	return ""
}

// IsDHESuite reports whether id is one of the engine's suites.
func IsDHESuite(id uint16) bool { return suiteByID(id) != nil }

// usable reports whether the suite can be used at that version.
func (s *suite) usable(version uint16) bool {
	return !s.tls12 || version >= VersionTLS12
}
