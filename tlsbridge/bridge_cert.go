package tlsbridge

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// BridgeCertConfig says where bridge mode gets the certificate it shows
// clients (docs/bridge.md). Exactly one of three sources applies:
//
//   - CertFile and KeyFile: a given pair, shown to every client;
//   - CAFile and CAKeyFile: a CA that signs a leaf per upstream host,
//     copying the upstream certificate's subject and SANs;
//   - neither: a CA generated once and kept in CAOut (the certificate) and
//     CAOut+".key" (its key, mode 0600), reused when both exist, which then
//     signs leaves as above.
type BridgeCertConfig struct {
	CertFile, KeyFile string
	CAFile, CAKeyFile string
	CAOut             string
}

// Validate checks that the options name one source completely.
func (c BridgeCertConfig) Validate() error {
	pair := c.CertFile != "" || c.KeyFile != ""
	ca := c.CAFile != "" || c.CAKeyFile != ""
	switch {
	case pair && ca:
		return errors.New("bridge: give --bridge-cert/--bridge-key or --bridge-ca/--bridge-ca-key, not both")
	case pair && (c.CertFile == "" || c.KeyFile == ""):
		return errors.New("bridge: --bridge-cert and --bridge-key go together")
	case ca && (c.CAFile == "" || c.CAKeyFile == ""):
		return errors.New("bridge: --bridge-ca and --bridge-ca-key go together")
	case (pair || ca) && c.CAOut != "":
		return errors.New("bridge: --bridge-ca-out applies only when no certificate or CA is given")
	}
	return nil
}

// CertSource hands out the certificate for a bridged connection.
type CertSource struct {
	fixed *tls.Certificate // a given pair
	ca    *tls.Certificate // the CA that mints leaves
	// CAPath is where the generated CA was written ("" otherwise);
	// Generated says it was made by this process now (not reused).
	CAPath    string
	Generated bool

	mu    sync.Mutex
	leafs map[string]*tls.Certificate // by host and hash
}

// DefaultCAOut is where a generated CA goes when CAOut is empty: the
// user's configuration directory, tdsproxy/bridge-ca.pem.
func DefaultCAOut() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, "tdsproxy", "bridge-ca.pem")
}

// LoadCertSource loads or creates the source c names.
func LoadCertSource(c BridgeCertConfig) (*CertSource, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s := &CertSource{leafs: make(map[string]*tls.Certificate)}
	switch {
	case c.CertFile != "":
		pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("bridge: certificate %s / key %s: %w", c.CertFile, c.KeyFile, err)
		}
		s.fixed = &pair
		return s, nil
	case c.CAFile != "":
		ca, err := loadCA(c.CAFile, c.CAKeyFile)
		if err != nil {
			return nil, err
		}
		s.ca = ca
		return s, nil
	}
	out := c.CAOut
	if out == "" {
		out = DefaultCAOut()
	}
	keyOut := out + ".key"
	if _, err := os.Stat(out); err == nil {
		if _, err := os.Stat(keyOut); err == nil {
			ca, err := loadCA(out, keyOut)
			if err != nil {
				return nil, fmt.Errorf("bridge: reusing the CA in %s: %w", out, err)
			}
			s.ca, s.CAPath = ca, out
			return s, nil
		}
	}
	ca, certPEM, keyPEM, err := GenerateCertificate(CertOptions{CommonName: "tdsproxy bridge CA", IsCA: true,
		DNSNames: []string{"tdsproxy-bridge-ca.invalid"}, NotAfter: timeYears(5)})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		return nil, fmt.Errorf("bridge: CA directory: %w", err)
	}
	// The key first, created 0600: it must never exist with a looser mode.
	if err := writeFileExclusive(keyOut, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileExclusive(out, certPEM, 0o644); err != nil {
		return nil, err
	}
	s.ca, s.CAPath, s.Generated = &ca, out, true
	return s, nil
}

func writeFileExclusive(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("bridge: writing %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil { // an existing file keeps its mode otherwise
		f.Close()
		return fmt.Errorf("bridge: chmod %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("bridge: writing %s: %w", path, err)
	}
	return f.Close()
}

func loadCA(certFile, keyFile string) (*tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("bridge: CA %s / key %s: %w", certFile, keyFile, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("bridge: CA %s: %w", certFile, err)
	}
	if !leaf.IsCA {
		return nil, fmt.Errorf("bridge: %s is not a CA certificate (basicConstraints cA is false)", certFile)
	}
	pair.Leaf = leaf
	// Leaves are signed by GenerateCertificate, which signs with RSA.
	if _, err := issuerKey(&pair); err != nil {
		return nil, fmt.Errorf("bridge: CA %s: %w", certFile, err)
	}
	return &pair, nil
}

func issuerKey(c *tls.Certificate) (any, error) {
	_, key, err := issuerOf(c)
	return key, err
}

// CAPEM returns the CA certificate clients must trust, PEM-encoded, or nil
// when a fixed pair is used.
func (s *CertSource) CAPEM() []byte {
	if s.ca == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ca.Certificate[0]})
}

// Fixed reports whether the source is a given pair.
func (s *CertSource) Fixed() bool { return s.fixed != nil }

// Certificate returns the certificate to show a client whose upstream is
// host and answered with upstream (nil when unknown). hash is the
// signature hash of a minted leaf ("" means sha256; the weak-cert-hash
// scenario asks for md5, sha1, sha224 or sha512). A given pair is returned
// as it is whatever hash says; minted leaves are cached per host, subject
// and hash.
func (s *CertSource) Certificate(host string, upstream *x509.Certificate, hash string) (*tls.Certificate, error) {
	if s.fixed != nil && hash == "" {
		return s.fixed, nil
	}
	issuer := s.ca
	hash = strings.ToLower(hash)
	opts := CertOptions{Hash: hash, Issuer: issuer}
	if upstream != nil {
		opts.RawSubject = upstream.RawSubject
		opts.CommonName = upstream.Subject.CommonName
		opts.DNSNames = upstream.DNSNames
		opts.IPs = upstream.IPAddresses
	}
	if len(opts.DNSNames) == 0 && len(opts.IPs) == 0 {
		if ip := net.ParseIP(host); ip != nil {
			opts.IPs = []net.IP{ip}
		} else if host != "" {
			opts.DNSNames = []string{host}
		}
	}
	if opts.CommonName == "" {
		opts.CommonName = host
	}
	if issuer == nil {
		// A given pair with a scenario hash: a self-signed stand-in
		// with the pair's names, signed with that hash.
		opts.Issuer = nil
		if l := s.fixed.Leaf; l != nil {
			opts.RawSubject, opts.DNSNames, opts.IPs = l.RawSubject, l.DNSNames, l.IPAddresses
		}
	}
	key := host + "\x00" + hash + "\x00" + string(opts.RawSubject)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.leafs[key]; ok {
		return c, nil
	}
	c, _, _, err := GenerateCertificate(opts)
	if err != nil {
		return nil, fmt.Errorf("bridge: minting a certificate for %s: %w", host, err)
	}
	if len(s.leafs) >= 1024 {
		clear(s.leafs) // a bound: one proxy has one upstream, a few hashes
	}
	s.leafs[key] = &c
	return &c, nil
}

func timeYears(n int) time.Time { return time.Now().AddDate(n, 0, 0) }
