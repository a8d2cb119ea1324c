package interop

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/tds"
)

const (
	emuUser     = "tdsproxy"
	emuPassword = "Emu-Pa55word!"
	// emuServerName is the emulator's default server name, which FreeTDS
	// prints in its "Msg ... from <server>" line.
	emuServerName = emulator.DefaultServerName
)

// startEmulator runs an emulator with the given encryption setting and the
// test credentials until the test ends.
func startEmulator(t *testing.T, enc tds.Encryption) (*emulator.Server, int) {
	t.Helper()
	s := testkit.StartEmulator(t, emulator.Config{Encrypt: enc, User: emuUser, Password: emuPassword})
	return s, testkit.Port(t, s.Addr())
}

// clientMode is one client in one encryption mode.
type clientMode struct {
	client string
	mode   string // the client's own spelling of the setting
	// run connects as emuUser with password and runs query.
	run func(ctx context.Context, t *testing.T, port int, password, query string, certPEM []byte) (*Result, error)
}

func tediousMode(encrypt any, rpc bool) clientMode {
	mode := fmt.Sprintf("encrypt=%v", encrypt)
	if rpc {
		mode += ",execSql"
	}
	return clientMode{ClientTedious, mode, func(ctx context.Context, t *testing.T, port int, pw, q string, pem []byte) (*Result, error) {
		t.Helper()
		td, err := FindTedious()
		Require(t, ClientTedious, err)
		cfg := TediousConfig{Port: port, User: emuUser, Password: pw, Encrypt: encrypt, Query: q, RPC: rpc, Timeout: time.Minute}
		if encrypt == "strict" {
			// tedious verifies the certificate in strict mode whatever
			// trustServerCertificate says: trust the emulator's.
			cfg.CryptoCredentialsDetails = &CryptoCredentials{CA: string(pem)}
		}
		return td.Run(ctx, cfg)
	}}
}

func tsqlMode(encryption string) clientMode {
	return clientMode{ClientTSQL, "encryption=" + encryption, func(ctx context.Context, t *testing.T, port int, pw, q string, _ []byte) (*Result, error) {
		t.Helper()
		_, err := FindTSQL()
		Require(t, ClientTSQL, err)
		return RunTSQL(ctx, TSQLConfig{Port: port, User: emuUser, Password: pw, Encryption: encryption, Query: q, Timeout: time.Minute})
	}}
}

func mssqlMode(encrypt string) clientMode {
	return clientMode{ClientGoMSSQLDB, "encrypt=" + encrypt, func(ctx context.Context, t *testing.T, port int, pw, q string, pem []byte) (*Result, error) {
		t.Helper()
		cfg := MSSQLConfig{Port: port, User: emuUser, Password: pw, Encrypt: encrypt, Query: q, Timeout: time.Minute}
		if encrypt == "strict" {
			// go-mssqldb verifies the certificate in strict mode whatever
			// TrustServerCertificate says: pin the emulator's.
			cfg.ServerCertificatePEM = pem
		}
		return RunMSSQL(ctx, cfg)
	}}
}

// loginFailedText is what each client reports for error 18456, in its own
// words. The emulator sends "Login failed for user '<user>'." (state 1,
// class 14) as SQL Server does.
func loginFailedText(client string) string {
	msg := fmt.Sprintf("Login failed for user '%s'.", emuUser)
	switch client {
	case ClientTedious:
		return msg // ConnectionError.message, code ELOGIN
	case ClientTSQL:
		return fmt.Sprintf("Msg 18456 (severity 14, state 1) from %s Line 1:\n\t%q", emuServerName, msg)
	case ClientJDBC:
		return msg // SQLServerException.getMessage, ClientConnectionId cut
	case ClientODBC:
		// mssql-python's OperationalError: its own words for SQLSTATE
		// 28000, then the driver's diagnostic with "[ODBC Driver 18 for SQL
		// Server]" cut out.
		return "Driver Error: Invalid authorization specification; DDBC Error: [Microsoft][SQL Server]" + msg
	default:
		// go-mssqldb prefixes "login error: " to Error.Message, but
		// Error() prints Error.All, which keeps the server's text.
		return fmt.Sprintf("mssql: %s (18456)", msg)
	}
}

