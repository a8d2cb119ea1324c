package proxy

import (
	"testing"

	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// The certificate cache answers what SummarizeCertificate answers and
// never keeps a malformed certificate.
func TestSummarizeCertificateCache(t *testing.T) {
	var ders [][]byte
	for _, h := range []string{"sha256", "sha1", "md5"} {
		cert, _, _, err := tlsbridge.GenerateCertificate(tlsbridge.CertOptions{Hash: h})
		if err != nil {
			t.Fatal(err)
		}
		ders = append(ders, cert.Certificate[0])
	}
	for round := range 2 { // miss, then hit
		for i, der := range ders {
			want, err := tlsbridge.SummarizeCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			got, err := summarizeCertificate(der)
			if err != nil || got != want {
				t.Fatalf("round %d cert %d: cached summary %+v, %v; want %+v", round, i, got, err, want)
			}
		}
	}
	if _, err := summarizeCertificate([]byte{0x30, 0x01}); err == nil {
		t.Error("a malformed certificate was summarised")
	}
	certCache.Lock()
	n := len(certCache.m)
	certCache.Unlock()
	if n > certCacheMax {
		t.Errorf("cache holds %d summaries, want at most %d", n, certCacheMax)
	}
}
