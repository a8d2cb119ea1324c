package tlsbridge

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// tbsAndSignature splits a DER certificate into the signed bytes and the signature.
func tbsAndSignature(t *testing.T, der []byte) (tbs, sig []byte) {
	t.Helper()
	in := cryptobyte.String(der)
	var cert, tbsElem cryptobyte.String
	var bits []byte
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1Element(&tbsElem, cbasn1.SEQUENCE) ||
		!cert.SkipASN1(cbasn1.SEQUENCE) || !cert.ReadASN1BitStringAsBytes(&bits) {
		t.Fatal("certificate structure")
	}
	return tbsElem, bits
}

func TestGenerateCertificateHashes(t *testing.T) {
	tests := []struct {
		hash    string
		alg     string
		hashFn  crypto.Hash
		openssl string // what `openssl x509 -text` calls it
	}{
		{"md5", "MD5-RSA", crypto.MD5, "md5WithRSAEncryption"},
		{"sha1", "SHA1-RSA", crypto.SHA1, "sha1WithRSAEncryption"},
		{"sha224", "SHA224-RSA", crypto.SHA224, "sha224WithRSAEncryption"},
		{"", "SHA256-RSA", crypto.SHA256, "sha256WithRSAEncryption"},
		{"sha384", "SHA384-RSA", crypto.SHA384, "sha384WithRSAEncryption"},
		{"SHA512", "SHA512-RSA", crypto.SHA512, "sha512WithRSAEncryption"},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			cert, certPEM, keyPEM, err := GenerateCertificate(CertOptions{CommonName: "sql01.example.com", Hash: tt.hash, KeyBits: 1024})
			if err != nil {
				t.Fatal(err)
			}
			der := cert.Certificate[0]
			sum, err := SummarizeCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if sum.SignatureAlgorithm != tt.alg || sum.Subject != "CN=sql01.example.com" || !sum.SelfSigned || sum.PublicKeyBits != 1024 {
				t.Fatalf("%+v", sum)
			}
			if cert.Leaf == nil || cert.Leaf.DNSNames[0] != "sql01.example.com" {
				t.Fatalf("Leaf %+v", cert.Leaf)
			}
			// The signature is genuine: it verifies over the TBSCertificate
			// with the key's own public half.
			tbs, sig := tbsAndSignature(t, der)
			h := tt.hashFn.New()
			h.Write(tbs)
			if err := rsa.VerifyPKCS1v15(&cert.PrivateKey.(*rsa.PrivateKey).PublicKey, tt.hashFn, h.Sum(nil), sig); err != nil {
				t.Fatalf("signature does not verify: %v", err)
			}
			if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
				t.Fatalf("X509KeyPair: %v", err)
			}
			checkOpenSSLSignature(t, certPEM, tt.openssl)
		})
	}
}

// checkOpenSSLSignature asks OpenSSL what the certificate is signed with.
func checkOpenSSLSignature(t *testing.T, certPEM []byte, want string) {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Log("openssl not installed; skipping the OpenSSL check")
		return
	}
	f := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(f, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "x509", "-in", f, "-noout", "-text").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Signature Algorithm: "+want) {
		t.Fatalf("openssl does not see %s:\n%s", want, out)
	}
}

func TestGenerateCertificateIssuer(t *testing.T) {
	ca, _, _, err := GenerateCertificate(CertOptions{CommonName: "tdsproxy test CA", IsCA: true, KeyBits: 1024})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _, _, err := GenerateCertificate(CertOptions{
		CommonName: "sql01", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Hash: "sha224", KeyBits: 1024, Issuer: &ca,
		NotBefore: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.Certificate) != 2 {
		t.Fatalf("chain of %d", len(leaf.Certificate))
	}
	sum, err := SummarizeCertificate(leaf.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if sum.Issuer != "CN=tdsproxy test CA" || sum.SelfSigned || sum.SignatureHash != "sha224" ||
		!sum.NotAfter.Equal(time.Date(2024, 12, 31, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("%+v", sum)
	}
	tbs, sig := tbsAndSignature(t, leaf.Certificate[0])
	h := crypto.SHA224.New()
	h.Write(tbs)
	if err := rsa.VerifyPKCS1v15(&ca.PrivateKey.(*rsa.PrivateKey).PublicKey, crypto.SHA224, h.Sum(nil), sig); err != nil {
		t.Fatalf("not signed by the CA: %v", err)
	}
	if !leaf.Leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !ca.Leaf.IsCA {
		t.Fatal("SAN or CA flag")
	}
}

func TestGenerateCertificateErrors(t *testing.T) {
	if _, _, _, err := GenerateCertificate(CertOptions{Hash: "sha3"}); err == nil {
		t.Fatal("unknown hash accepted")
	}
	if _, _, _, err := GenerateCertificate(CertOptions{KeyBits: 512}); err == nil {
		t.Fatal("512-bit key accepted")
	}
}

// TestWeakCertificateOnTheWire serves an MD5-signed certificate from a Go
// TLS 1.2 server and reads it back from the recorded server flight: the
// path a proxy takes to recognise scenario 4.
func TestWeakCertificateOnTheWire(t *testing.T) {
	cert, _, _, err := GenerateCertificate(CertOptions{CommonName: "sql01.example.com", Hash: "md5", KeyBits: 1024})
	if err != nil {
		t.Fatal(err)
	}
	_, s2c := captureHandshake(t,
		&tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12},
		&tls.Config{Certificates: []tls.Certificate{cert}, SessionTicketsDisabled: true})
	for _, m := range handshakes(feedAll(t, ServerToClient, s2c)) {
		if m.Type != HandshakeCertificate {
			continue
		}
		cm, err := ParseCertificateMsg(m.Raw, false)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := SummarizeCertificate(cm.Chain[0])
		if err != nil {
			t.Fatal(err)
		}
		if sum.SignatureAlgorithm != "MD5-RSA" || !CertHashRisk(sum.SignatureHash) {
			t.Fatalf("%+v", sum)
		}
		return
	}
	t.Fatal("no Certificate message")
}
