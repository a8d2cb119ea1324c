package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/record"
)

// profile is a kind of client in generated logs: what it offers, what it
// gets, and how its connections end.
type profile struct {
	name      string
	protocol  string
	enc       string
	versions  []string
	suites    []string
	sigAlgs   []string
	version   string // negotiated
	suite     string // negotiated
	ja4       string
	outcome   func(r *proxy.Record)
	loginWait time.Duration
}

var (
	modernSuites = []string{"TLS_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_RSA_WITH_AES_128_GCM_SHA256"}
	modernSig    = []string{"rsa_pss_rsae_sha256", "rsa_pkcs1_sha256", "rsa_pkcs1_sha384", "rsa_pkcs1_sha512"}
)

// profiles used by the tests and the benchmark. Their names are the
// client addresses' last byte so tests can find them.
var profiles = []profile{
	{name: "modern", protocol: "tds7", enc: "OFF", versions: []string{"TLS 1.3", "TLS 1.2"}, suites: modernSuites, sigAlgs: modernSig,
		version: "TLS 1.2", suite: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", ja4: "t13d1510h2_modern"},
	{name: "old-tls", protocol: "tds7", enc: "ON", versions: []string{"TLS 1.0"}, suites: []string{"TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"},
		version: "TLS 1.0", suite: "TLS_RSA_WITH_AES_128_CBC_SHA", ja4: "t10d0202_oldtls"},
	{name: "dhe-only", protocol: "tds7", enc: "ON", versions: []string{"TLS 1.2"}, suites: []string{"TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"},
		sigAlgs: []string{"rsa_pkcs1_sha256"}, version: "TLS 1.2", suite: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", ja4: "t12d0202_dheonly"},
	{name: "dhe-pref", protocol: "tds7", enc: "ON", versions: []string{"TLS 1.2"}, suites: []string{"TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
		sigAlgs: []string{"rsa_pkcs1_sha256", "rsa_pkcs1_sha512"}, version: "TLS 1.2", suite: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", ja4: "t12d0202_dhepref"},
	{name: "strict", protocol: "tds8-strict", versions: []string{"TLS 1.3", "TLS 1.2"}, suites: modernSuites, sigAlgs: modernSig,
		version: "TLS 1.3", suite: "TLS_AES_128_GCM_SHA256", ja4: "t13d1510h2_strict"},
	{name: "wrong-password", protocol: "tds7", enc: "OFF", versions: []string{"TLS 1.2"}, suites: modernSuites[1:], sigAlgs: modernSig,
		version: "TLS 1.2", suite: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", ja4: "t12d0303_wrongpw",
		outcome: func(r *proxy.Record) {
			r.Login.Outcome, r.Login.ErrorNumber, r.Login.ErrorMessage = "failed", 18456, "Login failed for user 'app'."
			r.Close = &proxy.CloseInfo{By: proxy.SideServer, Kind: proxy.CloseFIN, Phase: proxy.PhaseLoginResponse}
		}},
	{name: "not-sup", protocol: "tds7", enc: "NOT_SUP",
		outcome: func(r *proxy.Record) {
			r.Prelogin.Server.Encryption, r.Prelogin.Scope = "REQ", "terminated"
			r.Close = &proxy.CloseInfo{By: proxy.SideServer, Kind: proxy.CloseFIN, Phase: proxy.PhasePreloginResponse}
			r.Phases = r.Phases[:3]
			r.Login = nil
		}},
	{name: "slow", protocol: "tds7", enc: "OFF", versions: []string{"TLS 1.3", "TLS 1.2"}, suites: modernSuites, sigAlgs: modernSig,
		version: "TLS 1.2", suite: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", ja4: "t13d1510h2_slow", loginWait: 3 * time.Second},
}

// genRecord makes the i-th record of a generated log: profile i%len, one
// of 40 addresses per profile.
func genRecord(i int, base time.Time) *proxy.Record {
	p := profiles[i%len(profiles)]
	start := base.Add(time.Duration(i) * 50 * time.Millisecond)
	ms := time.Millisecond
	r := &proxy.Record{
		ID: uint64(i + 1), Proxy: "default", Listener: "127.0.0.1:1433", Upstream: "10.1.0.1:1433",
		Client:              fmt.Sprintf("10.0.%d.%d:%d", i%len(profiles), (i/len(profiles))%40+1, 40000+i%20000),
		Start:               start,
		Protocol:            record.Protocol(p.protocol),
		Phase:               proxy.PhaseEstablished,
		Prelogin:            &proxy.PreloginInfo{Client: &proxy.PreloginSide{Version: "1.11.2.0", Encryption: p.enc}, Server: &proxy.PreloginSide{Encryption: "OFF", Version: "16.0.1000"}, Scope: "login-only"},
		Login:               &proxy.LoginInfo{Outcome: "unknown"},
		Close:               &proxy.CloseInfo{By: proxy.SideClient, Kind: proxy.CloseFIN, Phase: proxy.PhaseEstablished},
		BytesClientToServer: 2048, BytesServerToClient: 4096,
	}
	marks := []struct {
		p  proxy.Phase
		at time.Duration
	}{
		{proxy.PhaseAccept, 0}, {proxy.PhasePreloginRequest, 1 * ms}, {proxy.PhasePreloginResponse, 2 * ms},
		{proxy.PhaseTLSClientHello, 3 * ms}, {proxy.PhaseTLSServerHello, 5 * ms}, {proxy.PhaseTLSClientFinished, 7 * ms},
		{proxy.PhaseTLSServerFinished, 8 * ms}, {proxy.PhaseLogin7, 9 * ms}, {proxy.PhaseLoginResponse, 12*ms + p.loginWait},
		{proxy.PhaseEstablished, 12*ms + p.loginWait},
	}
	for _, m := range marks {
		r.Phases = append(r.Phases, proxy.PhaseMark{Phase: m.p, At: m.at, Encrypted: m.p == proxy.PhaseTLSClientFinished || m.p == proxy.PhaseTLSServerFinished})
	}
	if p.protocol == "tds8-strict" {
		r.Prelogin = nil
		r.Phases = append(r.Phases[:1], r.Phases[3:]...)
	}
	if p.versions != nil {
		r.TLS = &proxy.TLSInfo{
			Wrapped: p.protocol == "tds7",
			ClientHello: &proxy.ClientHelloInfo{
				LegacyVersion: "TLS 1.2", HighestVersion: p.versions[0], CipherSuites: p.suites, SignatureAlgorithms: p.sigAlgs,
				Extensions: []string{"server_name", "supported_groups"}, JA4: p.ja4, JA3Hash: "0123456789abcdef", Length: 512,
			},
			ServerHello:  &proxy.ServerHelloInfo{Version: p.version, CipherSuite: p.suite},
			Certificates: []proxy.CertificateInfo{{Subject: "CN=sql01", SignatureAlgorithm: "SHA256-RSA", ThumbprintSHA1: "AB12"}},
			Version:      p.version, CipherSuite: p.suite,
		}
		if len(p.versions) > 1 || p.versions[0] == "TLS 1.3" {
			r.TLS.ClientHello.SupportedVersions = p.versions
		} else {
			r.TLS.ClientHello.LegacyVersion = p.versions[0]
		}
	}
	if p.outcome != nil {
		if p.name == "wrong-password" {
			r.Login.Visible = false
		}
		p.outcome(r)
	}
	r.End = start.Add(r.Phases[len(r.Phases)-1].At + 5*ms)
	return r
}

// writeLog writes n generated records as tdsproxy log lines
// (proxy/log.go's fields, then the record).
func writeLog(t testing.TB, w io.Writer, n int, base time.Time) {
	t.Helper()
	bw := bufio.NewWriterSize(w, 1<<20)
	for i := range n {
		r := genRecord(i, base)
		rb, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(bw, `{"level":"info","ts":"%s","caller":"proxy/log.go:41","msg":"connection closed","conn":%d,"proxy":"default","client":%q,"protocol":%q,"phase":%q,"record":%s}`+"\n",
			r.End.Format("2006-01-02T15:04:05.000Z0700"), r.ID, r.Client, r.Protocol, r.Phase, rb)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
}
