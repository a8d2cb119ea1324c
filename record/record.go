// Package record is the connection record: everything tdsproxy learned
// about one connection, the JSON that logs, the admin API, metrics and
// diagnosis read. It holds only the types and their names (phases, sides,
// close kinds, protocols, login outcomes), so a reader of records (the
// admin API's client, a report) need not link the relay; package proxy
// fills records and re-exports these names.
package record

import (
	"time"
)

// Record is everything tdsproxy learned about one connection. One record per
// connection: logs, metrics, the admin API and diagnosis all read it. It
// holds no secret: LOGIN7's password is never copied into it.
//
// A Record is owned by its session while the connection lives; callers get
// copies (Proxy.Connections) or the final record through the Sink.
type Record struct {
	ID       uint64    `json:"id"`
	Proxy    string    `json:"proxy"`
	Client   string    `json:"client"`
	Listener string    `json:"listener"`
	Upstream string    `json:"upstream"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end,omitzero"`

	// Protocol is how the client spoke (see Protocol), or "" when the
	// client sent nothing.
	Protocol Protocol `json:"protocol,omitempty"`
	// Phase is the last phase reached.
	Phase Phase `json:"phase"`
	// Phases lists each phase reached with its time since Start.
	Phases []PhaseMark `json:"phases"`

	Prelogin *PreloginInfo `json:"prelogin,omitempty"`
	TLS      *TLSInfo      `json:"tls,omitempty"`
	Login    *LoginInfo    `json:"login,omitempty"`
	// Bridge is filled in bridge mode only (docs/bridge.md).
	Bridge *BridgeInfo `json:"bridge,omitempty"`
	// Retry links the connection to the earlier attempts of the same
	// client (record/retry.go); set at close by the admin instance.
	Retry *RetryInfo `json:"retry,omitempty"`

	Close *CloseInfo `json:"close,omitempty"`

	BytesClientToServer int64 `json:"bytes_client_to_server"`
	BytesServerToClient int64 `json:"bytes_server_to_client"`

	// Watching is true while the proxy still parses the connection; false once
	// it relays without looking (splice).
	Watching bool `json:"watching"`
	// ParseIssues lists what could not be parsed and where. The relay is
	// never disturbed by them.
	ParseIssues []ParseIssue `json:"parse_issues,omitempty"`
	// Faults lists every injection decision taken on this connection.
	Faults []FaultEvent `json:"faults,omitempty"`
	// Notes are human-readable remarks (e.g. why watching stopped).
	Notes []string `json:"notes,omitempty"`
	// Diagnosis lists what went wrong, filled at close (package diagnose);
	// a connection nothing went wrong with has none.
	Diagnosis []Finding `json:"diagnosis,omitempty"`
	// Steps times each login step, filled at close (package diagnose).
	Steps []Step `json:"steps,omitempty"`
	// Dropped counts list entries (notes, parse issues, alerts, faults)
	// left out because the list reached MaxListEntries: a hostile peer
	// must not grow a record without bound.
	Dropped int `json:"dropped_entries,omitempty"`
}

// Protocol is how a client spoke on a connection, told by its first byte
// (MS-TDS §3.3.5.1). Record.Protocol holds it; the names are part of the
// record's JSON, the metrics and the fault rules' match.protocol.
type Protocol string

// Protocols.
const (
	// ProtocolTDS7: TDS 7.x, PRELOGIN first (TLS, if any, inside PRELOGIN
	// packets).
	ProtocolTDS7 Protocol = "tds7"
	// ProtocolStrict: TDS 8.0 strict, TLS first (MS-TDS §3.3.5.1).
	ProtocolStrict Protocol = "tds8-strict"
	// ProtocolTDS7Login: LOGIN7 with no PRELOGIN before it.
	ProtocolTDS7Login Protocol = "tds7-login"
	// ProtocolNotTDS: the first byte is neither PRELOGIN, LOGIN7 nor a TLS
	// handshake record.
	ProtocolNotTDS Protocol = "not-tds"
)

// LoginOutcome is what the server answered to LOGIN7 (LoginInfo.Outcome).
type LoginOutcome string

