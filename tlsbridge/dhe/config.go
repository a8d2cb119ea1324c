package dhe

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
)

// Config configures a Conn. Zero fields have the documented defaults; a
// Config must not change while a Conn uses it.
type Config struct {
	// Certificates holds the server's certificate; the first one is used
	// and its key must be an RSA crypto.Signer. Required for a server.
	Certificates []tls.Certificate
	// CipherSuites lists the allowed suites in order of preference (the
	// server's order decides); nil means CipherSuites().
	CipherSuites []uint16
	// MinVersion and MaxVersion bound the protocol version; 0 means TLS
	// 1.2 for both.
	MinVersion, MaxVersion uint16
	// Group is the server's DH group; nil means ffdhe2048.
	Group *Group
	// MinGroupBits is the smallest prime a client accepts; 0 means
	// DefaultMinGroupBits.
	MinGroupBits int
	// Z, Y: the encodings of the shared secret and of this side's public
	// value (docs/dhe.md). Zero: ZStrip, YMinimal.
	Z ZEncoding
	Y YEncoding
	// Fail is what a server does when the client's Finished fails; zero
	// is FailAlert.
	Fail FailMode
	// Grind (client) chooses the private key so that the shared secret
	// starts with a zero byte, trying at most GrindLimit keys (0 means
	// DefaultGrindLimit).
	Grind bool
	// GrindPublic (client) chooses the private key so that the public
	// value Yc = g^x mod p starts with a zero byte when encoded at the
	// length of p: with YMinimal dh_Yc is then shorter than p, as OpenSSL
	// 1.1.1 sends it (docs/dhe.md, the short-public-value variant); with
	// YPadded it is sent at full length. About 1 key in 256 qualifies
	// (1 in 65536 with Grind too); GrindLimit bounds the tries.
	GrindPublic bool
	GrindLimit  int
	// RejectShortPublic (server) mishandles a dh_Yc shorter than p, as
	// unpatched Schannel does (docs/dhe.md, the short-public-value
	// variant): it derives a pre-master secret the client cannot have, so
	// the client's Finished fails the way Fail says, with an error that
	// is both ErrBadFinished and ErrShortPublic.
	RejectShortPublic bool
	// DisableExtendedMasterSecret stops this side from offering or
	// accepting RFC 7627.
	DisableExtendedMasterSecret bool
	// NextProtos are the ALPN protocols (RFC 7301): offered by a client;
	// a server selects the first of its own that the client offers.
	NextProtos []string
	// ServerName is the name a client sends (SNI) and verifies.
	ServerName string
	// InsecureSkipVerify makes a client accept any server certificate;
	// otherwise it is verified against RootCAs (nil: the system pool)
	// and ServerName.
	InsecureSkipVerify bool
	RootCAs            *x509.CertPool
	// KeyLogWriter receives the master secret in NSS key log format
	// (CLIENT_RANDOM), for Wireshark.
	KeyLogWriter io.Writer
	// Rand is the source of randoms and private keys; nil means
	// crypto/rand. Tests pass a seeded reader.
	Rand io.Reader
}

func (c *Config) rand() io.Reader {
	if c.Rand != nil {
		return c.Rand
	}
	return rand.Reader
}

func (c *Config) versions() (lo, hi uint16) {
	lo, hi = c.MinVersion, c.MaxVersion
	if lo == 0 {
		lo = VersionTLS12
	}
	if hi == 0 {
		hi = VersionTLS12
	}
	return lo, hi
}

func (c *Config) suites() []uint16 {
	if c.CipherSuites == nil {
		return CipherSuites()
	}
	return c.CipherSuites
}

func (c *Config) group() *Group {
	if c.Group != nil {
		return c.Group
	}
	return groupFFDHE2048
}

// check validates a Config for a role.
func (c *Config) check(server bool) error {
	lo, hi := c.versions()
	if lo < VersionTLS10 || hi > VersionTLS12 || lo > hi {
		return fmt.Errorf("dhe: Config versions 0x%04X..0x%04X: want TLS 1.0..1.2", lo, hi)
	}
	for _, id := range c.suites() {
		if suiteByID(id) == nil {
			return fmt.Errorf("dhe: Config.CipherSuites: 0x%04X is not a DHE_RSA suite this engine implements", id)
		}
	}
	if server && (len(c.Certificates) == 0 || c.Certificates[0].PrivateKey == nil) {
		return errors.New("dhe: Config.Certificates: a server needs a certificate with its key")
	}
	return nil
}
