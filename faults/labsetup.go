package faults

import (
	"crypto/tls"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// Lab clients: internal/lab's client names, the keys of LabExpect.Errors,
// LabSetup.AfterFor, NoteFor and Cannot. In the DHE scenarios LabGo, the
// lab's default client, is the DHE engine's own client (tlsbridge/dhe):
// go-mssqldb has no DHE (Go's crypto/tls has none).
const (
	LabGo      = "go"
	LabJDBC    = "jdbc"
	LabODBC    = "odbc"
	LabTedious = "tedious"
	LabTSQL    = "tsql"
)

// LabSetup is how `tdsproxy lab` (internal/lab) shows a scenario's failure
// with a real client and proves its fix: the rule and server before the
// fix, the client before and after, the server after (when the fix is on
// the server) and what the client before the fix must see.
type LabSetup struct {
	// Options and Close are the rule armed for the client before the fix
	// (named after the scenario).
	Options map[string]string
	Close   string
	// Server is the upstream before the fix.
	Server LabServer
	// Fixed is the upstream after the fix, with no rule armed: the fix is
	// on the server. Nil: the same server and rule, and the client changes.
	Fixed *LabServer
	// Before and After are the client before and after the fix; AfterFor
	// replaces After for one client.
	Before, After LabClient
	AfterFor      map[string]LabClient
	// OneProxy: go-mssqldb's two connections share one proxy (a held
	// connection waits in its own goroutine, so the second does not wait
	// behind the first).
	OneProxy bool
	Expect   LabExpect
	// Note explains a go-mssqldb row, ExtNote another driver's row;
	// NoteFor adds to ExtNote for one client.
	Note, ExtNote string
	NoteFor       map[string]string
	// HoldNote explains `tdsproxy lab --hold`. Cannot says, per client,
	// why it cannot be set up to meet the fault.
	HoldNote string
	Cannot   map[string]string
	// LeadingZero, for a DHE scenario, adds the natural and forced counts.
	LeadingZero *LabLeadingZero
}

// LabServer is the emulator the lab starts as the upstream.
type LabServer struct {
	// TLSMin, TLSMax and Suites bound the emulator's TLS; 0/nil: defaults.
	TLSMin, TLSMax uint16
	Suites         []uint16
	// CertHash is the signature hash of the certificate served ("md5");
	// "" is the emulator's own (SHA-256).
	CertHash string
	// DHE, when set, makes the emulator negotiate TLS_DHE_RSA with the
	// DHE engine (tlsbridge/dhe): the real form of the DHE scenarios,
	// where the emulator itself is the failing Windows server and no rule
	// is armed. Nil: DHE off (crypto/tls, ECDHE).
	DHE *LabDHE
	// Desc describes the upstream and the rule, for a row.
	Desc string
}

// LabDHE is the emulator's DHE policy, as the flags of `tdsproxy emulate`
// spell it (--dhe, --dhe-group, --dhe-z, --dhe-fail; docs/dhe.md).
type LabDHE struct {
	Mode  string // prefer or only
	Group string // dhe.Groups(): ffdhe2048, lz2049, ...
	Z     string // strip or pad
	Fail  string // fin, rst or alert
	// Refused names, per client, the words of its refusal of Group (JSSE
	// refuses lz2049's 2049 bits): that client cannot be forced to the
	// leading-zero failure with this group.
	Refused map[string][]string
}

// Flags is the policy as `tdsproxy emulate` flags.
func (d *LabDHE) Flags() string {
	if d == nil {
		return "--dhe off"
	}
	return "--dhe " + d.Mode + " --dhe-group " + d.Group + " --dhe-z " + d.Z + " --dhe-fail " + d.Fail
}

// LabLeadingZero is what a DHE scenario's lab counts besides its one
// connection before and after the fix: Handshakes (0: the lab's default)
// by the client against Natural (a padding server in a real group, where
// about 1 shared secret in 256 starts with a zero byte), ForcedN
// handshakes by the engine's grinding client against Natural and against
// the same server stripping, and after the fix Handshakes against Fixed's
// server.
type LabLeadingZero struct {
	Natural LabDHE
	// Expected is the natural share of zero-led shared secrets in
	// Natural's group, and ExpectedText says it as a fraction.
	Expected     float64
	ExpectedText string
	ForcedN      int
}

// LabClient is how a client is set up, whatever its library.
type LabClient struct {
	// TLSMin and TLSMax bound the versions offered; 0: the defaults.
	TLSMin, TLSMax uint16
	// Suite is the one TLS 1.2 suite offered; 0: the defaults.
	Suite uint16
	// Timeout is the connect/login timeout in seconds; 0: the lab's.
	Timeout int
	// Strict is TDS 8.0 (TLS first).
	Strict bool
}

// LabExpect is what the connection before the fix must show; the rule must
// have injected at the scenario's Phase.
type LabExpect struct {
	// By and Kind are who closed first and how; Kind "" accepts any.
	By   proxy.Side
	Kind proxy.CloseKind
	// Errors are, per client, substrings its error must all contain
	// (docs/clients.md).
	Errors map[string][]string
	// AfterDelayed: the rule still delays the client after the fix (the
	// fix is a client that copes with the delay).
	AfterDelayed bool
}

// The delayed-accept lab: the proxy holds each accepted connection for
// labAcceptDelay; the client before the fix gives up after
// labBeforeTimeout seconds of silence, the one after waits
// labAfterTimeout. Short, so the whole lab stays within seconds, and far
// enough apart that a loaded machine does not blur them.
const (
	labAcceptDelay   = 3 * time.Second
	labBeforeTimeout = 1
	labAfterTimeout  = 5
)

// The cipher-mismatch lab: the emulated server allows only labServerSuite;
// the client before the fix offers only labClientSuite.
const (
	labServerSuite = tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
	labClientSuite = tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
)

// resetErrors and timeoutErrors are each client's own words for a reset
// during the handshake and for giving up on a silent server
// (docs/clients.md).
var (
	resetErrors = map[string][]string{
		LabGo:      {"TLS Handshake failed", "connection reset by peer"},
		LabJDBC:    {"could not establish a secure connection", "Error: Connection reset."},
		LabODBC:    {"TCP Provider: Error code 0x68"},
		LabTedious: {"Failed to connect to ", "read ECONNRESET"},
		LabTSQL:    {"Adaptive Server connection failed"},
	}
	timeoutErrors = map[string][]string{
		LabGo:      {"i/o timeout"},
		LabJDBC:    {"Read timed out"},
		LabODBC:    {"TCP Provider: Timeout error [258]."},
		LabTedious: {"Failed to connect to ", " in 1000ms"},
		LabTSQL:    {"Adaptive Server connection timed out"},
	}
)

// SoakCase is one way internal/soak hits connections with a scenario,
// among clean ones: the rule, how its go-mssqldb client connects, and the
// errors of which it must end with one.
type SoakCase struct {
	// Name names the case (and its rule) in soak's report.
	Name string
	// Options and Close are the rule's.
	Options map[string]string
	Close   string
	// Encrypt is the client's encrypt= ("disable", "true").
	Encrypt string
	// Client narrows the client's TLS versions and sets its timeout.
	Client LabClient
	// WantErr: the client's error contains one of these (go-mssqldb
	// flattens most errors to text).
	WantErr []string
}

// soakHandshakeReset is how go-mssqldb reports a reset of its handshake.
var soakHandshakeReset = []string{"TLS Handshake failed", "connection reset by peer"}
