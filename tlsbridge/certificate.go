package tlsbridge

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// CertificateEntry is one certificate of a Certificate message. In TLS 1.3
// each entry carries its own extensions (RFC 8446 §4.4.2); before that
// the field is nil.
type CertificateEntry struct {
	Data       []byte // the DER certificate; aliases Raw
	Extensions []Extension
}

// CertificateMsg is a parsed Certificate handshake message.
type CertificateMsg struct {
	Raw            []byte // the whole handshake message, 4-byte header included
	RequestContext []byte // TLS 1.3 certificate_request_context; empty for a server
	Entries        []CertificateEntry
	Chain          [][]byte // the DER certificates, leaf first; alias Raw
}

// ParseCertificateMsg parses raw, a complete Certificate handshake message
// including its 4-byte header. tls13 selects the TLS 1.3 form, with a
// request context and per-entry extensions (RFC 8446 §4.4.2); otherwise the
// TLS 1.0-1.2 form, a plain list of certificates (RFC 5246 §7.4.2).
// The certificates themselves are not parsed (see SummarizeCertificate).
// An empty chain is valid on the wire (a client declining to authenticate).
func ParseCertificateMsg(raw []byte, tls13 bool) (*CertificateMsg, error) {
	s, err := handshakeBody(raw, HandshakeCertificate)
	if err != nil {
		return nil, err
	}
	const msg = "Certificate"
	m := &CertificateMsg{Raw: raw}
	if tls13 {
		var ctx cryptobyte.String
		if !s.ReadUint8LengthPrefixed(&ctx) {
			return nil, fmt.Errorf("tlsbridge: %s: certificate_request_context: %w", msg, ErrMalformed)
		}
		m.RequestContext = ctx
	}
	var list cryptobyte.String
	if !s.ReadUint24LengthPrefixed(&list) {
		return nil, fmt.Errorf("tlsbridge: %s: certificate_list: %w", msg, ErrMalformed)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("tlsbridge: %s: %d bytes after certificate_list: %w", msg, len(s), ErrMalformed)
	}
	for !list.Empty() {
		var e CertificateEntry
		var cert cryptobyte.String
		if !list.ReadUint24LengthPrefixed(&cert) || cert.Empty() {
			return nil, fmt.Errorf("tlsbridge: %s: certificate #%d: %w", msg, len(m.Entries)+1, ErrMalformed)
		}
		e.Data = cert
		if tls13 {
			var exts cryptobyte.String
			if !list.ReadUint16LengthPrefixed(&exts) {
				return nil, fmt.Errorf("tlsbridge: %s: extensions of certificate #%d: %w", msg, len(m.Entries)+1, ErrMalformed)
			}
			for !exts.Empty() {
				var t uint16
				var d cryptobyte.String
				if !exts.ReadUint16(&t) || !exts.ReadUint16LengthPrefixed(&d) {
					return nil, fmt.Errorf("tlsbridge: %s: extensions of certificate #%d: %w", msg, len(m.Entries)+1, ErrMalformed)
				}
				e.Extensions = append(e.Extensions, Extension{Type: t, Data: d})
			}
		}
		m.Entries = append(m.Entries, e)
		m.Chain = append(m.Chain, e.Data)
	}
	return m, nil
}

// CertSummary is what a connection record keeps about a certificate.
type CertSummary struct {
	Subject string // RFC 2253-style, as crypto/x509/pkix prints it
	Issuer  string
	// SignatureAlgorithm names the algorithm the issuer signed with:
	// "MD2-RSA", "MD5-RSA", "SHA1-RSA", "SHA224-RSA", "SHA256-RSA",
	// "SHA384-RSA", "SHA512-RSA", "RSASSA-PSS", "ECDSA-SHA1",
	// "ECDSA-SHA224" ... "ECDSA-SHA512", "DSA-SHA1", "DSA-SHA224",
	// "DSA-SHA256", "Ed25519", "Ed448", or the dotted OID when unknown.
	SignatureAlgorithm string
	// SignatureHash is the digest of that signature: "md2", "md5", "sha1",
	// "sha224", "sha256", "sha384", "sha512", or "" (Ed25519, unknown).
	// For RSASSA-PSS it comes from the parameters (default sha1).
	SignatureHash string
	// PublicKeyType is "RSA", "ECDSA", "Ed25519", "Ed448", "DSA", or the
	// dotted OID of an unknown key algorithm.
	PublicKeyType string
	// PublicKeyBits is the RSA modulus or DSA prime size, the curve size
	// for ECDSA (256, 384, 521), 256 for Ed25519, 456 for Ed448; 0 if unknown.
	PublicKeyBits     int
	NotBefore         time.Time
	NotAfter          time.Time
	ThumbprintSHA1    string // SHA-1 of the DER, upper-case hex, as SQL Server's error log prints "Cert Hash(sha1)"
	SelfSigned        bool   // issuer and subject names are byte-for-byte equal
	SerialNumber      string // decimal
	SignatureAlgOID   string // dotted OID of the outer signatureAlgorithm
	PublicKeyCurveOID string // ECDSA only: dotted OID of the named curve
}

