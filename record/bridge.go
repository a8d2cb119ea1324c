package record

// BridgeInfo is what bridge mode (docs/bridge.md) adds to a record: how
// each leg's TLS went, what the upstream hello left out, and the decoded
// session. It holds no secret: never the password, and query text only
// when record_queries says text.
type BridgeInfo struct {
	// UpstreamHello is "mirror" or "go" (--upstream-hello).
	UpstreamHello string `json:"upstream_hello"`
	// Keylog is true when the connection's TLS secrets went to the key log.
	Keylog bool `json:"keylog"`
	// UpstreamInsecure is true when the upstream certificate was not
	// verified (--upstream-insecure).
	UpstreamInsecure bool `json:"upstream_insecure"`
	// Scope is what TLS covered: none, login-only, session (TDS 7.x), or
	// "" in TDS 8.0 strict (everything).
	Scope string `json:"scope,omitempty"`
	// ClientJA4 and UpstreamJA4 fingerprint the client's hello and the one
	// the bridge sent upstream; DroppedFromMirror lists what the mirror
	// left out because the bridge cannot complete it.
	ClientJA4         string     `json:"client_ja4,omitempty"`
	UpstreamJA4       string     `json:"upstream_ja4,omitempty"`
	DroppedFromMirror []string   `json:"dropped_from_mirror,omitempty"`
	ClientTLS         *BridgeLeg `json:"client_tls,omitempty"`
	UpstreamTLS       *BridgeLeg `json:"upstream_tls,omitempty"`
	// Scenario names the rule that configured the client-facing TLS
	// server; DecidedBy says which stack ended the connection early
	// ("client-leg TLS (crypto/tls)", "upstream server", "bridge
	// (Schannel's certificate rule)", "client", "bridge"), Failure why.
	Scenario  string `json:"scenario,omitempty"`
	DecidedBy string `json:"decided_by,omitempty"`
	Failure   string `json:"failure,omitempty"`

	// LoginAckVersion is the server version in LOGINACK, e.g. 16.0.1000.
	LoginAckVersion    string `json:"loginack_version,omitempty"`
	LoginAckTDSVersion string `json:"loginack_tds_version,omitempty"`
	// Errors are the server's ERROR tokens, the first 16 (a bound);
	// ErrorCount counts them all.
	Errors     []ServerError `json:"errors,omitempty"`
	ErrorCount int           `json:"error_count"`
	Database   string        `json:"database,omitempty"`
	Language   string        `json:"language,omitempty"`
	PacketSize string        `json:"packet_size,omitempty"`
	Routing    string        `json:"routing,omitempty"`
	SQLBatches int           `json:"sql_batches"`
	RPCs       int           `json:"rpcs"`
	Procedures []string      `json:"procedures,omitempty"`
	Attentions int           `json:"attentions"`
	Rows       uint64        `json:"rows"`
	// RecordQueries is none, fingerprint or text; Queries holds
	// fingerprints or texts accordingly.
	RecordQueries string   `json:"record_queries"`
	Queries       []string `json:"queries,omitempty"`
	// DecodeIssues lists what the session decoder could not decode.
	DecodeIssues []string `json:"decode_issues,omitempty"`
}

// BridgeLeg is one leg's negotiated TLS.
type BridgeLeg struct {
	Version     string           `json:"version,omitempty"`
	CipherSuite string           `json:"cipher_suite,omitempty"`
	ALPN        string           `json:"alpn,omitempty"`
	Certificate *CertificateInfo `json:"certificate,omitempty"`
}

// ServerError is one ERROR token (MS-TDS §2.2.7.10).
type ServerError struct {
	Number    int32  `json:"number"`
	State     uint8  `json:"state"`
	Class     uint8  `json:"class"`
	Message   string `json:"message"`
	Procedure string `json:"procedure,omitempty"`
	Line      int32  `json:"line,omitempty"`
}

// Clone returns a deep copy.
func (b *BridgeInfo) Clone() *BridgeInfo {
	if b == nil {
		return nil
	}
	c := *b
	c.DroppedFromMirror = append([]string(nil), b.DroppedFromMirror...)
	c.Errors = append([]ServerError(nil), b.Errors...)
	c.Procedures = append([]string(nil), b.Procedures...)
	c.Queries = append([]string(nil), b.Queries...)
	c.DecodeIssues = append([]string(nil), b.DecodeIssues...)
	return &c
}
