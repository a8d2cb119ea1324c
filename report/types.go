package report

import "time"

// Report is what `tdsproxy report --json` prints. Its four keys are read by
// tests outside the repository: keep them as written (issue 15).
type Report struct {
	Clients    []Client    `json:"clients"`
	Readiness  []Readiness `json:"readiness"`
	Failures   []Failure   `json:"failures"`
	SlowLogins []SlowStep  `json:"slow_logins"`

	input   Input
	offered map[int64]map[string]int
	certs   map[string]int
}

// Input returns the counts of what was read.
func (r *Report) Input() Input { return r.input }

// Client is one client identity: an address with what the connections from
// it showed (LOGIN7 host, application and library when visible, the
// PRELOGIN driver version, the ClientHello's JA4).
type Client struct {
	// ID is the identity as one string; readiness lists name clients by it.
	ID             string `json:"id"`
	Address        string `json:"address"`
	Host           string `json:"host,omitempty"`
	App            string `json:"app,omitempty"`
	Library        string `json:"library,omitempty"`
	LibraryVersion string `json:"library_version,omitempty"`
	// DriverVersion is PRELOGIN's VERSION as the client sent it.
	DriverVersion string `json:"driver_version,omitempty"`
	JA4           string `json:"ja4,omitempty"`

	Connections int `json:"connections"`
	// Failures counts connections with a finding other than slow-login.
	Failures  int       `json:"failures"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`

	// Protocols: tds7, tds8-strict, tds7-login, not-tds.
	Protocols []string `json:"protocols"`
	// Encryption lists the PRELOGIN ENCRYPTION values the client sent.
	Encryption            []string       `json:"encryption"`
	TLSOffered            []string       `json:"tls_offered"`
	TLSNegotiated         []string       `json:"tls_negotiated"`
	SuitesOffered         []string       `json:"suites_offered"`
	SuitesNegotiated      []string       `json:"suites_negotiated"`
	CertificateSignatures []string       `json:"certificate_signatures,omitempty"`
	Findings              map[string]int `json:"findings,omitempty"`
}

// Readiness is one server change and who it affects.
type Readiness struct {
	Change string `json:"change"`
	// Breaks lists the clients whose offers do not overlap what remains.
	Breaks []string `json:"breaks"`
	// Changes lists the clients that would still connect, differently (a
	// different version or suite, or a failure that goes away).
	Changes []string `json:"changes"`
	// Unaffected counts the other clients.
	Unaffected int `json:"unaffected"`
	// Evidence says, per client id in Breaks and Changes, why.
	Evidence map[string]string `json:"evidence"`
}

// Failure is one finding across all connections.
type Failure struct {
	Finding string `json:"finding"`
	// Number is the SQL Server error number of a login-failed finding;
	// each number is its own entry.
	Number int32 `json:"number,omitempty"`
	Count  int   `json:"count"`
	// Injected counts the connections where a fault rule caused it.
	Injected  int       `json:"injected"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Fix       string    `json:"fix"`
	Examples  []Example `json:"examples"`
}

// Example is one connection behind a failure or a slow step.
type Example struct {
	Client   string    `json:"client"`
	Proxy    string    `json:"proxy,omitempty"`
	Conn     uint64    `json:"conn"`
	At       time.Time `json:"at"`
	Evidence string    `json:"evidence"`
	Injected bool      `json:"injected,omitempty"`
	Rule     string    `json:"rule,omitempty"`
}

// SlowStep is one login step over every completed login.
type SlowStep struct {
	Step    string `json:"step"`
	Awaited string `json:"awaited"`
	// Logins counts completed logins with this step; Slow those whose
	// slow-login finding named it; Inferred those where its end was
	// inferred from encrypted records.
	Logins   int64         `json:"logins"`
	Slow     int64         `json:"slow"`
	Inferred int64         `json:"inferred"`
	Mean     time.Duration `json:"mean_ns"`
	P50      time.Duration `json:"p50_ns"`
	P95      time.Duration `json:"p95_ns"`
	Max      time.Duration `json:"max_ns"`
	// Histogram counts logins by step time: each bucket up to LE (0: the
	// overflow bucket past 100 s).
	Histogram []Bucket  `json:"histogram"`
	Examples  []Example `json:"examples"`
}

// Bucket is one histogram bucket.
type Bucket struct {
	LE    time.Duration `json:"le_ns"`
	Count int64         `json:"count"`
}