// OIDs for signature and key algorithms (RFC 3279, RFC 4055, RFC 5758,
// RFC 8410).
var (
	oidSigMD2RSA       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 2}
	oidSigMD5RSA       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 4}
	oidSigSHA1RSA      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSigPSS          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidSigSHA256RSA    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSigSHA384RSA    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSigSHA512RSA    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidSigSHA224RSA    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 14}
	oidSigSHA1RSAOIW   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 29}
	oidSigECDSASHA1    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	oidSigECDSASHA224  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 1}
	oidSigECDSASHA256  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidSigECDSASHA384  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidSigECDSASHA512  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidSigDSASHA1      = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 3}
	oidSigDSASHA224    = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 1}
	oidSigDSASHA256    = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 2}
	oidEd25519         = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidEd448           = asn1.ObjectIdentifier{1, 3, 101, 113}
	oidKeyRSA          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidKeyECDSA        = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidKeyDSA          = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}
	oidHashMD5         = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}
	oidHashSHA1        = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidHashSHA256      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidHashSHA384      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidHashSHA512      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	oidHashSHA224      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}
	oidCurveP224       = asn1.ObjectIdentifier{1, 3, 132, 0, 33}
	oidCurveP256       = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidCurveP384       = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidCurveP521       = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
	oidCurveSecp256k1  = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
	oidCurveBrainpool1 = asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 7}  // brainpoolP256r1
	oidCurveBrainpool2 = asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 11} // brainpoolP384r1
	oidCurveBrainpool3 = asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 13} // brainpoolP512r1
)

// sigAlgs maps a signatureAlgorithm OID to its name and digest. PSS is
// handled apart: its digest is in the parameters.
var sigAlgs = []struct {
	oid  asn1.ObjectIdentifier
	name string
	hash string
}{
	{oidSigMD2RSA, "MD2-RSA", "md2"},
	{oidSigMD5RSA, "MD5-RSA", "md5"},
	{oidSigSHA1RSA, "SHA1-RSA", "sha1"},
	{oidSigSHA1RSAOIW, "SHA1-RSA", "sha1"},
	{oidSigSHA224RSA, "SHA224-RSA", "sha224"},
	{oidSigSHA256RSA, "SHA256-RSA", "sha256"},
	{oidSigSHA384RSA, "SHA384-RSA", "sha384"},
	{oidSigSHA512RSA, "SHA512-RSA", "sha512"},
	{oidSigECDSASHA1, "ECDSA-SHA1", "sha1"},
	{oidSigECDSASHA224, "ECDSA-SHA224", "sha224"},
	{oidSigECDSASHA256, "ECDSA-SHA256", "sha256"},
	{oidSigECDSASHA384, "ECDSA-SHA384", "sha384"},
	{oidSigECDSASHA512, "ECDSA-SHA512", "sha512"},
	{oidSigDSASHA1, "DSA-SHA1", "sha1"},
	{oidSigDSASHA224, "DSA-SHA224", "sha224"},
	{oidSigDSASHA256, "DSA-SHA256", "sha256"},
	{oidEd25519, "Ed25519", ""},
	{oidEd448, "Ed448", ""},
}

var hashOIDs = []struct {
	oid  asn1.ObjectIdentifier
	name string
}{
	{oidHashMD5, "md5"}, {oidHashSHA1, "sha1"}, {oidHashSHA224, "sha224"},
	{oidHashSHA256, "sha256"}, {oidHashSHA384, "sha384"}, {oidHashSHA512, "sha512"},
}

var curveBits = []struct {
	oid  asn1.ObjectIdentifier
	bits int
}{
	{oidCurveP224, 224}, {oidCurveP256, 256}, {oidCurveP384, 384}, {oidCurveP521, 521},
	{oidCurveSecp256k1, 256}, {oidCurveBrainpool1, 256}, {oidCurveBrainpool2, 384}, {oidCurveBrainpool3, 512},
}