// Login outcomes.
const (
	// LoginOK: LOGINACK seen (MS-TDS §2.2.7.14).
	LoginOK LoginOutcome = "ok"
	// LoginFailed: an ERROR token instead (e.g. 18456).
	LoginFailed LoginOutcome = "failed"
	// LoginUnknown: the response came encrypted or could not be parsed.
	LoginUnknown LoginOutcome = "unknown"
)

// MaxListEntries caps each list in a Record (notes, parse issues, alerts,
// faults); Dropped counts what went past it.
const MaxListEntries = 32

// PhaseMark is a phase reached and when, relative to Record.Start.
type PhaseMark struct {
	Phase Phase         `json:"phase"`
	At    time.Duration `json:"at_ns"`
	// Encrypted is true when the phase was inferred from encrypted records
	// (its content was not visible).
	Encrypted bool `json:"encrypted,omitempty"`
	// Held is how long a fault held the bytes that completed the phase
	// before passing them on; At is when they reached the proxy.
	Held time.Duration `json:"held_ns,omitempty"`
}

// PreloginInfo is what both PRELOGIN messages said (MS-TDS §2.2.6.5).
type PreloginInfo struct {
	Client *PreloginSide `json:"client,omitempty"`
	Server *PreloginSide `json:"server,omitempty"`
	// Scope is the outcome of the encryption negotiation: "none",
	// "login-only", "session" or "terminated".
	Scope string `json:"scope,omitempty"`
}

// PreloginSide is one PRELOGIN message.
type PreloginSide struct {
	// Version is the VERSION option as the sender wrote it (for a client,
	// its driver version; byte order varies by driver, see docs/protocol.md
	// "PRELOGIN").
	Version    string `json:"version,omitempty"`
	VersionHex string `json:"version_hex,omitempty"`
	Encryption string `json:"encryption,omitempty"`
	Instance   string `json:"instance,omitempty"`
	ThreadID   uint32 `json:"thread_id,omitempty"`
	MARS       *bool  `json:"mars,omitempty"`
	// ConnectionID and ActivityID come from TRACEID; the connection id is
	// what SQL Server's own logs show as ClientConnectionId.
	ConnectionID    string `json:"connection_id,omitempty"`
	ActivityID      string `json:"activity_id,omitempty"`
	FedAuthRequired *bool  `json:"fedauth_required,omitempty"`
	Nonce           bool   `json:"nonce,omitempty"`
	// Options lists the option tokens in wire order (names; unknown as hex).
	Options []string `json:"options,omitempty"`
}

// TLSInfo is what the TLS handshake showed.
type TLSInfo struct {
	// Wrapped is true when the handshake travelled inside PRELOGIN packets
	// (TDS 7.x), false for TDS 8.0 strict (TLS directly on TCP).
	Wrapped      bool              `json:"wrapped"`
	ClientHello  *ClientHelloInfo  `json:"client_hello,omitempty"`
	ServerHello  *ServerHelloInfo  `json:"server_hello,omitempty"`
	Certificates []CertificateInfo `json:"certificates,omitempty"`
	KeyExchange  *KeyExchangeInfo  `json:"key_exchange,omitempty"`
	Alerts       []AlertInfo       `json:"alerts,omitempty"`
	// Version and CipherSuite are the negotiated values, copied from the
	// ServerHello for convenience.
	Version     string `json:"version,omitempty"`
	CipherSuite string `json:"cipher_suite,omitempty"`
}

// ClientHelloInfo summarises a ClientHello (RFC 8446 §4.1.2).
type ClientHelloInfo struct {
	LegacyVersion           string   `json:"legacy_version"`
	SupportedVersions       []string `json:"supported_versions,omitempty"`
	HighestVersion          string   `json:"highest_version"`
	CipherSuites            []string `json:"cipher_suites"`
	Extensions              []string `json:"extensions"`
	SNI                     string   `json:"sni,omitempty"`
	ALPN                    []string `json:"alpn,omitempty"`
	SignatureAlgorithms     []string `json:"signature_algorithms,omitempty"`
	SignatureAlgorithmsCert []string `json:"signature_algorithms_cert,omitempty"`
	SupportedGroups         []string `json:"supported_groups,omitempty"`
	KeyShareGroups          []string `json:"key_share_groups,omitempty"`
	JA3                     string   `json:"ja3"`
	JA3Hash                 string   `json:"ja3_hash"`
	JA4                     string   `json:"ja4"`
	Length                  int      `json:"length"`
}

