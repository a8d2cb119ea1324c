package configs

import "fmt"

// BridgeConfig is a proxy's "bridge" section (proxies[i].bridge): present,
// the proxy terminates TLS on both legs and records the decrypted session
// (docs/bridge.md). Every key is optional; an empty section is a bridge
// with a generated CA, a verified upstream and a mirrored hello. The keys
// are the run flags without their --bridge-/--upstream- prefix rules:
// cert (--bridge-cert), key (--bridge-key), ca (--bridge-ca), ca_key
// (--bridge-ca-key), ca_out (--bridge-ca-out), upstream_ca
// (--upstream-ca), upstream_insecure (--upstream-insecure),
// upstream_hello (--upstream-hello), keylog (--keylog) and
// record_queries.
type BridgeConfig struct {
	Cert, Key        string
	CA, CAKey        string
	CAOut            string
	UpstreamCA       string
	UpstreamInsecure bool
	UpstreamHello    string
	Keylog           string
	RecordQueries    string
}

type rawBridge struct {
	Cert             string `mapstructure:"cert"`
	Key              string `mapstructure:"key"`
	CA               string `mapstructure:"ca"`
	CAKey            string `mapstructure:"ca_key"`
	CAOut            string `mapstructure:"ca_out"`
	UpstreamCA       string `mapstructure:"upstream_ca"`
	UpstreamInsecure bool   `mapstructure:"upstream_insecure"`
	UpstreamHello    string `mapstructure:"upstream_hello"`
	Keylog           string `mapstructure:"keylog"`
	RecordQueries    string `mapstructure:"record_queries"`
}

func (r *rawBridge) resolve() *BridgeConfig {
	if r == nil {
		return nil
	}
	b := BridgeConfig(*r)
	return &b
}

// validateBridge checks a bridge section; key is "proxies[i].bridge".
func validateBridge(key string, b *BridgeConfig) []*KeyError {
	if b == nil {
		return nil
	}
	var errs []*KeyError
	k := func(s string) string { return key + "." + s }
	pair := b.Cert != "" || b.Key != ""
	ca := b.CA != "" || b.CAKey != ""
	switch {
	case pair && ca:
		errs = append(errs, keyErrorf(k("cert"), "give cert and key, or ca and ca_key, not both"))
	case pair && (b.Cert == "" || b.Key == ""):
		errs = append(errs, keyErrorf(k("cert"), "cert and key go together"))
	case ca && (b.CA == "" || b.CAKey == ""):
		errs = append(errs, keyErrorf(k("ca"), "ca and ca_key go together"))
	case (pair || ca) && b.CAOut != "":
		errs = append(errs, keyErrorf(k("ca_out"), "applies only when neither cert nor ca is given"))
	}
	if b.UpstreamCA != "" && b.UpstreamInsecure {
		errs = append(errs, keyErrorf(k("upstream_insecure"), "excludes upstream_ca"))
	}
	if err := oneOf(k("upstream_hello"), b.UpstreamHello, []string{"", "mirror", "go"}); err != nil {
		errs = append(errs, err)
	}
	if err := oneOf(k("record_queries"), b.RecordQueries, []string{"", "none", "fingerprint", "text"}); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// String shows the bridge section without anything secret (it holds
// paths only).
func (b *BridgeConfig) String() string {
	if b == nil {
		return "<no bridge>"
	}
	return fmt.Sprintf("bridge{cert=%q ca=%q ca_out=%q upstream_ca=%q insecure=%v hello=%q keylog=%q queries=%q}",
		b.Cert, b.CA, b.CAOut, b.UpstreamCA, b.UpstreamInsecure, b.UpstreamHello, b.Keylog, b.RecordQueries)
}
