package main

import (
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tdsproxy/tdsproxy/configs"
)

// bridgeFlags are run's bridge-mode flags (docs/bridge.md). They set the
// bridge of the one proxy --listen/--upstream define; proxies of --config
// take a bridge: section instead.
type bridgeFlags struct {
	bridge           bool
	cert, key        string
	ca, caKey        string
	caOut            string
	upstreamCA       string
	upstreamInsecure bool
	upstreamHello    string
	keylog           string
	recordQueries    string
}

// bridgeFlagNames are the flags bridgeFlags binds, each also read from
// TDSPROXY_<FLAG> (upper case, '-' as '_') when not given.
var bridgeFlagNames = []string{"bridge", "bridge-cert", "bridge-key", "bridge-ca", "bridge-ca-key", "bridge-ca-out",
	"upstream-ca", "upstream-insecure", "upstream-hello", "keylog", "record-queries"}

func bindBridgeFlags(cmd *cobra.Command, b *bridgeFlags) {
	fl := cmd.Flags()
	fl.BoolVar(&b.bridge, "bridge", false, "terminate TLS on both legs and record the decrypted session (docs/bridge.md; env TDSPROXY_BRIDGE)")
	fl.StringVar(&b.cert, "bridge-cert", "", "with --bridge: certificate `file` (PEM) shown to every client, with --bridge-key")
	fl.StringVar(&b.key, "bridge-key", "", "with --bridge: key `file` (PEM) of --bridge-cert")
	fl.StringVar(&b.ca, "bridge-ca", "", "with --bridge: CA `file` (PEM) that signs a leaf per upstream host, with --bridge-ca-key")
	fl.StringVar(&b.caKey, "bridge-ca-key", "", "with --bridge: key `file` (PEM, RSA) of --bridge-ca")
	fl.StringVar(&b.caOut, "bridge-ca-out", "", "with --bridge and no certificate or CA: `file` for the CA generated once (key in FILE.key, mode 0600); default in the user config dir")
	fl.StringVar(&b.upstreamCA, "upstream-ca", "", "with --bridge: CA `file` added to the system roots to verify the upstream")
	fl.BoolVar(&b.upstreamInsecure, "upstream-insecure", false, "with --bridge: do not verify the upstream certificate (every record says so)")
	fl.StringVar(&b.upstreamHello, "upstream-hello", "mirror", "with --bridge: ClientHello sent upstream: mirror (the client's own) or go")
	fl.StringVar(&b.keylog, "keylog", "", "with --bridge: NSS key log `file` of both legs for Wireshark (mode 0600)")
	fl.StringVar(&b.recordQueries, "record-queries", "none", "with --bridge: none, fingerprint or text (what records keep of SQL batches)")
}

// fromEnv fills the flags not given from TDSPROXY_* variables.
func (b *bridgeFlags) fromEnv(cmd *cobra.Command) error {
	fl := cmd.Flags()
	for _, name := range bridgeFlagNames {
		if fl.Changed(name) {
			continue
		}
		env := "TDSPROXY_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			continue
		}
		if f := fl.Lookup(name); f.Value.Type() == "bool" {
			if _, err := strconv.ParseBool(v); err != nil {
				return usagef("%s: %q is not true or false", env, v)
			}
		}
		if err := fl.Set(name, v); err != nil {
			return usagef("%s: %w", env, err)
		}
	}
	return nil
}

// given reports whether any bridge option (not --bridge itself) was set.
func (b *bridgeFlags) given(cmd *cobra.Command) string {
	for _, name := range bridgeFlagNames[1:] {
		if cmd.Flags().Changed(name) {
			return name
		}
	}
	return ""
}

// apply sets the bridge of pc (the --listen/--upstream proxy) from the
// flags; nil pc means there is no such proxy.
func (b *bridgeFlags) apply(cmd *cobra.Command, pc *configs.ProxyConfig) error {
	if err := b.fromEnv(cmd); err != nil {
		return err
	}
	if other := b.given(cmd); other != "" && !b.bridge {
		return usagef("--%s needs --bridge", other)
	}
	if !b.bridge {
		return nil
	}
	if pc == nil {
		return usagef("--bridge sets the proxy of --listen and --upstream; for the proxies of --config add a bridge: section")
	}
	pc.Bridge = &configs.BridgeConfig{
		Cert: b.cert, Key: b.key, CA: b.ca, CAKey: b.caKey, CAOut: b.caOut,
		UpstreamCA: b.upstreamCA, UpstreamInsecure: b.upstreamInsecure, UpstreamHello: b.upstreamHello,
		Keylog: b.keylog, RecordQueries: b.recordQueries,
	}
	return nil
}