// TestClients runs every real client, in every encryption mode it has,
// against the emulator: a login and SELECT 1, a wrong password, and an
// unknown statement. The assertions are on each client's own result and
// error text.
func TestClients(t *testing.T) {
	clientModes := []clientMode{
		tediousMode(false, false), // PRELOGIN NOT_SUP: no TLS
		tediousMode(true, false),  // ON: the whole session in TLS
		tediousMode(true, true),   // same, query as an sp_executesql RPC
		tediousMode("strict", false),
		tsqlMode("off"),     // NOT_SUP
		tsqlMode("request"), // OFF: TLS for LOGIN7 only
		tsqlMode("require"), // ON
		mssqlMode("disable"),
		mssqlMode("false"),
		mssqlMode("true"),
		mssqlMode("strict"),
		jdbcMode("false"), // OFF: TLS for LOGIN7 only (no NOT_SUP in JDBC)
		jdbcMode("true"),  // ON
		jdbcMode("strict"),
		odbcMode("no"), // OFF (no NOT_SUP in ODBC Driver 18)
		odbcMode("yes"),
		odbcMode("strict"),
	}
	servers := []tds.Encryption{tds.EncryptOff, tds.EncryptOn}

	for _, enc := range servers {
		t.Run("server="+enc.String(), func(t *testing.T) {
			emu, port := startEmulator(t, enc)
			pem := emu.CertificatePEM()
			for _, cm := range clientModes {
				notSup := cm.mode == "encrypt=false" && cm.client == ClientTedious ||
					cm.mode == "encryption=off" || cm.mode == "encrypt=disable"
				t.Run(cm.client+"/"+cm.mode, func(t *testing.T) {
					if enc == tds.EncryptOn && notSup {
						testForcedEncryption(t, cm, port, pem)
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
					defer cancel()

					t.Run("select 1", func(t *testing.T) {
						before := emu.Stats()
						res, err := cm.run(ctx, t, port, emuPassword, "SELECT 1", pem)
						if err != nil {
							t.Fatalf("run: %v", err)
						}
						// A NOT_SUP client gets no TLS at all; every other
						// mode does exactly one handshake (login-only,
						// whole session or strict).
						after := emu.Stats()
						wantTLS := uint64(1)
						if notSup {
							wantTLS = 0
						}
						if got := after.TLSHandshakes - before.TLSHandshakes; got != wantTLS {
							t.Errorf("emulator saw %d TLS handshakes, want %d", got, wantTLS)
						}
						if !res.OK {
							t.Fatalf("%s failed: error %q cause %q code %q\nstderr: %s\ndump:\n%s", cm.client, res.Error, res.Cause, res.Code, res.Stderr, res.Dump)
						}
						t.Logf("%s %s: rows %q in %v", cm.client, cm.mode, res.Rows, res.Elapsed.Round(time.Millisecond))
						if want := [][]string{{"1"}}; !reflect.DeepEqual(res.Rows, want) {
							t.Errorf("rows %q, want %q (raw %q)", res.Rows, want, res.Raw)
						}
					})
					t.Run("wrong password", func(t *testing.T) {
						res, err := cm.run(ctx, t, port, "not-"+emuPassword, "SELECT 1", pem)
						assertFailure(t, res, err, []string{loginFailedText(cm.client)})
						if cm.client != ClientODBC {
							// mssql-python 1.16 does not expose the ODBC
							// native error number: SQLSTATE 28000 below.
							assertMessage(t, res, 18456, 14, 1)
						}
						switch cm.client {
						case ClientTedious:
							if res.Error != loginFailedText(ClientTedious) || res.Code != "ELOGIN" || res.Phase != "connect" {
								t.Errorf("tedious: error %q code %q phase %q, want %q ELOGIN connect", res.Error, res.Code, res.Phase, loginFailedText(ClientTedious))
							}
						case ClientGoMSSQLDB:
							if res.Error != loginFailedText(ClientGoMSSQLDB) {
								t.Errorf("go-mssqldb: error %q, want %q", res.Error, loginFailedText(ClientGoMSSQLDB))
							}
						case ClientTSQL:
							if res.ExitCode != 1 {
								t.Errorf("tsql exit %d, want 1", res.ExitCode)
							}
						case ClientJDBC:
							assertJDBC(t, res, err, loginFailedText(ClientJDBC), jdbcException, "S0001", "")
							if res.Number != 18456 || res.Phase != "connect" || res.ConnectionID == "" {
								t.Errorf("jdbc: error code %d phase %q ClientConnectionId %q, want 18456 connect and an id", res.Number, res.Phase, res.ConnectionID)
							}
						case ClientODBC:
							assertODBC(t, res, err, loginFailedText(ClientODBC), odbcOperational, "28000",
								odbcDriverPrefix+"[SQL Server]Login failed for user 'tdsproxy'.")
						}
					})
					t.Run("unknown statement", func(t *testing.T) {
						res, err := cm.run(ctx, t, port, emuPassword, "EXEC tdsproxy_nope", pem)
						assertFailure(t, res, err, []string{"tdsproxy_nope"})
						if cm.client == ClientODBC {
							if res.Code != "42000" || res.ErrorClass != odbcProgramming || res.Phase != "query" {
								t.Errorf("odbc: SQLSTATE %q class %q phase %q, want 42000 %s query", res.Code, res.ErrorClass, res.Phase, odbcProgramming)
							}
						} else {
							assertMessage(t, res, 2812, 16, -1)
						}
						if cm.client == ClientTedious && res.Phase != "query" {
							t.Errorf("tedious phase %q, want query", res.Phase)
						}
					})
				})
			}
		})
	}
}

// testForcedEncryption covers a client that cannot do TLS (it sent NOT_SUP)
// meeting a server that forces encryption: MS-TDS §2.2.6.5 says the server
// answers REQ and ends the connection; each client reports that its own way.
func testForcedEncryption(t *testing.T, cm clientMode, port int, pem []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := cm.run(ctx, t, port, emuPassword, "SELECT 1", pem)
	want := map[string]string{
		ClientTedious: "Server requires encryption, set 'encrypt' config option to true.",
		ClientTSQL:    "Error 20002 (severity 9):\n\tAdaptive Server connection failed",
		// go-mssqldb with encrypt=disable still starts TLS when the
		// server answers REQ (tds.go: it skips TLS only for NOT_SUP), and
		// the server has already closed: the client reads EOF, or, when its
		// ClientHello reached the closed socket first, an RST.
		ClientGoMSSQLDB: "TLS Handshake failed: cannot read handshake packet: ",
	}[cm.client]
	assertFailure(t, res, err, []string{want})
	if cm.client == ClientGoMSSQLDB && !strings.HasSuffix(res.Error, ": EOF") && !strings.HasSuffix(res.Error, "connection reset by peer") {
		t.Errorf("go-mssqldb error %q, want EOF or connection reset", res.Error)
	}
	if cm.client == ClientTedious && res.Code != "EENCRYPT" {
		t.Errorf("tedious code %q, want EENCRYPT", res.Code)
	}
}

// assertMessage checks that the client reported the server message number
// with the given class and state (-1: any state).
func assertMessage(t *testing.T, res *Result, number, class, state int) {
	t.Helper()
	for _, m := range res.Messages {
		if m.Number == number && m.Severity == class && (state < 0 || m.State == state) {
			return
		}
	}
	var got []string
	for _, m := range res.Messages {
		got = append(got, fmt.Sprintf("%d/%d/%d %q", m.Number, m.Severity, m.State, m.Text))
	}
	t.Errorf("%s reported no message %d (class %d, state %d); got [%s]", res.Client, number, class, state, strings.Join(got, "; "))
}

// recordTB captures what Require does instead of ending the test.
type recordTB struct {
	testing.TB
	skipped, fatal string
}

func (r *recordTB) Helper()                      {}
func (r *recordTB) Skipf(f string, args ...any)  { r.skipped = fmt.Sprintf(f, args...) }
func (r *recordTB) Fatalf(f string, args ...any) { r.fatal = fmt.Sprintf(f, args...) }

func TestRequire(t *testing.T) {
	missing := notAvailable("tsql not on PATH")
	for _, tt := range []struct {
		env       string
		err       error
		skip, die bool
	}{
		{"", missing, true, false},
		{"require", missing, false, true},
		{"require", nil, false, false},
		{"", nil, false, false},
	} {
		t.Run(fmt.Sprintf("env=%q,err=%v", tt.env, tt.err != nil), func(t *testing.T) {
			t.Setenv(EnvRequire, tt.env)
			r := &recordTB{TB: t}
			Require(r, ClientTSQL, tt.err)
			if (r.skipped != "") != tt.skip || (r.fatal != "") != tt.die {
				t.Errorf("skipped %q fatal %q; want skip=%v fatal=%v", r.skipped, r.fatal, tt.skip, tt.die)
			}
			if msg := r.skipped + r.fatal; tt.err != nil && !strings.Contains(msg, "tsql not available") {
				t.Errorf("message %q does not name the client", msg)
			}
		})
	}
}

// TestTSQLGnuTLSOverrides checks that the generated GnuTLS priority file
// reaches FreeTDS: with TLS 1.3 disabled the session is TLS 1.2, with 1.2
// and 1.3 disabled there is no version in common with the emulator
// (TLS 1.2..1.3) and FreeTDS fails the connection; an invalid line fails
// the run instead of being ignored.
func TestTSQLGnuTLSOverrides(t *testing.T) {
	_, err := FindTSQL()
	Require(t, ClientTSQL, err)
	_, port := startEmulator(t, tds.EncryptOff)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(t *testing.T, overrides ...string) *Result {
		t.Helper()
		res, err := RunTSQL(ctx, TSQLConfig{Port: port, User: emuUser, Password: emuPassword, Encryption: "require", Dump: true, GnuTLSOverrides: overrides, Timeout: time.Minute})
		if err != nil {
			t.Fatalf("RunTSQL: %v", err)
		}
		return res
	}
	t.Run("no TLS 1.3", func(t *testing.T) {
		res := run(t, "disabled-version = tls1.3")
		if !res.OK || !reflect.DeepEqual(res.Rows, [][]string{{"1"}}) {
			t.Fatalf("want SELECT 1 to work: %+v", res)
		}
		// GnuTLS logs the negotiated version as the record-layer
		// version: 3.3 is TLS 1.2.
		if !strings.Contains(res.Dump, "Server's version: 3.3") {
			t.Errorf("TDSDUMP does not show TLS 1.2 being negotiated")
		}
	})
	t.Run("no common version", func(t *testing.T) {
		res := run(t, "disabled-version = tls1.3", "disabled-version = tls1.2")
		assertFailure(t, res, nil, []string{"Error 20002 (severity 9):\n\tAdaptive Server connection failed"})
	})
	t.Run("invalid line", func(t *testing.T) {
		res := run(t, "no-such-key = x")
		assertFailure(t, res, nil, nil)
	})
}