// ServerHelloInfo summarises a ServerHello.
type ServerHelloInfo struct {
	Version           string   `json:"version"`
	CipherSuite       string   `json:"cipher_suite"`
	Extensions        []string `json:"extensions"`
	SelectedGroup     string   `json:"selected_group,omitempty"`
	ALPN              string   `json:"alpn,omitempty"`
	HelloRetryRequest bool     `json:"hello_retry_request,omitempty"`
}

// CertificateInfo summarises one certificate of the server's chain.
type CertificateInfo struct {
	Subject            string    `json:"subject"`
	Issuer             string    `json:"issuer"`
	SignatureAlgorithm string    `json:"signature_algorithm"`
	SignatureHash      string    `json:"signature_hash,omitempty"`
	PublicKey          string    `json:"public_key"`
	PublicKeyBits      int       `json:"public_key_bits,omitempty"`
	NotBefore          time.Time `json:"not_before"`
	NotAfter           time.Time `json:"not_after"`
	// ThumbprintSHA1 is printed as SQL Server's error log prints
	// "Cert Hash(sha1)": uppercase hex.
	ThumbprintSHA1 string `json:"thumbprint_sha1"`
	SelfSigned     bool   `json:"self_signed,omitempty"`
	// WeakHashRisk flags a signature hash (MD5, SHA-1, SHA-224, SHA-512)
	// behind the weak-cert-hash scenario.
	WeakHashRisk bool `json:"weak_hash_risk,omitempty"`
}

// KeyExchangeInfo summarises a TLS 1.2 ServerKeyExchange.
type KeyExchangeInfo struct {
	Kind string `json:"kind"` // DHE, ECDHE
	// DHE: the prime's size, and whether the server's public value starts
	// with a zero byte or is shorter than the prime (the leading-zero case).
	DHPrimeBits int `json:"dh_prime_bits,omitempty"`
	// DHGroup names the group when p and g are a known one (ffdhe2048,
	// modp1024, rfc5114-2048-256, lz2049, ...; tlsbridge/dhe.Groups), or
	// "custom".
	DHGroup             string `json:"dh_group,omitempty"`
	DHPublicLeadingZero bool   `json:"dh_public_leading_zero,omitempty"`
	Curve               string `json:"curve,omitempty"`
}

// AlertInfo is a plaintext TLS alert and who sent it.
type AlertInfo struct {
	From        Side   `json:"from"`
	Level       string `json:"level"`
	Description string `json:"description"`
}

// LoginInfo is what LOGIN7 and its response showed. Fields other than
// Outcome are filled only when LOGIN7 travelled in plaintext (NOT_SUP).
type LoginInfo struct {
	Visible        bool   `json:"visible"`
	User           string `json:"user,omitempty"`
	App            string `json:"app,omitempty"`
	Host           string `json:"host,omitempty"`
	Server         string `json:"server,omitempty"`
	Database       string `json:"database,omitempty"`
	Library        string `json:"library,omitempty"`
	LibraryVersion string `json:"library_version,omitempty"`
	TDSVersion     string `json:"tds_version,omitempty"`
	PacketSize     uint32 `json:"packet_size,omitempty"`
	// Outcome is what the server answered (see LoginOutcome), or "" (not
	// seen yet).
	Outcome      LoginOutcome `json:"outcome,omitempty"`
	ErrorNumber  int32        `json:"error_number,omitempty"`
	ErrorMessage string       `json:"error_message,omitempty"`
	// ServerVersion is from LOGINACK when visible.
	ServerVersion string `json:"server_version,omitempty"`
}

// CloseKind is how a connection ended.
type CloseKind string

