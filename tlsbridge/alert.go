package tlsbridge

import (
	"fmt"
	"strconv"
	"strings"
)

// Alert levels (RFC 5246 §7.2; TLS 1.3 ignores the level, RFC 8446 §6).
const (
	AlertLevelWarning uint8 = 1
	AlertLevelFatal   uint8 = 2
)

// Alert descriptions this package refers to by name (RFC 8446 §6, RFC 5246 §7.2).
const (
	AlertCloseNotify          uint8 = 0
	AlertUnexpectedMessage    uint8 = 10
	AlertHandshakeFailure     uint8 = 40
	AlertBadCertificate       uint8 = 42
	AlertIllegalParameter     uint8 = 47
	AlertDecodeError          uint8 = 50
	AlertDecryptError         uint8 = 51
	AlertProtocolVersion      uint8 = 70
	AlertInsufficientSecurity uint8 = 71
	AlertInternalError        uint8 = 80
)

// alertNames is the IANA "TLS Alerts" registry.
var alertNames = map[uint8]string{
	0:   "close_notify",
	1:   "end_of_early_data", // draft TLS 1.3 only; never sent by RFC 8446 stacks
	10:  "unexpected_message",
	20:  "bad_record_mac",
	21:  "decryption_failed",
	22:  "record_overflow",
	30:  "decompression_failure",
	40:  "handshake_failure",
	41:  "no_certificate",
	42:  "bad_certificate",
	43:  "unsupported_certificate",
	44:  "certificate_revoked",
	45:  "certificate_expired",
	46:  "certificate_unknown",
	47:  "illegal_parameter",
	48:  "unknown_ca",
	49:  "access_denied",
	50:  "decode_error",
	51:  "decrypt_error",
	60:  "export_restriction",
	70:  "protocol_version",
	71:  "insufficient_security",
	80:  "internal_error",
	86:  "inappropriate_fallback",
	90:  "user_canceled",
	100: "no_renegotiation",
	109: "missing_extension",
	110: "unsupported_extension",
	111: "certificate_unobtainable",
	112: "unrecognized_name",
	113: "bad_certificate_status_response",
	114: "bad_certificate_hash_value",
	115: "unknown_psk_identity",
	116: "certificate_required",
	117: "general_error",
	120: "no_application_protocol",
	121: "ech_required",
}

var alertsByName = func() map[string]uint8 {
	m := make(map[string]uint8, len(alertNames))
	for d, n := range alertNames {
		m[n] = d
	}
	return m
}()

// Alert is a TLS alert message (RFC 8446 §6).
type Alert struct {
	Level       uint8
	Description uint8
}

// LevelName returns "warning", "fatal", or "level(N)".
func (a Alert) LevelName() string {
	switch a.Level {
	case AlertLevelWarning:
		return "warning"
	case AlertLevelFatal:
		return "fatal"
	}
	return fmt.Sprintf("level(%d)", a.Level)
}

// String returns e.g. "fatal handshake_failure(40)".
func (a Alert) String() string {
	return fmt.Sprintf("%s %s(%d)", a.LevelName(), AlertName(a.Description), a.Description)
}

// AlertName returns the registry name of an alert description
// ("handshake_failure"), or "alert(N)" for an unassigned one.
func AlertName(desc uint8) string {
	if n, ok := alertNames[desc]; ok {
		return n
	}
	return fmt.Sprintf("alert(%d)", desc)
}

// AlertByName looks up an alert description by its registry name, as a
// user writes it after `--close alert:`. Case, and '-' or ' ' for '_', do
// not matter; a decimal number (0..255) is accepted as is.
func AlertByName(name string) (uint8, bool) {
	n := strings.ToLower(strings.TrimSpace(name))
	n = strings.NewReplacer("-", "_", " ", "_").Replace(n)
	if d, ok := alertsByName[n]; ok {
		return d, true
	}
	if v, err := strconv.ParseUint(n, 10, 8); err == nil {
		return uint8(v), true
	}
	return 0, false
}

// ParseAlert parses the body of a plaintext alert record.
func ParseAlert(body []byte) (Alert, error) {
	if len(body) != 2 {
		return Alert{}, fmt.Errorf("tlsbridge: alert of %d bytes, want 2: %w", len(body), ErrMalformed)
	}
	return Alert{Level: body[0], Description: body[1]}, nil
}

// AlertRecord builds a plaintext alert record: content type 21, the given
// record version (use the version the peer is negotiating, or 0x0303),
// length 2, level, description.
func AlertRecord(version uint16, level, desc uint8) []byte {
	return []byte{byte(ContentAlert), byte(version >> 8), byte(version), 0, 2, level, desc}
}

// FatalAlertRecord builds the plaintext fatal alert a handshake failure
// sends. The record version is 0x0303, which every TLS 1.2 and 1.3 peer
// accepts on a plaintext record (RFC 8446 §5.1, legacy_record_version;
// RFC 5246 Appendix E.1), and the level is fatal, the only level a
// handshake failure uses (RFC 8446 §6).
func FatalAlertRecord(desc uint8) []byte {
	return AlertRecord(VersionTLS12, AlertLevelFatal, desc)
}
