package diagnose

import (
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
)

const ms = time.Millisecond

func marks(ps ...any) []proxy.PhaseMark {
	var out []proxy.PhaseMark
	for i := 0; i+1 < len(ps); i += 2 {
		out = append(out, proxy.PhaseMark{Phase: ps[i].(proxy.Phase), At: ps[i+1].(time.Duration)})
	}
	return out
}

// okLogin is a TDS 7.x login-only connection that logged in in 12 ms.
func okLogin() *proxy.Record {
	return &proxy.Record{
		Protocol: "tds7",
		Phases: marks(proxy.PhaseAccept, time.Duration(0), proxy.PhasePreloginRequest, 1*ms, proxy.PhasePreloginResponse, 2*ms,
			proxy.PhaseTLSClientHello, 3*ms, proxy.PhaseTLSServerHello, 5*ms, proxy.PhaseTLSClientFinished, 7*ms,
			proxy.PhaseTLSServerFinished, 8*ms, proxy.PhaseLogin7, 9*ms, proxy.PhaseLoginResponse, 12*ms, proxy.PhaseEstablished, 12*ms),
		Prelogin: &proxy.PreloginInfo{Client: &proxy.PreloginSide{Encryption: "OFF"}, Server: &proxy.PreloginSide{Encryption: "OFF"}, Scope: "login-only"},
		TLS:      &proxy.TLSInfo{ClientHello: &proxy.ClientHelloInfo{HighestVersion: "TLS 1.2"}, ServerHello: &proxy.ServerHelloInfo{Version: "TLS 1.2"}, Version: "TLS 1.2", CipherSuite: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
		Login:    &proxy.LoginInfo{Outcome: "ok"},
		Close:    &proxy.CloseInfo{By: proxy.SideClient, Kind: proxy.CloseFIN, Phase: proxy.PhaseEstablished},
	}
}

func names(fs []Finding) string {
	var s []string
	for _, f := range fs {
		n := f.Finding
		if f.Injected {
			n += "(injected)"
		}
		s = append(s, n)
	}
	return strings.Join(s, ",")
}

func TestRecord(t *testing.T) {
	cases := []struct {
		name string
		edit func(r *proxy.Record)
		want string
	}{
		{"a good login has no findings", func(r *proxy.Record) {}, ""},
		{"TLS 1.0 client, server closes after ClientHello", func(r *proxy.Record) {
			r.Phases = r.Phases[:4]
			r.TLS = &proxy.TLSInfo{ClientHello: &proxy.ClientHelloInfo{HighestVersion: "TLS 1.0"}}
			r.Close = &proxy.CloseInfo{By: proxy.SideServer, Kind: proxy.CloseRST, Phase: proxy.PhaseTLSClientHello}
			r.Login = nil
		}, "protocol-mismatch"},
		{"TLS 1.2 client, server closes after ClientHello: only the scenario by elimination", func(r *proxy.Record) {
			r.Phases = r.Phases[:4]
			r.TLS = &proxy.TLSInfo{ClientHello: &proxy.ClientHelloInfo{HighestVersion: "TLS 1.2"}}
			r.Close = &proxy.CloseInfo{By: proxy.SideServer, Kind: proxy.CloseRST, Phase: proxy.PhaseTLSClientHello}
			r.Login = nil
		}, "cipher-mismatch"},
		{"injected protocol mismatch against a modern client", func(r *proxy.Record) {
			r.Phases = r.Phases[:4]
			r.TLS = &proxy.TLSInfo{ClientHello: &proxy.ClientHelloInfo{HighestVersion: "TLS 1.3"}}
			r.Close = &proxy.CloseInfo{By: proxy.SideProxy, Kind: proxy.CloseRST, Phase: proxy.PhaseTLSClientHello}
			r.Faults = []proxy.FaultEvent{{Rule: "old-server", Scenario: faults.ScenarioProtocolMismatch, Phase: proxy.PhaseTLSClientHello, Action: "close:rst", Detail: "client offers TLS 1.3; emulated server allows only TLS 1.0"}}
			r.Login = nil
		}, "protocol-mismatch(injected)"},
		{"a rule that passed is not an injection", func(r *proxy.Record) {
			r.Faults = []proxy.FaultEvent{{Rule: "old-server", Scenario: faults.ScenarioProtocolMismatch, Phase: proxy.PhaseTLSClientHello, Action: "pass"}}
		}, ""},
		{"NOT_SUP client, forcing server", func(r *proxy.Record) {
			r.Phases = r.Phases[:3]
			r.Prelogin = &proxy.PreloginInfo{Client: &proxy.PreloginSide{Encryption: "NOT_SUP"}, Server: &proxy.PreloginSide{Encryption: "REQ"}, Scope: "terminated"}
			r.TLS, r.Login = nil, nil
			r.Close = &proxy.CloseInfo{By: proxy.SideServer, Kind: proxy.CloseFIN, Phase: proxy.PhasePreloginResponse}
		}, "server-refused-encryption"},
		{"wrong password", func(r *proxy.Record) {
			r.Login = &proxy.LoginInfo{Outcome: "failed", ErrorNumber: 18456, ErrorMessage: "Login failed for user 'sa'."}
			r.Phases = r.Phases[:9]
			r.Close = &proxy.CloseInfo{By: proxy.SideServer, Kind: proxy.CloseFIN, Phase: proxy.PhaseLoginResponse}
		}, "login-failed"},
		{"wrong password, then the client closes", func(r *proxy.Record) {
			r.Login = &proxy.LoginInfo{Outcome: "failed", ErrorNumber: 18456}
			r.Phases = r.Phases[:9]
			r.Close = &proxy.CloseInfo{By: proxy.SideClient, Kind: proxy.CloseFIN, Phase: proxy.PhaseLoginResponse}
		}, "login-failed"},
		{"a latency fault, then the client gives up", func(r *proxy.Record) {
			r.Phases = r.Phases[:8]
			r.Login = nil
			r.Faults = []proxy.FaultEvent{{Rule: "lag", Phase: proxy.PhaseLogin7, Action: "latency", Detail: "5s"}}
			r.Close = &proxy.CloseInfo{By: proxy.SideClient, Kind: proxy.CloseFIN, Phase: proxy.PhaseTLSServerFinished}
		}, "injected-fault(injected),client-cancelled(injected)"},
		{"upstream down", func(r *proxy.Record) {
			r.Phases = r.Phases[:1]
			r.Prelogin, r.TLS, r.Login = nil, nil, nil
			r.Close = &proxy.CloseInfo{By: proxy.SideProxy, Kind: proxy.CloseDialFailed, Phase: proxy.PhaseAccept, Reason: "dial 127.0.0.1:1: connection refused"}
		}, "upstream-unreachable"},
		{"negotiation timeout", func(r *proxy.Record) {
			r.Phases = r.Phases[:8]
			r.Login = nil
			r.Close = &proxy.CloseInfo{By: proxy.SideProxy, Kind: proxy.CloseTimeout, Phase: proxy.PhaseTLSServerFinished, Awaiting: proxy.SideClient, Silence: 10 * time.Second}
		}, "negotiation-timeout"},
		{"client gives up on a silent server after PRELOGIN", func(r *proxy.Record) {
			r.Phases = r.Phases[:3]
			r.TLS, r.Login = nil, nil
			r.Close = &proxy.CloseInfo{By: proxy.SideClient, Kind: proxy.CloseFIN, Phase: proxy.PhasePreloginResponse, Awaiting: proxy.SideServer, Silence: 5 * time.Second}
		}, "client-cancelled"},
		{"client gives up waiting for the login response", func(r *proxy.Record) {
			r.Phases = r.Phases[:8]
			r.Login = nil
			r.Close = &proxy.CloseInfo{By: proxy.SideClient, Kind: proxy.CloseFIN, Phase: proxy.PhaseLogin7, Awaiting: proxy.SideServer, Silence: 5 * time.Second}
		}, "delayed-accept"},
		{"slow login response", func(r *proxy.Record) {
			r.Phases[8].At = 3 * time.Second
			r.Phases[9].At = 3 * time.Second
		}, "slow-login"},
		{"slow login injected by login_delay", func(r *proxy.Record) {
			r.Phases[8].Held = 3 * time.Second
			r.Faults = []proxy.FaultEvent{{Rule: "slow", Scenario: faults.ScenarioDelayedAccept, Phase: proxy.PhaseLoginResponse, Action: "delay", Detail: "login response held for 3s"}}
		}, "delayed-accept(injected),slow-login(injected)"},
		{"generic fault", func(r *proxy.Record) {
			r.Faults = []proxy.FaultEvent{{Rule: "cut", Phase: proxy.PhaseEstablished, Action: "cutoff", Detail: "after 100 bytes"}}
		}, "injected-fault(injected)"},
		{"DHE close after the client's Finished", func(r *proxy.Record) {
			r.Phases = r.Phases[:6]
			r.TLS.CipherSuite = "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"
			r.Login = nil
			r.Close = &proxy.CloseInfo{By: proxy.SideServer, Kind: proxy.CloseRST, Phase: proxy.PhaseTLSClientFinished}
		}, "dhe-enabled,dhe-leading-zero"},
		{"MD5 certificate", func(r *proxy.Record) {
			r.Phases = r.Phases[:4]
			r.TLS = &proxy.TLSInfo{ClientHello: &proxy.ClientHelloInfo{HighestVersion: "TLS 1.2"}, Certificates: []proxy.CertificateInfo{{Subject: "CN=sql01", SignatureAlgorithm: "MD5-RSA", WeakHashRisk: true}}}
			r.Login = nil
			r.Close = &proxy.CloseInfo{By: proxy.SideServer, Kind: proxy.CloseRST, Phase: proxy.PhaseTLSClientHello}
		}, "weak-cert-hash"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := okLogin()
			c.edit(r)
			got := Record(r, Options{})
			if names(got) != c.want {
				t.Fatalf("findings %q, want %q: %+v", names(got), c.want, got)
			}
			for _, f := range got {
				if f.Evidence == "" || f.Fix == "" {
					t.Errorf("%s: evidence %q, fix %q", f.Finding, f.Evidence, f.Fix)
				}
				if f.Injected != strings.Contains(f.Evidence, "injected by rule") {
					t.Errorf("%s: injected=%v but evidence %q", f.Finding, f.Injected, f.Evidence)
				}
			}
		})
	}
}