// SignatureAlgorithmOf names the signature algorithm and digest of an
// AlgorithmIdentifier given as its OID and DER parameters (the parameters
// matter only for RSASSA-PSS, RFC 4055 §3.1). An unknown OID yields its
// dotted form and "".
func SignatureAlgorithmOf(oid asn1.ObjectIdentifier, params []byte) (name, hash string) {
	if oid.Equal(oidSigPSS) {
		return "RSASSA-PSS", pssHash(params)
	}
	for _, a := range sigAlgs {
		if oid.Equal(a.oid) {
			return a.name, a.hash
		}
	}
	return oid.String(), ""
}

// pssHash reads hashAlgorithm from RSASSA-PSS-params (RFC 4055 §3.1):
// SEQUENCE { [0] EXPLICIT AlgorithmIdentifier DEFAULT sha1, ... }.
func pssHash(params []byte) string {
	s := cryptobyte.String(params)
	var seq, h, alg cryptobyte.String
	var present bool
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) ||
		!seq.ReadOptionalASN1(&h, &present, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return ""
	}
	if !present {
		return "sha1"
	}
	var oid asn1.ObjectIdentifier
	if !h.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
		return ""
	}
	for _, x := range hashOIDs {
		if oid.Equal(x.oid) {
			return x.name
		}
	}
	return ""
}

// CertHashRisk reports whether a certificate signed with this digest (as
// CertSummary.SignatureHash names it) is the risk of scenario 4 of the
// 10054 article: SQL Server's TLS 1.2 handshake cannot use a certificate
// signed with MD5, SHA-1, SHA-224 or SHA-512 when the client does not
// offer that hash in signature_algorithms, and Schannel then closes the
// connection instead of answering. MD2 counts too.
func CertHashRisk(hash string) bool {
	switch strings.ToLower(hash) {
	case "md2", "md5", "sha1", "sha224", "sha512":
		return true
	}
	return false
}

// SummarizeCertificate reads a DER certificate. It parses the ASN.1 itself
// (RFC 5280 §4.1) rather than through crypto/x509, so that certificates
// crypto/x509 rejects or half-understands (SHA-224 or MD5 signatures,
// odd keys) are still described correctly. Only the outer structure, the
// names, the validity and the key algorithm must parse; an unparseable
// key leaves PublicKeyBits at 0.
func SummarizeCertificate(der []byte) (CertSummary, error) {
	var sum CertSummary
	fail := func(what string) (CertSummary, error) {
		return CertSummary{}, fmt.Errorf("tlsbridge: certificate: %s: %w", what, ErrMalformed)
	}
	input := cryptobyte.String(der)
	var cert, tbs, sigAlg cryptobyte.String
	if !input.ReadASN1(&cert, cbasn1.SEQUENCE) || !input.Empty() {
		return fail("outer SEQUENCE")
	}
	if !cert.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return fail("tbsCertificate")
	}
	if !cert.ReadASN1(&sigAlg, cbasn1.SEQUENCE) {
		return fail("signatureAlgorithm")
	}
	oid, params, ok := readAlgorithmIdentifier(sigAlg)
	if !ok {
		return fail("signatureAlgorithm OID")
	}
	sum.SignatureAlgOID = oid.String()
	sum.SignatureAlgorithm, sum.SignatureHash = SignatureAlgorithmOf(oid, params)
	digest := sha1.Sum(der)
	sum.ThumbprintSHA1 = strings.ToUpper(hex.EncodeToString(digest[:]))

	// TBSCertificate ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1,
	//   serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ... }
	if !tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return fail("version")
	}
	serial := new(big.Int)
	var serialRaw cryptobyte.String
	if !tbs.ReadASN1(&serialRaw, cbasn1.INTEGER) {
		return fail("serialNumber")
	}
	// Serial numbers are often negative or zero-padded in the wild; read
	// the magnitude rather than insisting on canonical DER.
	serial.SetBytes(serialRaw)
	sum.SerialNumber = serial.String()
	var issuer, subject, validity, spki cryptobyte.String
	if !tbs.SkipASN1(cbasn1.SEQUENCE) {
		return fail("tbsCertificate signature")
	}
	if !tbs.ReadASN1Element(&issuer, cbasn1.SEQUENCE) {
		return fail("issuer")
	}
	if !tbs.ReadASN1(&validity, cbasn1.SEQUENCE) {
		return fail("validity")
	}
	if !tbs.ReadASN1Element(&subject, cbasn1.SEQUENCE) {
		return fail("subject")
	}
	if !tbs.ReadASN1(&spki, cbasn1.SEQUENCE) {
		return fail("subjectPublicKeyInfo")
	}
	var err error
	if sum.NotBefore, err = readTime(&validity); err != nil {
		return fail("notBefore")
	}
	if sum.NotAfter, err = readTime(&validity); err != nil {
		return fail("notAfter")
	}
	var ok1, ok2 bool
	sum.Issuer, ok1 = nameString(issuer)
	sum.Subject, ok2 = nameString(subject)
	if !ok1 || !ok2 {
		return fail("issuer or subject name")
	}
	sum.SelfSigned = bytes.Equal(issuer, subject)

	var keyAlg cryptobyte.String
	var key asn1.BitString
	if !spki.ReadASN1(&keyAlg, cbasn1.SEQUENCE) || !spki.ReadASN1BitString(&key) {
		return fail("subjectPublicKeyInfo")
	}
	keyOID, keyParams, ok := readAlgorithmIdentifier(keyAlg)
	if !ok {
		return fail("public key algorithm")
	}
	summarizeKey(&sum, keyOID, keyParams, key.RightAlign())
	return sum, nil
}

