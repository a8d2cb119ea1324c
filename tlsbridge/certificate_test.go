package tlsbridge

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// readCertFixture returns the DER of a PEM file under testdata/certs.
func readCertFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "certs", name))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", name)
	}
	return blk.Bytes
}

// buildCertificateMsg encodes a Certificate message, TLS 1.2 or 1.3 form.
func buildCertificateMsg(t testing.TB, tls13 bool, ctx []byte, certs [][]byte, exts [][]Extension) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddUint8(uint8(HandshakeCertificate))
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		if tls13 {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(ctx) })
		}
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
			for i, c := range certs {
				b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c) })
				if !tls13 {
					continue
				}
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					if i < len(exts) {
						for _, e := range exts[i] {
							b.AddUint16(e.Type)
							b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.Data) })
						}
					}
				})
			}
		})
	})
	return b.BytesOrPanic()
}

func TestParseCertificateMsg(t *testing.T) {
	t.Run("TLS 1.2 from OpenSSL", func(t *testing.T) {
		raw := firstHandshake(t, "tls12-dhe-openssl30-s2c.bin", ServerToClient, HandshakeCertificate).Raw
		m, err := ParseCertificateMsg(raw, false)
		if err != nil {
			t.Fatal(err)
		}
		// tshark: tls.handshake.certificate_length 791.
		if len(m.Chain) != 1 || len(m.Chain[0]) != 791 || m.Entries[0].Extensions != nil {
			t.Fatalf("chain %d certs", len(m.Chain))
		}
		sum, err := SummarizeCertificate(m.Chain[0])
		if err != nil {
			t.Fatal(err)
		}
		if sum.Subject != "CN=db.example.com" || !sum.SelfSigned || sum.SignatureAlgorithm != "SHA256-RSA" || sum.PublicKeyBits != 2048 {
			t.Fatalf("%+v", sum)
		}
		// The TLS 1.3 reading of the same bytes must fail, not misparse.
		if _, err := ParseCertificateMsg(raw, true); err == nil {
			t.Fatal("TLS 1.3 form accepted a TLS 1.2 message")
		}
	})
	leaf, ca := readCertFixture(t, "rsa-sha224.pem"), readCertFixture(t, "rsa-md5.pem")
	t.Run("TLS 1.3 with entry extensions", func(t *testing.T) {
		ocsp := Extension{ExtStatusRequest, []byte{1, 2, 3}}
		raw := buildCertificateMsg(t, true, nil, [][]byte{leaf, ca}, [][]Extension{{ocsp}, nil})
		m, err := ParseCertificateMsg(raw, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Chain) != 2 || !bytes.Equal(m.Chain[0], leaf) || !bytes.Equal(m.Chain[1], ca) || len(m.RequestContext) != 0 {
			t.Fatalf("%+v", m)
		}
		if len(m.Entries[0].Extensions) != 1 || m.Entries[0].Extensions[0].Type != ExtStatusRequest || m.Entries[1].Extensions != nil {
			t.Fatalf("entry extensions %+v", m.Entries)
		}
	})
	t.Run("empty chain", func(t *testing.T) {
		m, err := ParseCertificateMsg(buildCertificateMsg(t, true, []byte{9}, nil, nil), true)
		if err != nil || len(m.Chain) != 0 || !bytes.Equal(m.RequestContext, []byte{9}) {
			t.Fatalf("%+v, %v", m, err)
		}
	})
	bad := []struct {
		name  string
		raw   []byte
		tls13 bool
		want  error
	}{
		{"empty certificate", buildCertificateMsg(t, false, nil, [][]byte{{}}, nil), false, ErrMalformed},
		{"truncated list", hsMsg(HandshakeCertificate, []byte{0, 0, 9, 0, 0, 5, 1}), false, ErrMalformed},
		{"trailing bytes", hsMsg(HandshakeCertificate, []byte{0, 0, 0, 1}), false, ErrMalformed},
		{"bad entry extensions", hsMsg(HandshakeCertificate, []byte{0, 0, 0, 6, 0, 0, 1, 0xAA, 0, 3}), true, ErrMalformed},
		{"not a Certificate", hsMsg(HandshakeFinished, make([]byte, 12)), false, ErrUnexpectedMessage},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseCertificateMsg(tt.raw, tt.tls13); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestSummarizeCertificateOpenSSL reads certificates made by
// `openssl req -x509` (OpenSSL 3.0; see testdata/README.md). The expected
// algorithm names and key sizes are what `openssl x509 -noout -text`
// printed for each file, the thumbprints what `openssl x509 -noout
// -fingerprint -sha1` printed.
func TestSummarizeCertificateOpenSSL(t *testing.T) {
	tests := []struct {
		file, alg, hash, keyType string
		bits                     int
		thumb, subject           string
	}{
		{"rsa-md5.pem", "MD5-RSA", "md5", "RSA", 2048, "73487C35071B8A1C84FFE67BD9A0F7B385929FBA", "CN=sql-md5.example.com,O=tdsproxy test,C=JP"},
		{"rsa-sha1.pem", "SHA1-RSA", "sha1", "RSA", 2048, "4D87461C21D80038CB137FF691F5474CE97ED301", "CN=sql-sha1.example.com,O=tdsproxy test,C=JP"},
		{"rsa-sha224.pem", "SHA224-RSA", "sha224", "RSA", 2048, "9A4F22A4D3411E817FDDA2D04D57A1CF198326D7", "CN=sql-sha224.example.com,O=tdsproxy test,C=JP"},
		{"rsa-sha512.pem", "SHA512-RSA", "sha512", "RSA", 2048, "ECEF7F8DD7569C44017E21A10D473E4C8321196C", "CN=sql-sha512.example.com,O=tdsproxy test,C=JP"},
		{"ecdsa-p384-sha384.pem", "ECDSA-SHA384", "sha384", "ECDSA", 384, "31E02D08706FA07AD3A7F1D206753860A9375F12", "CN=ecdsa.example.com"},
		{"ed25519.pem", "Ed25519", "", "Ed25519", 256, "768B5D489701FF6EFD3116D6F04FD15B85B5B4CA", "CN=ed25519.example.com"},
		// openssl: "Signature Algorithm: rsassaPss ... Hash Algorithm: sha256".
		{"rsapss-sha256.pem", "RSASSA-PSS", "sha256", "RSA", 2048, "453FC8FE8D66D9E3E9FE3DD6BEBFBEC165B6FF0D", "CN=pss.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			der := readCertFixture(t, tt.file)
			sum, err := SummarizeCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if sum.SignatureAlgorithm != tt.alg || sum.SignatureHash != tt.hash || sum.PublicKeyType != tt.keyType ||
				sum.PublicKeyBits != tt.bits || sum.ThumbprintSHA1 != tt.thumb || sum.Subject != tt.subject ||
				sum.Issuer != tt.subject || !sum.SelfSigned {
				t.Fatalf("%+v", sum)
			}
			if d := sum.NotAfter.Sub(sum.NotBefore); d != 3650*24*time.Hour {
				t.Errorf("validity %v, want 3650 days (-days 3650)", d)
			}
			crossCheckX509(t, der, sum)
		})
	}
}

// crossCheckX509 compares a summary with what crypto/x509 reads, where it
// reads anything.
func crossCheckX509(t *testing.T, der []byte, sum CertSummary) {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Logf("crypto/x509 cannot parse it (%v); nothing to compare", err)
		return
	}
	if c.Subject.String() != sum.Subject || c.Issuer.String() != sum.Issuer {
		t.Errorf("names: x509 %q / %q, summary %q / %q", c.Subject, c.Issuer, sum.Subject, sum.Issuer)
	}
	if !c.NotBefore.Equal(sum.NotBefore) || !c.NotAfter.Equal(sum.NotAfter) {
		t.Errorf("validity: x509 %v..%v, summary %v..%v", c.NotBefore, c.NotAfter, sum.NotBefore, sum.NotAfter)
	}
	if c.SerialNumber.String() != sum.SerialNumber {
		t.Errorf("serial: x509 %v, summary %v", c.SerialNumber, sum.SerialNumber)
	}
	if c.SignatureAlgorithm != x509.UnknownSignatureAlgorithm && c.SignatureAlgorithm != x509.SHA256WithRSAPSS &&
		c.SignatureAlgorithm.String() != sum.SignatureAlgorithm {
		t.Errorf("signature algorithm: x509 %v, summary %v", c.SignatureAlgorithm, sum.SignatureAlgorithm)
	}
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() != sum.PublicKeyBits {
			t.Errorf("RSA bits: x509 %d, summary %d", k.N.BitLen(), sum.PublicKeyBits)
		}
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize != sum.PublicKeyBits {
			t.Errorf("EC bits: x509 %d, summary %d", k.Curve.Params().BitSize, sum.PublicKeyBits)
		}
	}
}

