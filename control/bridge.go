package control

import (
	"github.com/tdsproxy/tdsproxy/configs"
	wire "github.com/tdsproxy/tdsproxy/control/api"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// bridgeConfigFrom maps a config file's bridge section to proxy's; nil
// stays nil (passthrough).
func bridgeConfigFrom(b *configs.BridgeConfig) *proxy.BridgeConfig {
	if b == nil {
		return nil
	}
	return &proxy.BridgeConfig{
		Cert: b.Cert, Key: b.Key, CA: b.CA, CAKey: b.CAKey, CAOut: b.CAOut,
		UpstreamCA: b.UpstreamCA, UpstreamInsecure: b.UpstreamInsecure, UpstreamHello: b.UpstreamHello,
		Keylog: b.Keylog, RecordQueries: b.RecordQueries,
	}
}

// bridgeFromWire maps POST /proxies's bridge section to proxy's.
func bridgeFromWire(b *wire.Bridge) *proxy.BridgeConfig {
	if b == nil {
		return nil
	}
	return &proxy.BridgeConfig{
		Cert: b.Cert, Key: b.Key, CA: b.CA, CAKey: b.CAKey, CAOut: b.CAOut,
		UpstreamCA: b.UpstreamCA, UpstreamInsecure: b.UpstreamInsecure, UpstreamHello: b.UpstreamHello,
		Keylog: b.Keylog, RecordQueries: b.RecordQueries,
	}
}