// Close kinds.
const (
	CloseFIN        CloseKind = "fin"
	CloseRST        CloseKind = "rst"
	CloseTimeout    CloseKind = "timeout"
	CloseAlert      CloseKind = "alert"
	CloseDialFailed CloseKind = "dial-failed"
	CloseShutdown   CloseKind = "shutdown"
	// CloseLimit: the proxy closed the connection because of a limit
	// (max_connections).
	CloseLimit CloseKind = "limit"
	CloseError CloseKind = "error"
)

// CloseInfo says who closed first, how, and in which phase.
type CloseInfo struct {
	By    Side      `json:"by"`
	Kind  CloseKind `json:"kind"`
	Phase Phase     `json:"phase"`
	// Awaiting names the side that owed the next bytes when the close came
	// (e.g. "server" when the client gave up on a silent server), and
	// Silence how long that side had been quiet.
	Awaiting Side          `json:"awaiting,omitempty"`
	Silence  time.Duration `json:"silence_ns,omitempty"`
	Reason   string        `json:"reason,omitempty"`
}

// ParseIssue is something the proxy could not parse.
type ParseIssue struct {
	Direction string `json:"direction"`
	Phase     Phase  `json:"phase"`
	// Offset is the byte offset in that direction's stream.
	Offset int64  `json:"offset"`
	What   string `json:"what"`
	Error  string `json:"error"`
}

// FaultEvent records a fault decision taken on the connection.
type FaultEvent struct {
	Rule     string        `json:"rule"`
	Scenario string        `json:"scenario,omitempty"`
	Phase    Phase         `json:"phase"`
	Action   string        `json:"action"`
	Detail   string        `json:"detail,omitempty"`
	At       time.Duration `json:"at_ns"`
}

// Clone returns a deep copy, safe to hand out while the session goes on.
func (r *Record) Clone() *Record {
	// One allocation for the record and its sections: a copy is made of
	// every finished connection (issue 17: allocations per login).
	blk := &cloneBlock{rec: *r}
	c := &blk.rec
	c.Phases = append([]PhaseMark(nil), r.Phases...)
	c.ParseIssues = append([]ParseIssue(nil), r.ParseIssues...)
	c.Faults = append([]FaultEvent(nil), r.Faults...)
	c.Notes = append([]string(nil), r.Notes...)
	c.Diagnosis = append([]Finding(nil), r.Diagnosis...)
	c.Steps = append([]Step(nil), r.Steps...)
	if r.Prelogin != nil {
		blk.prelogin = *r.Prelogin
		c.Prelogin = &blk.prelogin
	}
	if r.TLS != nil {
		blk.tls = *r.TLS
		blk.tls.Certificates = append([]CertificateInfo(nil), r.TLS.Certificates...)
		blk.tls.Alerts = append([]AlertInfo(nil), r.TLS.Alerts...)
		c.TLS = &blk.tls
	}
	if r.Login != nil {
		blk.login = *r.Login
		c.Login = &blk.login
	}
	c.Bridge = r.Bridge.Clone()
	if r.Close != nil {
		blk.close = *r.Close
		c.Close = &blk.close
	}
	return c
}

// cloneBlock is a cloned record with room for its sections.
type cloneBlock struct {
	rec      Record
	prelogin PreloginInfo
	tls      TLSInfo
	login    LoginInfo
	close    CloseInfo
}

// Reached reports whether the connection reached phase p.
func (r *Record) Reached(p Phase) bool {
	for _, m := range r.Phases {
		if m.Phase == p {
			return true
		}
	}
	return false
}

// Actions a decider records that are not injections: the rule looked at the
// connection and let it pass ("pass"), could not evaluate it ("skip"), or
// is waiting for a later phase ("armed"). They stay in the record's faults
// list, but the log's "fault" field names only a rule that acted, so that
// counting "fault" lines counts injections (issue 18 item 3).
const (
	ActionPass  = "pass"
	ActionSkip  = "skip"
	ActionArmed = "armed"
)

// Acted reports whether the event is an injection (a close, a delay, a
// generic fault attached) rather than a decision to let the connection be.
func (e FaultEvent) Acted() bool {
	switch e.Action {
	case "", ActionPass, ActionSkip, ActionArmed:
		return false
	}
	return true
}
