package probe

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// profile is a known client's offer, as data: what its ClientHello lists.
// The lists follow each stack's documented defaults (Schannel cipher suite
// lists per Windows version, Go crypto/tls, OpenSSL 3.0 DEFAULT, JDK 17
// JSSE); they are approximations of a real hello, not captures.
type profile struct {
	name, description string
	versions          []uint16
	suites            []string // IANA names, in the client's order
	sigAlgs           []uint16 // nil below TLS 1.2
	sigAlgsCert       []uint16 // signature_algorithms_cert; nil if not sent
	groups            []uint16
}

var profiles = []profile{
	{
		name:        "netfx-tls10",
		description: "old .NET Framework / SQL Native Client on Windows 7 or Server 2008 R2 without the TLS 1.2 updates: TLS 1.0 only",
		versions:    []uint16{tlsbridge.VersionTLS10},
		suites: []string{
			"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
			"TLS_DHE_RSA_WITH_AES_256_CBC_SHA", "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
			"TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA",
			"TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
			"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
			"TLS_RSA_WITH_RC4_128_MD5",
		},
		groups: []uint16{0x0017, 0x0018, 0x0019},
	},
	{
		name:        "win2012r2",
		description: "Windows Server 2012 R2 / 8.1 Schannel client (TLS 1.0-1.2), DHE first, no ECDHE_RSA with GCM",
		versions:    []uint16{tlsbridge.VersionTLS10, tlsbridge.VersionTLS11, tlsbridge.VersionTLS12},
		suites: []string{
			"TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
			"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
			"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
			"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
			"TLS_DHE_RSA_WITH_AES_256_CBC_SHA", "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
			"TLS_RSA_WITH_AES_256_GCM_SHA384", "TLS_RSA_WITH_AES_128_GCM_SHA256",
			"TLS_RSA_WITH_AES_256_CBC_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA256",
			"TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA",
			"TLS_RSA_WITH_3DES_EDE_CBC_SHA",
		},
		sigAlgs: []uint16{0x0401, 0x0501, 0x0201, 0x0403, 0x0503, 0x0203, 0x0202, 0x0601, 0x0603},
		groups:  []uint16{0x0017, 0x0018},
	},
	{
		name:        "go-mssqldb",
		description: "go-mssqldb with Go crypto/tls defaults (TLS 1.2-1.3, ECDHE only, no DHE)",
		versions:    []uint16{tlsbridge.VersionTLS12, tlsbridge.VersionTLS13},
		suites: []string{
			"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
			"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
			"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
		},
		sigAlgs: []uint16{0x0804, 0x0403, 0x0807, 0x0805, 0x0503, 0x0806, 0x0603, 0x0401, 0x0501, 0x0601},
		// Go lists SHA-1 for certificates only (docs/protocol.md).
		sigAlgsCert: []uint16{0x0804, 0x0403, 0x0807, 0x0805, 0x0503, 0x0806, 0x0603, 0x0401, 0x0501, 0x0601, 0x0201, 0x0203},
		groups:      []uint16{0x001d, 0x0017, 0x0018, 0x0019},
	},
	{
		name:        "openssl3",
		description: "OpenSSL 3.0 DEFAULT (tedious/Node, ODBC Driver 18 on Linux): TLS 1.2-1.3, DHE after ECDHE",
		versions:    []uint16{tlsbridge.VersionTLS12, tlsbridge.VersionTLS13},
		suites: []string{
			"TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
			"TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
			"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
			"TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
			"TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
			"TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
			"TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
			"TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
			"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
			"TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
			"TLS_RSA_WITH_AES_256_GCM_SHA384", "TLS_RSA_WITH_AES_128_GCM_SHA256",
			"TLS_RSA_WITH_AES_256_CBC_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA256",
			"TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA",
		},
		sigAlgs: []uint16{0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0809, 0x080a, 0x080b, 0x0401, 0x0501, 0x0601, 0x0303, 0x0301},
		groups:  []uint16{0x001d, 0x0017, 0x001e, 0x0019, 0x0018, 0x0100, 0x0101, 0x0102, 0x0103, 0x0104},
	},
	{
		name:        "java17",
		description: "JDK 17 JSSE (mssql-jdbc): TLS 1.2-1.3, DHE enabled, SHA-1 and SHA-224 signature schemes listed",
		versions:    []uint16{tlsbridge.VersionTLS12, tlsbridge.VersionTLS13},
		suites: []string{
			"TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
			"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
			"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
			"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
			"TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
			"TLS_DHE_DSS_WITH_AES_256_GCM_SHA384", "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
			"TLS_DHE_DSS_WITH_AES_128_GCM_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
			"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
			"TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256",
			"TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
			"TLS_DHE_RSA_WITH_AES_256_CBC_SHA", "TLS_DHE_DSS_WITH_AES_256_CBC_SHA",
			"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
			"TLS_DHE_RSA_WITH_AES_128_CBC_SHA", "TLS_DHE_DSS_WITH_AES_128_CBC_SHA",
			"TLS_RSA_WITH_AES_256_GCM_SHA384", "TLS_RSA_WITH_AES_128_GCM_SHA256",
			"TLS_RSA_WITH_AES_256_CBC_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA256",
			"TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA",
		},
		sigAlgs: []uint16{0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0809, 0x080a, 0x080b, 0x0401, 0x0501, 0x0601, 0x0402, 0x0303, 0x0301, 0x0302, 0x0203, 0x0201, 0x0202},
		groups:  []uint16{0x001d, 0x0017, 0x0018, 0x0019, 0x001e, 0x0100, 0x0101, 0x0102, 0x0103, 0x0104},
	},
}

// ProfileNames lists the known client profiles, for --client-profile.
func ProfileNames() []string {
	out := make([]string, len(profiles))
	for i, p := range profiles {
		out[i] = p.name
	}
	return out
}

func profileByName(name string) (profile, bool) {
	for _, p := range profiles {
		if strings.EqualFold(p.name, name) {
			return p, true
		}
	}
	return profile{}, false
}

// suiteIDs resolves the profile's suite names; an unknown name (a typo
// in the table above, caught by TestProfilesResolve) is skipped.
func (pr profile) suiteIDs() []uint16 {
	var out []uint16
	for _, n := range pr.suites {
		if id, ok := tlsbridge.CipherSuiteByName(n); ok {
			out = append(out, id)
		}
	}
	return out
}

// profileRun is a profile's hello and the server's answer.
type profileRun struct {
	prof   profile
	ans    answer
	result ProfileResult // filled in by verdicts
}

// runProfiles sends each profile's hello in mode m: inside PRELOGIN
// (TDS 7.x, where these drivers negotiate TLS) unless the server has TLS
// only in strict form.
func (p *prober) runProfiles(ctx context.Context, m mode) []profileRun {
	out := make([]profileRun, len(profiles))
	var wg sync.WaitGroup
	for i, pr := range profiles {
		wg.Go(func() {
			a := p.hello(ctx, m, helloSpec{Versions: pr.versions, Suites: pr.suiteIDs(), SigAlgs: pr.sigAlgs, SigAlgsCert: pr.sigAlgsCert, Groups: pr.groups})
			p.progress("client profile %s: %s", pr.name, a)
			out[i] = profileRun{prof: pr, ans: a}
		})
	}
	wg.Wait()
	return out
}

func selectProfiles(runs []profileRun, names []string) []ProfileResult {
	out := []ProfileResult{}
	for _, r := range runs {
		if r.result.Name == "" {
			continue
		}
		if len(names) > 0 && !slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, r.prof.name) }) {
			continue
		}
		out = append(out, r.result)
	}
	return out
}
