package probe

// Result is what a probe found. The JSON keys are the ones issue 14 fixes
// (tests outside the repository read them); docs/probe.md describes each.
// Versions and CipherSuites are what the server accepts inside PRELOGIN
// (TDS 7.x); strict mode has its own Strict.Versions.
type Result struct {
	Target       string              `json:"target"`
	Prelogin     PreloginResult      `json:"prelogin"`
	Strict       StrictResult        `json:"strict"`
	Versions     []string            `json:"versions"`
	CipherSuites map[string][]string `json:"cipher_suites"`
	DHE          DHEResult           `json:"dhe"`
	Certificates []CertResult        `json:"certificates"`
	Profiles     []ProfileResult     `json:"profiles"`
	Verdicts     []Verdict           `json:"verdicts"`

	// VersionAnswers says, per version, what a hello offering only that
	// version got inside PRELOGIN: "ServerHello ...", "alert fatal
	// protocol_version(70)", "closed without an alert (FIN)", ...
	VersionAnswers map[string]string `json:"version_answers"`
	// CipherOrder is "server" when the server picks by its own
	// preference (CipherSuites is then in that order), "client" when it
	// follows the offer, "unknown" with fewer than two suites.
	CipherOrder map[string]string `json:"cipher_order"`
	// KeyExchange maps each accepted suite to RSA, DHE, ECDHE or TLS13.
	KeyExchange   map[string]string `json:"key_exchange"`
	SignatureAlgs SigAlgResult      `json:"signature_algorithms"`
	Timing        TimingResult      `json:"timing"`
	// Notes are things the probe could not do, with the reason.
	Notes []string `json:"notes"`
}

// PreloginResult is the PRELOGIN exchange (MS-TDS §2.2.6.5).
type PreloginResult struct {
	// Via is "tds7" (plaintext PRELOGIN) or "strict" (PRELOGIN inside a
	// TDS 8.0 TLS session, when plaintext PRELOGIN was refused).
	Via     string `json:"via"`
	Version string `json:"version"`
	// Encryption is the server's setting as the answers show it: OFF,
	// ON (forced: it answers REQ to OFF) or NOT_SUP.
	Encryption string `json:"encryption"`
	// Answers maps each ENCRYPTION value sent (OFF, ON, NOT_SUP) to the
	// server's answer, or "closed" when it ended the connection instead.
	Answers          map[string]string `json:"answers"`
	ForcesEncryption bool              `json:"forces_encryption"`
	// Instance is the INSTOPT answer: "" when none was asked, "ok" when
	// the server accepted --instance, "mismatch" when it did not.
	Instance        string `json:"instance"`
	FedAuthRequired bool   `json:"fedauth_required"`
	MARS            bool   `json:"mars"`
}

// StrictResult is TDS 8.0 (TLS first, ALPN tds/8.0).
type StrictResult struct {
	Supported bool     `json:"supported"`
	Versions  []string `json:"versions"`
	// ALPN is the protocol the server selected ("tds/8.0" or "").
	ALPN    string            `json:"alpn"`
	Answers map[string]string `json:"answers"`
	// CipherSuites is filled only when the server has no TLS inside
	// PRELOGIN: the suites per version in strict mode.
	CipherSuites map[string][]string `json:"cipher_suites"`
}

// DHEResult is the finite-field Diffie-Hellman findings.
type DHEResult struct {
	Suites     []string `json:"suites"`
	GroupsBits []int    `json:"groups_bits"`
	// LeadingZero is "strip" (RFC 5246 §8.1.2, patched Schannel), "pad"
	// (unpatched) or "n/a"; LeadingZeroReason says why when n/a.
	LeadingZero       string `json:"leading_zero"`
	LeadingZeroReason string `json:"leading_zero_reason,omitempty"`
	// ShortPublic is the short-public-value variant: "accepted" (a dh_Yc
	// shorter than p, as OpenSSL 1.1.1 sends it, completes), "rejected"
	// (only the padded one does: unpatched Schannel) or "n/a" with
	// ShortPublicReason.
	ShortPublic       string `json:"short_public"`
	ShortPublicReason string `json:"short_public_reason,omitempty"`
}

// CertResult describes one certificate of the chain, leaf first.
type CertResult struct {
	Subject            string `json:"subject"`
	Issuer             string `json:"issuer"`
	SignatureAlgorithm string `json:"signature_algorithm"`
	SignatureHash      string `json:"signature_hash"`
	// ThumbprintSHA1 is upper-case hex, as SQL Server's error log prints
	// "Cert Hash(sha1)".
	ThumbprintSHA1 string `json:"thumbprint_sha1"`
	KeyType        string `json:"key_type"`
	KeyBits        int    `json:"key_bits"`
	NotBefore      string `json:"not_before"`
	NotAfter       string `json:"not_after"`
	Expired        bool   `json:"expired"`
	ExpiresSoon    bool   `json:"expires_within_30_days"`
	SelfSigned     bool   `json:"self_signed"`
	WeakHash       bool   `json:"weak_hash"`
	// HostNameMatch is set on the leaf only: whether it is valid for the
	// host name (or address) the probe connected to.
	HostNameMatch *bool `json:"host_name_match,omitempty"`
}

// ProfileResult is what a known client would get.
type ProfileResult struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Connects    bool   `json:"connects"`
	Version     string `json:"version"`
	CipherSuite string `json:"cipher_suite"`
	// Scenario names the scenario that fails the client (Connects false)
	// or that it is exposed to although it connects ("" when none).
	Scenario string `json:"scenario"`
	Why      string `json:"why"`
}

// Verdict is one scenario's status for this server.
type Verdict struct {
	Scenario string `json:"scenario"`
	Status   string `json:"status"` // risk, ok or n/a
	Why      string `json:"why"`
	Fix      string `json:"fix"`
}

// Verdict statuses.
const (
	StatusRisk = "risk"
	StatusOK   = "ok"
	StatusNA   = "n/a"
)

// SigAlgResult is signature-algorithm sensitivity under TLS 1.2.
type SigAlgResult struct {
	// Tested is the mode the single-hash hellos were sent in ("" if
	// the server does not accept TLS 1.2).
	Tested string `json:"tested"`
	// AcceptedAlone lists the RSA PKCS #1 hashes for which a hello whose
	// signature_algorithms holds only that scheme got a ServerHello.
	AcceptedAlone []string `json:"accepted_alone"`
	RefusedAlone  []string `json:"refused_alone"`
	// ClientMustList is what the chain's signatures require a client to
	// list (RFC 5246 §7.4.2): e.g. rsa_pkcs1_md5 for an MD5 leaf.
	ClientMustList []string `json:"client_must_list"`
}

// TimingResult is connect and PRELOGIN round-trip times in milliseconds.
type TimingResult struct {
	Samples       int       `json:"samples"`
	ConnectMS     []float64 `json:"connect_ms"`
	PreloginMS    []float64 `json:"prelogin_ms"`
	Failures      []string  `json:"failures"`
	SlowThreshold float64   `json:"slow_threshold_ms"`
}
