package tlsbridge

import (
	"crypto"
	_ "crypto/md5" // registers crypto.MD5 for re-signing
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha256" // registers crypto.SHA224
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// CertOptions describes a certificate for GenerateCertificate. The zero
// value gives a self-signed RSA-2048 SHA-256 server certificate for
// "localhost", valid from an hour ago for a year.
type CertOptions struct {
	CommonName string // subject CN; "" means "localhost"
	// RawSubject, when set, is the DER subject used as it is (bridge mode
	// copies an upstream certificate's); CommonName still gives the SAN
	// default.
	RawSubject []byte
	DNSNames   []string // subjectAltName DNS entries; none means CommonName when it is not an IP
	IPs        []net.IP // subjectAltName IP entries
	// Hash is the digest the certificate is signed with: "md5", "sha1",
	// "sha224", "sha256" (the default), "sha384" or "sha512" — always with
	// RSA PKCS #1 v1.5. MD5 and SHA-224 are what SQL Server's weak-hash
	// scenario needs and what crypto/x509 refuses to produce.
	Hash string
	// KeyBits is the RSA modulus size; 0 means 2048. Go refuses fewer
	// than 1024.
	KeyBits int
	// NotBefore and NotAfter bound validity; zero means one hour ago and
	// NotBefore plus 365 days.
	NotBefore, NotAfter time.Time
	// IsCA marks the certificate as a CA (basicConstraints cA, keyCertSign),
	// so that it can be the Issuer of another one.
	IsCA bool
	// Issuer signs the certificate; nil means self-signed. Its PrivateKey
	// must be an *rsa.PrivateKey.
	Issuer *tls.Certificate
	// Rand is the randomness source; nil means crypto/rand.Reader.
	Rand io.Reader
}

// hashes maps CertOptions.Hash to the digest, the x509 algorithm when
// crypto/x509 can produce it, and the PKCS #1 signature OID (RFC 4055 §5,
// RFC 8017 §A.2.4).
var certHashes = map[string]struct {
	hash crypto.Hash
	alg  x509.SignatureAlgorithm // UnknownSignatureAlgorithm: re-sign by hand
	oid  asn1.ObjectIdentifier
}{
	"md5":    {crypto.MD5, x509.UnknownSignatureAlgorithm, oidSigMD5RSA},
	"sha1":   {crypto.SHA1, x509.SHA1WithRSA, oidSigSHA1RSA},
	"sha224": {crypto.SHA224, x509.UnknownSignatureAlgorithm, oidSigSHA224RSA},
	"sha256": {crypto.SHA256, x509.SHA256WithRSA, oidSigSHA256RSA},
	"sha384": {crypto.SHA384, x509.SHA384WithRSA, oidSigSHA384RSA},
	"sha512": {crypto.SHA512, x509.SHA512WithRSA, oidSigSHA512RSA},
}

// GenerateCertificate creates an RSA key and a certificate as opts says,
// and returns them as a tls.Certificate (with Leaf set) and as PEM
// ("CERTIFICATE", and "PRIVATE KEY" in PKCS #8) for other TLS stacks.
//
// crypto/x509 cannot sign with MD5 or SHA-224, so for those the
// certificate is first built with SHA-256, then its TBSCertificate is
// rewritten with the wanted signature algorithm (in both places RFC 5280
// §4.1.1.2 requires it) and signed again with rsa.SignPKCS1v15.
func GenerateCertificate(opts CertOptions) (tls.Certificate, []byte, []byte, error) {
	hashName := strings.ToLower(opts.Hash)
	if hashName == "" {
		hashName = "sha256"
	}
	h, ok := certHashes[hashName]
	if !ok {
		return tls.Certificate{}, nil, nil, fmt.Errorf("tlsbridge: certificate hash %q: want md5, sha1, sha224, sha256, sha384 or sha512", opts.Hash)
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	bits := opts.KeyBits
	if bits == 0 {
		bits = 2048
	}
	key, err := rsa.GenerateKey(rnd, bits)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("tlsbridge: generate RSA-%d key: %w", bits, err)
	}
	serial, err := rand.Int(rnd, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("tlsbridge: certificate serial: %w", err)
	}
	tmpl := certTemplate(opts, h.alg, serial)
	parent, signer := tmpl, key
	if opts.Issuer != nil {
		if parent, signer, err = issuerOf(opts.Issuer); err != nil {
			return tls.Certificate{}, nil, nil, err
		}
	}
	der, err := x509.CreateCertificate(rnd, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("tlsbridge: create certificate: %w", err)
	}
	if h.alg == x509.UnknownSignatureAlgorithm {
		if der, err = resignCertificate(der, h.oid, h.hash, signer, rnd); err != nil {
			return tls.Certificate{}, nil, nil, err
		}
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("tlsbridge: marshal key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	chain := [][]byte{der}
	if opts.Issuer != nil {
		chain = append(chain, opts.Issuer.Certificate...)
	}
	tc := tls.Certificate{Certificate: chain, PrivateKey: key}
	// ParseCertificate accepts MD5 and unknown (SHA-224) signature
	// algorithms: it does not verify signatures.
	if tc.Leaf, err = x509.ParseCertificate(der); err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("tlsbridge: parse generated certificate: %w", err)
	}
	return tc, certPEM, keyPEM, nil
}

// certTemplate is the leaf (or CA) template of opts, with its defaults:
// CN localhost, valid from an hour ago for a year, the CN as its only
// SAN, and SHA-256 as the placeholder algorithm when alg is one
// crypto/x509 cannot sign with (resignCertificate replaces it).
func certTemplate(opts CertOptions, alg x509.SignatureAlgorithm, serial *big.Int) *x509.Certificate {
	cn := opts.CommonName
	if cn == "" {
		cn = "localhost"
	}
	notBefore := opts.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Hour).Truncate(time.Second)
	}
	notAfter := opts.NotAfter
	if notAfter.IsZero() {
		notAfter = notBefore.Add(365 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  opts.IsCA,
		DNSNames:              opts.DNSNames,
		IPAddresses:           opts.IPs,
		SignatureAlgorithm:    alg,
		RawSubject:            opts.RawSubject,
	}
	if len(tmpl.DNSNames) == 0 && len(tmpl.IPAddresses) == 0 {
		if ip := net.ParseIP(cn); ip != nil {
			tmpl.IPAddresses = []net.IP{ip}
		} else {
			tmpl.DNSNames = []string{cn}
		}
	}
	if opts.IsCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if alg == x509.UnknownSignatureAlgorithm {
		tmpl.SignatureAlgorithm = x509.SHA256WithRSA
	}
	return tmpl
}

func issuerOf(c *tls.Certificate) (*x509.Certificate, *rsa.PrivateKey, error) {
	key, ok := c.PrivateKey.(*rsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("tlsbridge: issuer key is %T, want *rsa.PrivateKey", c.PrivateKey)
	}
	if c.Leaf != nil {
		return c.Leaf, key, nil
	}
	if len(c.Certificate) == 0 {
		return nil, nil, errors.New("tlsbridge: issuer has no certificate")
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("tlsbridge: parse issuer certificate: %w", err)
	}
	return leaf, key, nil
}

// resignCertificate replaces the signature algorithm of a DER certificate
// with sigOID (RSA PKCS #1 v1.5, NULL parameters) and signs it again.
//
//	Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
//	TBSCertificate ::= SEQUENCE { [0] version, serialNumber, signature AlgorithmIdentifier, ... }
func resignCertificate(der []byte, sigOID asn1.ObjectIdentifier, h crypto.Hash, key *rsa.PrivateKey, rnd io.Reader) ([]byte, error) {
	fail := func(what string) ([]byte, error) {
		return nil, fmt.Errorf("tlsbridge: re-sign certificate: %s: %w", what, ErrMalformed)
	}
	in := cryptobyte.String(der)
	var cert, tbs, version, serial cryptobyte.String
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return fail("outer structure")
	}
	if !tbs.ReadASN1Element(&version, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!tbs.ReadASN1Element(&serial, cbasn1.INTEGER) ||
		!tbs.SkipASN1(cbasn1.SEQUENCE) {
		return fail("tbsCertificate")
	}
	algID := func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(sigOID)
			b.AddASN1NULL()
		})
	}
	var tb cryptobyte.Builder
	tb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(version)
		b.AddBytes(serial)
		algID(b)
		b.AddBytes(tbs) // issuer .. extensions, unchanged
	})
	newTBS, err := tb.Bytes()
	if err != nil {
		return nil, fmt.Errorf("tlsbridge: re-sign certificate: build tbsCertificate: %w", err)
	}
	d := h.New()
	d.Write(newTBS)
	sig, err := rsa.SignPKCS1v15(rnd, key, h, d.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("tlsbridge: re-sign certificate with %v: %w", h, err)
	}
	var cb cryptobyte.Builder
	cb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(newTBS)
		algID(b)
		b.AddASN1BitString(sig)
	})
	out, err := cb.Bytes()
	if err != nil {
		return nil, fmt.Errorf("tlsbridge: re-sign certificate: build certificate: %w", err)
	}
	return out, nil
}
