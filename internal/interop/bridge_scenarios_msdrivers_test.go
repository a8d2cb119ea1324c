package interop

// The TLS scenarios (protocol-mismatch, cipher-mismatch, weak-cert-hash)
// in bridge mode (docs/bridge.md) against go-mssqldb, the JDBC driver and
// ODBC Driver 18, with both close styles, and the fixed client through
// the same bridge. TestScenariosThroughBridgeRealClients does the same
// for tedious and FreeTDS; the fixed tedious and tsql runs are here.
// docs/clients.md ("Bridge mode") has the texts these tests assert. Every
// client meets all three. By default each offers TLS 1.2 and the server's
// suite, so for scenarios 1 and 2 the refused client is shaped as in
// passthrough (at most TLS 1.1; TLS 1.2 with one AES-128 suite); for
// scenario 4 the defaults are refused, since none lists rsa_pkcs1_md5 in
// signature_algorithms.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// mssqlBridgeRun is a clientRun for go-mssqldb with encrypt=true, trusting
// the bridge's CA; mod shapes its TLS config (nil: defaults).
func mssqlBridgeRun(mod func(*tls.Config)) clientRun {
	return func(ctx context.Context, t *testing.T, r *rig) (*Result, error) {
		t.Helper()
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(r.proxy.BridgeCAPEM())
		return RunMSSQL(ctx, MSSQLConfig{Port: r.port, User: emuUser, Password: emuPassword, Encrypt: "true", Query: "SELECT 1",
			Timeout: 20 * time.Second, TLS: func(c *tls.Config) {
				c.RootCAs = pool
				if mod != nil {
					mod(c)
				}
			}})
	}
}

// mssqlHas is go-mssqldb's failure whose message contains want.
func mssqlHas(want string) symptom {
	return func(t *testing.T, r *rig, res *Result, err error) {
		t.Helper()
		assertFailure(t, res, err, nil)
		if !strings.HasPrefix(res.Error, "TLS Handshake failed: ") || !strings.Contains(res.Error, want) {
			t.Errorf("go-mssqldb: error %q, want \"TLS Handshake failed: ...%s\"", res.Error, want)
		}
	}
}

// jdbcAlert is the JDBC driver's failure for a fatal alert from the
// bridge (encrypt=true, trustServerCertificate=true).
func jdbcAlert(alert string) symptom {
	return func(t *testing.T, r *rig, res *Result, err error) {
		t.Helper()
		assertJDBC(t, res, err, jdbcTLSFailed("true", true, "Received fatal alert: "+alert), jdbcException, "08S01",
			"javax.net.ssl.SSLHandshakeException: Received fatal alert: "+alert)
	}
}

// odbcSSL is ODBC Driver 18's failure with the given SSL Provider text.
func odbcSSL(diag string) symptom {
	return func(t *testing.T, r *rig, res *Result, err error) {
		t.Helper()
		assertODBC(t, res, err, odbcConnFailed("SSL Provider: "+diag), odbcOperational, "08001", "")
	}
}

// odbcAlertHandshake is OpenSSL's text for a handshake_failure alert.
const odbcAlertHandshake = "[error:0A000410:SSL routines::sslv3 alert handshake failure:SSL alert number 40]"