// readAlgorithmIdentifier reads the contents of an AlgorithmIdentifier
// SEQUENCE: the OID and the raw parameters element (nil if absent).
func readAlgorithmIdentifier(s cryptobyte.String) (asn1.ObjectIdentifier, []byte, bool) {
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1ObjectIdentifier(&oid) {
		return nil, nil, false
	}
	return oid, s, true
}

// readTime reads a UTCTime or GeneralizedTime (RFC 5280 §4.1.2.5).
func readTime(s *cryptobyte.String) (time.Time, error) {
	var t time.Time
	switch {
	case s.PeekASN1Tag(cbasn1.UTCTime):
		if !s.ReadASN1UTCTime(&t) {
			return t, ErrMalformed
		}
	case s.PeekASN1Tag(cbasn1.GeneralizedTime):
		if !s.ReadASN1GeneralizedTime(&t) {
			return t, ErrMalformed
		}
	default:
		return t, ErrMalformed
	}
	return t, nil
}

// nameString renders a DER Name the way crypto/x509 does (pkix.Name.String).
func nameString(der []byte) (string, bool) {
	var rdns pkix.RDNSequence
	rest, err := asn1.Unmarshal(der, &rdns)
	if err != nil || len(rest) != 0 {
		return "", false
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdns)
	return n.String(), true
}

// summarizeKey fills the key fields from a SubjectPublicKeyInfo.
func summarizeKey(sum *CertSummary, oid asn1.ObjectIdentifier, params, key []byte) {
	switch {
	case oid.Equal(oidKeyRSA), oid.Equal(oidSigPSS):
		// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 §A.1.1).
		sum.PublicKeyType = "RSA"
		s := cryptobyte.String(key)
		var seq, mod cryptobyte.String
		if s.ReadASN1(&seq, cbasn1.SEQUENCE) && seq.ReadASN1(&mod, cbasn1.INTEGER) {
			sum.PublicKeyBits = new(big.Int).SetBytes(mod).BitLen()
		}
	case oid.Equal(oidKeyECDSA):
		sum.PublicKeyType = "ECDSA"
		s := cryptobyte.String(params)
		var curve asn1.ObjectIdentifier
		if s.ReadASN1ObjectIdentifier(&curve) {
			sum.PublicKeyCurveOID = curve.String()
			for _, c := range curveBits {
				if curve.Equal(c.oid) {
					sum.PublicKeyBits = c.bits
				}
			}
		}
	case oid.Equal(oidEd25519):
		sum.PublicKeyType, sum.PublicKeyBits = "Ed25519", 256
	case oid.Equal(oidEd448):
		sum.PublicKeyType, sum.PublicKeyBits = "Ed448", 456
	case oid.Equal(oidKeyDSA):
		// Dss-Parms ::= SEQUENCE { p INTEGER, q INTEGER, g INTEGER } (RFC 3279 §2.3.2).
		sum.PublicKeyType = "DSA"
		s := cryptobyte.String(params)
		var seq, p cryptobyte.String
		if s.ReadASN1(&seq, cbasn1.SEQUENCE) && seq.ReadASN1(&p, cbasn1.INTEGER) {
			sum.PublicKeyBits = new(big.Int).SetBytes(p).BitLen()
		}
	default:
		sum.PublicKeyType = oid.String()
	}
}