func TestSummarizeCertificateMalformed(t *testing.T) {
	good := readCertFixture(t, "rsa-md5.pem")
	for i := 0; i < len(good); i += 7 {
		if _, err := SummarizeCertificate(good[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("prefix %d: err = %v", i, err)
		}
	}
	if _, err := SummarizeCertificate(append(append([]byte{}, good...), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
}

func TestSignatureAlgorithmOf(t *testing.T) {
	// RSASSA-PSS-params with hashAlgorithm absent means SHA-1 (RFC 4055 §3.1).
	if name, hash := SignatureAlgorithmOf(oidSigPSS, []byte{0x30, 0x00}); name != "RSASSA-PSS" || hash != "sha1" {
		t.Fatalf("%s %s", name, hash)
	}
	if name, hash := SignatureAlgorithmOf([]int{1, 2, 3, 4}, nil); name != "1.2.3.4" || hash != "" {
		t.Fatalf("%s %s", name, hash)
	}
	if name, hash := SignatureAlgorithmOf(oidSigSHA1RSAOIW, nil); name != "SHA1-RSA" || hash != "sha1" {
		t.Fatalf("%s %s", name, hash)
	}
}

func TestCertHashRisk(t *testing.T) {
	for hash, want := range map[string]bool{
		"md5": true, "sha1": true, "sha224": true, "sha512": true, "MD5": true, "md2": true,
		"sha256": false, "sha384": false, "": false,
	} {
		if got := CertHashRisk(hash); got != want {
			t.Errorf("CertHashRisk(%q) = %v, want %v", hash, got, want)
		}
	}
}

func FuzzParseCertificateMsg(f *testing.F) {
	f.Add(firstHandshake(f, "tls12-dhe-openssl30-s2c.bin", ServerToClient, HandshakeCertificate).Raw, false)
	f.Add(buildCertificateMsg(f, true, nil, [][]byte{{1, 2, 3}, {4}}, [][]Extension{{{ExtStatusRequest, []byte{1}}}}), true)
	f.Add(buildCertificateMsg(f, true, []byte{1}, nil, nil), true)
	f.Fuzz(func(t *testing.T, raw []byte, tls13 bool) {
		m, err := ParseCertificateMsg(raw, tls13)
		if err != nil {
			return
		}
		if len(m.Chain) != len(m.Entries) {
			t.Fatal("Chain and Entries disagree")
		}
		for _, c := range m.Chain {
			if len(c) == 0 {
				t.Fatal("empty certificate accepted")
			}
		}
	})
}

func FuzzSummarizeCertificate(f *testing.F) {
	for _, name := range []string{"rsa-md5.pem", "rsa-sha224.pem", "ecdsa-p384-sha384.pem", "ed25519.pem", "rsapss-sha256.pem"} {
		f.Add(readCertFixture(f, name))
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		sum, err := SummarizeCertificate(der)
		if err != nil {
			return
		}
		if len(sum.ThumbprintSHA1) != 40 || sum.SignatureAlgorithm == "" {
			t.Fatalf("%+v", sum)
		}
	})
}