func TestLoginFailedNumber(t *testing.T) {
	r := okLogin()
	r.Login = &proxy.LoginInfo{Outcome: "failed", ErrorNumber: 4060}
	f := Record(r, Options{})
	if len(f) != 1 || f[0].Number != 4060 || !strings.Contains(f[0].Fix, "database") {
		t.Fatalf("%+v", f)
	}
}

func TestSteps(t *testing.T) {
	r := okLogin()
	r.Phases[5].Encrypted = true
	r.Phases[8].Held = 2 * ms
	steps := Steps(r)
	if len(steps) != 9 {
		t.Fatalf("%d steps: %+v", len(steps), steps)
	}
	want := []struct {
		step     string
		awaited  string
		d        time.Duration
		inferred bool
	}{
		{"tcp.accept", "server", 0, false}, {"prelogin.request", "client", 1 * ms, false}, {"prelogin.response", "server", 1 * ms, false},
		{"tls.client_hello", "client", 1 * ms, false}, {"tls.server_hello", "server", 2 * ms, false}, {"tls.client_finished", "client", 2 * ms, true},
		{"tls.server_finished", "server", 1 * ms, false}, {"login7", "client", 1 * ms, false}, {"login.response", "server", 5 * ms, false},
	}
	for i, w := range want {
		s := steps[i]
		if s.Step != w.step || s.Awaited != w.awaited || s.Duration != w.d || s.Inferred != w.inferred {
			t.Errorf("step %d: %+v, want %+v", i, s, w)
		}
	}
	if steps[8].Held != 2*ms {
		t.Errorf("held %v", steps[8].Held)
	}
	if total, done := LoginTime(steps); total != 14*ms || !done {
		t.Errorf("login time %v %v", total, done)
	}
	if r := Record(okLogin(), Options{SlowLogin: 5 * ms}); names(r) != "slow-login" || r[0].Step != "login.response" {
		t.Errorf("threshold 5ms: %+v", r)
	}
	if r := Record(okLogin(), Options{SlowLogin: -1}); len(r) != 0 {
		t.Errorf("slow-login off: %+v", r)
	}
}
