//go:build linux

package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestStrictRawClient: the raw byte-stream client of the bridge workload
// logs in over TDS 8.0 strict (TLS first, ALPN tds/8.0, the harness
// certificate verified) and reads a SELECT large reply to its end.
func TestStrictRawClient(t *testing.T) {
	dir := t.TempDir()
	cert, err := makeBenchCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	emu, ca, err := startEmulator(dir, cert)
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, _, err := bulkRawStrict(ctx, emu.Addr(), ca, 2, 4*rowBytes*2)
	if err != nil {
		t.Fatal(err)
	}
	if min := int64(4 * rowBytes * 2); n < min {
		t.Fatalf("read %d bytes, want at least the %d row bytes", n, min)
	}
	n2, _, err := bulkTDSStrict(ctx, emu.Addr(), ca, 1, 3*rowBytes)
	if err != nil || n2 != 3*rowBytes {
		t.Fatalf("go-mssqldb strict bulk: %d bytes, %v; want %d", n2, err, 3*rowBytes)
	}
}

// TestHAProxyTLSConfig: the HAProxy bridge terminates TLS with the harness
// certificate and re-originates it with ALPN tds/8.0, as issue 11 states.
func TestHAProxyTLSConfig(t *testing.T) {
	cfg := haproxyTLSConfig("127.0.0.1:1", "127.0.0.1:2", 100, "/x/b.pem")
	for _, want := range []string{
		"bind 127.0.0.1:1 ssl crt /x/b.pem alpn tds/8.0",
		"server upstream 127.0.0.1:2 ssl alpn tds/8.0 verify none",
		"mode tcp",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
}
