// Package dhe is a small TLS 1.0-1.2 implementation of the DHE_RSA key
// exchange (RFC 5246 §7.4.3, §8.1.2) for both roles, with knobs that
// reproduce the DHE "leading zero" interoperability failure (docs/dhe.md):
// how the shared secret Z becomes the pre-master secret (ZStrip, as RFC
// 5246 §8.1.2 says; ZPad, as unpatched Schannel does), how the public value
// is encoded (YMinimal, YPadded), what a server does when the client's
// Finished cannot be decrypted (FailAlert, FailFIN, FailRST), and a client
// that grinds its private key until Z starts with a zero byte.
//
// crypto/tls has no finite-field DHE at all, so this engine exists; it is
// built only from the standard library's primitives. It does the six
// TLS_DHE_RSA suites with AES (GCM, RFC 5288; CBC with HMAC, RFC 5246
// §6.2.3.2), extended master secret (RFC 7627), the renegotiation_info
// extension (RFC 5746; renegotiation itself is refused) and ALPN (RFC
// 7301). There is no session resumption, no client certificate and no TLS
// 1.3.
//
// A Conn is a net.Conn over any transport: a tlsbridge.FramedConn during a
// TDS 7.x handshake (TLS inside PRELOGIN packets, MS-TDS §2.2.6.5), or a
// TCP conn for TDS 8.0 strict. It reads exactly one record at a time from
// its transport, never more, so plaintext that follows a record (the
// login-only mode of TDS) stays on the wire.
//
// Nothing here panics on wire input: malformed input is a decode_error
// (or another fatal alert) and an error.
package dhe
