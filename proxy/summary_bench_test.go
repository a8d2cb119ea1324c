package proxy

import (
	"crypto/tls"
	"net"
	"reflect"
	"testing"

	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// BenchmarkClientHelloInfo is the watcher's per-login rendering of a Go
// client's hello for the record (issue 17: CPU per login). Run with:
// go test -run '^$' -bench ClientHelloInfo ./proxy/
func BenchmarkClientHelloInfo(b *testing.B) {
	ch := goClientHello(b)
	b.ReportAllocs()
	for b.Loop() {
		_ = clientHelloInfo(ch)
	}
}

// BenchmarkRenderClientHelloInfo is the same without the cache.
func BenchmarkRenderClientHelloInfo(b *testing.B) {
	ch := goClientHello(b)
	b.ReportAllocs()
	for b.Loop() {
		_ = renderClientHelloInfo(ch)
	}
}

// goClientHello captures the ClientHello crypto/tls sends.
func goClientHello(tb testing.TB) *tlsbridge.ClientHello {
	tb.Helper()
	c, s := net.Pipe()
	go func() {
		_ = tls.Client(c, &tls.Config{ServerName: "localhost"}).Handshake()
		c.Close()
	}()
	buf := make([]byte, 16<<10)
	n := 0
	for n < 5 || n < 5+int(buf[3])<<8|int(buf[4]) {
		k, err := s.Read(buf[n:])
		if err != nil {
			tb.Fatal(err)
		}
		n += k
	}
	s.Close()
	evs, err := tlsbridge.NewStream(tlsbridge.ClientToServer).Feed(buf[:n])
	if err != nil || len(evs) != 1 {
		tb.Fatalf("no ClientHello: %v", err)
	}
	ch, err := tlsbridge.ParseClientHello(evs[0].Handshake.Raw)
	if err != nil {
		tb.Fatal(err)
	}
	return ch
}

// TestClientHelloInfoCache: the cached summary equals a fresh rendering,
// keeps the hello's own length, and two hellos that differ in a rendered
// field (here the SNI) never share a summary.
func TestClientHelloInfoCache(t *testing.T) {
	ch := goClientHello(t)
	want := renderClientHelloInfo(ch)
	for range 2 {
		if got := clientHelloInfo(ch); !reflect.DeepEqual(got, want) {
			t.Fatalf("cached summary\n%+v\nwant\n%+v", got, want)
		}
	}
	other := *ch
	other.ServerName = "sql01.example"
	other.Raw = append(append([]byte{}, ch.Raw...), 0)
	got := clientHelloInfo(&other)
	if got.SNI != "sql01.example" || got.Length != len(ch.Raw)+1 {
		t.Fatalf("other hello: SNI %q length %d, want sql01.example and %d", got.SNI, got.Length, len(ch.Raw)+1)
	}
	if got.JA4 == want.JA4 && got.SNI == want.SNI {
		t.Fatal("two hellos share a summary")
	}
	if again := clientHelloInfo(ch); again.SNI != want.SNI {
		t.Fatalf("first hello now has SNI %q", again.SNI)
	}
}