func TestScenariosThroughBridgeMSDrivers(t *testing.T) {
	t.Parallel()
	const serverSuite = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
	cipherEmu := emuConfig()
	cipherEmu.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	type scenario struct {
		name       string
		opts       map[string]string
		fixedOpts  map[string]string // nil: the fixed client meets the same rule
		emu        emulator.Config
		decidedBy  string
		clients    []bridgeCase
		fixedOnlys []bridgeFixed
	}
	weakFixed := map[string]string{"cert_hash": "sha256"}
	scenarios := []scenario{
		{faults.ScenarioProtocolMismatch, map[string]string{"server_tls": "1.2"}, nil, emuConfig(), "client-leg TLS (crypto/tls)",
			[]bridgeCase{
				{ClientGoMSSQLDB, mssqlBridgeRun(func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 }),
					mssqlBridgeRun(nil), mssqlHas("connection reset by peer"), mssqlHas("remote error: tls: protocol version not supported")},
				{ClientJDBC, jdbcRun(jdbcOld), jdbcRun(JDBCConfig{Encrypt: "true"}), jdbcResetIn("true", true), jdbcAlert("protocol_version")},
				{ClientODBC, odbcRun(odbcOld), odbcRun(ODBCConfig{Encrypt: "yes"}), odbcReset,
					odbcSSL("[error:0A00042E:SSL routines::tlsv1 alert protocol version:SSL alert number 70]")},
			},
			[]bridgeFixed{{ClientTedious, tediousRun(TediousConfig{Encrypt: true})}, {ClientTSQL, tsqlRun(TSQLConfig{Encryption: "require"})}}},
		{faults.ScenarioCipherMismatch, map[string]string{"server_ciphers": serverSuite}, nil, cipherEmu, "client-leg TLS (crypto/tls)",
			[]bridgeCase{
				{ClientGoMSSQLDB, mssqlBridgeRun(func(c *tls.Config) {
					c.MaxVersion, c.CipherSuites = tls.VersionTLS12, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
				}), mssqlBridgeRun(func(c *tls.Config) {
					c.MaxVersion, c.CipherSuites = tls.VersionTLS12, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}
				}), mssqlHas("connection reset by peer"), mssqlHas("remote error: tls: handshake failure")},
				{ClientJDBC, jdbcRun(JDBCConfig{Encrypt: "true", Protocols: []string{"TLSv1.2"}, CipherSuites: []string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}}),
					jdbcRun(JDBCConfig{Encrypt: "true", Protocols: []string{"TLSv1.2"}, CipherSuites: []string{serverSuite}}),
					jdbcResetIn("true", true), jdbcAlert("handshake_failure")},
				{ClientODBC, odbcRun(ODBCConfig{Encrypt: "yes", OpenSSL: []string{"MaxProtocol = TLSv1.2", "CipherString = ECDHE-RSA-AES128-GCM-SHA256"}}),
					odbcRun(ODBCConfig{Encrypt: "yes", OpenSSL: []string{"MaxProtocol = TLSv1.2", "CipherString = ECDHE-RSA-AES256-GCM-SHA384"}}),
					odbcReset, odbcSSL(odbcAlertHandshake)},
			},
			[]bridgeFixed{
				{ClientTedious, tediousRun(TediousConfig{Encrypt: true, CryptoCredentialsDetails: &CryptoCredentials{MaxVersion: "TLSv1.2", Ciphers: "ECDHE-RSA-AES256-GCM-SHA384"}})},
				{ClientTSQL, tsqlRun(TSQLConfig{Encryption: "require"})}}},
		{faults.ScenarioWeakCertHash, map[string]string{"cert_hash": "md5"}, weakFixed, emuConfig(), "bridge (Schannel's certificate rule)",
			[]bridgeCase{
				{ClientGoMSSQLDB, mssqlBridgeRun(nil), mssqlBridgeRun(nil), mssqlHas("connection reset by peer"), mssqlHas("remote error: tls: handshake failure")},
				{ClientJDBC, jdbcRun(JDBCConfig{Encrypt: "true"}), jdbcRun(JDBCConfig{Encrypt: "true"}), jdbcResetIn("true", true), jdbcAlert("handshake_failure")},
				{ClientODBC, odbcRun(ODBCConfig{Encrypt: "yes"}), odbcRun(ODBCConfig{Encrypt: "yes"}), odbcReset, odbcSSL(odbcAlertHandshake)},
			},
			[]bridgeFixed{{ClientTedious, tediousRun(TediousConfig{Encrypt: true})}, {ClientTSQL, tsqlRun(TSQLConfig{Encryption: "require"})}}},
	}
	for _, sc := range scenarios {
		for _, c := range sc.clients {
			t.Run(sc.name+"/"+c.client, func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
				defer cancel()
				rule := scenarioRule(sc.name, sc.opts)
				r := newBridgeRig(t, sc.emu, rule)
				for _, st := range []struct {
					style string
					kind  proxy.CloseKind
					check symptom
				}{{"rst", proxy.CloseRST, c.rst}, {"alert:handshake_failure", proxy.CloseAlert, c.alert}} {
					rule.Close = st.style
					r.setRules(t, rule)
					res, err := c.broken(ctx, t, r)
					st.check(t, r, res, err)
					rec := r.next(t)
					if rec.Bridge == nil || rec.Bridge.Scenario != sc.name || rec.Bridge.DecidedBy != sc.decidedBy ||
						rec.Close == nil || rec.Close.By != proxy.SideProxy || rec.Close.Kind != st.kind {
						t.Errorf("%s: record bridge %+v close %+v, want %s decided by %s, closed by the proxy with %s", st.style, rec.Bridge, rec.Close, sc.name, sc.decidedBy, st.kind)
					}
					t.Logf("%s: error %q cause %q code %q", st.style, res.Error, res.Cause, res.Code)
				}
				bridgeFixedRun(ctx, t, r, sc.name, sc.opts, sc.fixedOpts, c.fixed)
			})
		}
		for _, f := range sc.fixedOnlys {
			t.Run(sc.name+"/"+f.client+"/fixed", func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
				defer cancel()
				r := newBridgeRig(t, sc.emu, scenarioRule(sc.name, sc.opts))
				bridgeFixedRun(ctx, t, r, sc.name, sc.opts, sc.fixedOpts, f.fixed)
			})
		}
	}
}

// bridgeCase is one client against one scenario in bridge mode: the
// client the rule refuses, the fixed one, and the refused client's error
// with close rst and with close alert.
type bridgeCase struct {
	client        string
	broken, fixed clientRun
	rst, alert    symptom
}

// bridgeFixed is a fixed client alone (its refusal is asserted elsewhere).
type bridgeFixed struct {
	client string
	fixed  clientRun
}

// bridgeFixedRun runs the fixed client through the rig's bridge: under the
// scenario's rule (fixedOpts, when set, replacing its options: the fixed
// server) it gets SELECT 1, and the proxy closed nothing.
func bridgeFixedRun(ctx context.Context, t *testing.T, r *rig, name string, opts, fixedOpts map[string]string, fixed clientRun) {
	t.Helper()
	if fixedOpts != nil {
		opts = fixedOpts
	}
	r.setRules(t, scenarioRule(name, opts))
	res, err := fixed(ctx, t, r)
	assertSelectOne(t, res, err)
	rec := r.next(t)
	if rec.Login == nil || rec.Login.Outcome != proxy.LoginOK {
		t.Errorf("fixed: login %+v, want ok", rec.Login)
	}
	assertNotInjected(t, rec)
	// The rule was in force (the record names its scenario) and decided
	// nothing against this client.
	if rec.Bridge == nil || rec.Bridge.Scenario != name || rec.Bridge.DecidedBy != "" {
		t.Errorf("fixed: bridge %+v, want scenario %s and no decision", rec.Bridge, name)
	}
	if rec.Bridge != nil && rec.Bridge.ClientTLS != nil {
		t.Logf("fixed: client %s/%s; bridge scenario %q decided by %q failure %q", rec.Bridge.ClientTLS.Version, rec.Bridge.ClientTLS.CipherSuite,
			rec.Bridge.Scenario, rec.Bridge.DecidedBy, rec.Bridge.Failure)
	}
}
