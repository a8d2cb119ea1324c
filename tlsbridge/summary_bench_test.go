package tlsbridge

import (
	"crypto/tls"
	"testing"
)

// Per-connection parsing costs of the proxy's watcher (issue 6: CPU per
// login). Run with: go test -run '^$' -bench . ./tlsbridge/
// goHello is the handshake message of a Go client's ClientHello.
func goHello(b *testing.B) []byte {
	evs, err := NewStream(ClientToServer).Feed(captureClientHello(b, &tls.Config{ServerName: "localhost"}))
	if err != nil || len(evs) != 1 || evs[0].Kind != EventHandshake {
		b.Fatalf("no ClientHello: %v", err)
	}
	return evs[0].Handshake.Raw
}

func BenchmarkParseClientHelloGo(b *testing.B) {
	raw := goHello(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseClientHello(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJA3JA4(b *testing.B) {
	ch, err := ParseClientHello(goHello(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = ch.JA3()
		_ = ch.JA4()
	}
}

func BenchmarkSummarizeCertificate(b *testing.B) {
	cert, _, _, err := GenerateCertificate(CertOptions{})
	if err != nil {
		b.Fatal(err)
	}
	der := cert.Certificate[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SummarizeCertificate(der); err != nil {
			b.Fatal(err)
		}
	}
}
