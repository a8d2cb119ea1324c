package configs

import (
	"strings"
	"testing"
)

func TestLoadBridge(t *testing.T) {
	clearEnv(t)
	cfg, err := Load(writeConfig(t, `
proxies:
  - name: b
    listen: 127.0.0.1:11433
    upstream: sql01:1433
    bridge:
      ca_out: /tmp/ca.pem
      upstream_insecure: true
      upstream_hello: go
      keylog: /tmp/keys.log
      record_queries: fingerprint
  - name: p
    listen: 127.0.0.1:11434
    upstream: sql01:1433
`))
	if err != nil {
		t.Fatal(err)
	}
	want := BridgeConfig{CAOut: "/tmp/ca.pem", UpstreamInsecure: true, UpstreamHello: "go", Keylog: "/tmp/keys.log", RecordQueries: "fingerprint"}
	if b := cfg.Proxies[0].Bridge; b == nil || *b != want {
		t.Fatalf("bridge %v, want %v", b, &want)
	}
	if cfg.Proxies[1].Bridge != nil {
		t.Fatalf("passthrough proxy got %v", cfg.Proxies[1].Bridge)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ bridge, key string }{
		{"{cert: a}", "proxies[0].bridge.cert"},
		{"{ca: a}", "proxies[0].bridge.ca"},
		{"{cert: a, key: b, ca: c, ca_key: d}", "proxies[0].bridge.cert"},
		{"{upstream_ca: a, upstream_insecure: true}", "proxies[0].bridge.upstream_insecure"},
		{"{upstream_hello: chrome}", "proxies[0].bridge.upstream_hello"},
		{"{record_queries: all}", "proxies[0].bridge.record_queries"},
	} {
		cfg, err := Load(writeConfig(t, "proxies:\n  - name: b\n    listen: 127.0.0.1:11433\n    upstream: sql01:1433\n    bridge: "+tc.bridge+"\n"))
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("bridge %s: error %v, want one naming %s", tc.bridge, err, tc.key)
		}
	}
	if _, err := Load(writeConfig(t, "proxies:\n  - name: b\n    listen: 127.0.0.1:11433\n    upstream: sql01:1433\n    bridge: {certificate: x}\n")); err == nil {
		t.Error("an unknown bridge key loaded")
	}
}
