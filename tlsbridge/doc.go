// Package tlsbridge handles TLS as TDS carries it: the framing conn that
// wraps TLS records in PRELOGIN packets during a TDS 7.x handshake, and the
// passive parsing a proxy does on a copy of what passes.
//
// The parsing side follows a handshake without taking part in it. A Stream
// per direction is fed raw TLS bytes in whatever chunks the network
// delivers; it reassembles records and handshake messages (RFC 5246
// §6.2.1, RFC 8446 §5.1) and reports them as Events. The Parse functions
// turn a handshake message into a typed value (ClientHello, ServerHello,
// CertificateMsg, ServerKeyExchange) that keeps the original bytes in Raw,
// so a proxy in passthrough mode forwards exactly what arrived.
// SummarizeCertificate reads what matters about a server certificate,
// including signature hashes that crypto/x509 does not know (SHA-224), and
// GenerateCertificate builds certificates signed with weak hashes for the
// emulator and the fault lab. JA3 and JA4 fingerprint a ClientHello.
//
// Nothing here panics on wire input: malformed input yields an error that
// wraps ErrMalformed (or another sentinel) and says where parsing stopped.
// All parsing uses golang.org/x/crypto/cryptobyte, so no read can overrun.
package tlsbridge
