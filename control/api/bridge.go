package api

// Bridge is a proxy's bridge section in POST /proxies (docs/bridge.md):
// present, the proxy terminates TLS on both legs and records the
// decrypted session. The keys are the config file's bridge: keys.
type Bridge struct {
	Cert             string `json:"cert,omitempty"`
	Key              string `json:"key,omitempty"`
	CA               string `json:"ca,omitempty"`
	CAKey            string `json:"ca_key,omitempty"`
	CAOut            string `json:"ca_out,omitempty"`
	UpstreamCA       string `json:"upstream_ca,omitempty"`
	UpstreamInsecure bool   `json:"upstream_insecure,omitempty"`
	UpstreamHello    string `json:"upstream_hello,omitempty"`
	Keylog           string `json:"keylog,omitempty"`
	RecordQueries    string `json:"record_queries,omitempty"`
}
