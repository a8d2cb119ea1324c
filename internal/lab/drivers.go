package lab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/interop"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// Client names for Options.Clients and `tdsproxy lab --client`.
const (
	ClientGo      = "go" // go-mssqldb, in process: the default, the fastest
	ClientJDBC    = interop.ClientJDBC
	ClientODBC    = interop.ClientODBC
	ClientTedious = interop.ClientTedious
	ClientTSQL    = interop.ClientTSQL
	// ClientAll selects every client.
	ClientAll = "all"
)

// ClientNames lists the clients in the order rows use.
func ClientNames() []string {
	return []string{ClientGo, ClientJDBC, ClientODBC, ClientTedious, ClientTSQL}
}

// selectClients resolves Options.Clients: empty means go-mssqldb only.
func selectClients(want []string) ([]string, error) {
	all := ClientNames()
	if len(want) == 0 {
		return []string{ClientGo}, nil
	}
	var out []string
	for _, w := range want {
		w = strings.ToLower(strings.TrimSpace(w))
		switch {
		case w == ClientAll:
			out = append(out, all...)
		case w == "go-mssqldb":
			out = append(out, ClientGo)
		case slices.Contains(all, w):
			out = append(out, w)
		default:
			return nil, fmt.Errorf("%w %q (one of %s, %s)", ErrUnknownClient, w, strings.Join(all, ", "), ClientAll)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(all, a) - slices.Index(all, b) })
	return slices.Compact(out), nil
}

// extShape is how a scenario shapes an external client, in each client's
// own terms (below).
type extShape struct {
	// strict: TDS 8.0 (TLS first); otherwise encrypt ON (the whole session
	// in TLS inside PRELOGIN).
	strict bool
	// tlsMin/tlsMax bound the versions; 0 leaves the client's defaults.
	tlsMin, tlsMax uint16
	// suite is the one TLS 1.2 suite offered; 0 leaves the defaults.
	suite uint16
	// loginTimeout in seconds; 0 means 5.
	loginTimeout int
	// trust is the certificate a strict client pins.
	trust []byte
}

// openSSLSuite is the OpenSSL name of the lab's suites.
var openSSLSuite = map[uint16]string{
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
}

// jsseVersion and openSSLVersion name TLS versions.
var (
	jsseVersion    = map[uint16]string{tls.VersionTLS10: "TLSv1", tls.VersionTLS11: "TLSv1.1", tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}
	openSSLVersion = map[uint16]string{tls.VersionTLS10: "TLSv1", tls.VersionTLS11: "TLSv1.1", tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}
	gnuTLSVersion  = map[uint16]string{tls.VersionTLS10: "tls1.0", tls.VersionTLS11: "tls1.1", tls.VersionTLS12: "tls1.2", tls.VersionTLS13: "tls1.3"}
)

func (s extShape) timeout() int {
	if s.loginTimeout == 0 {
		return 5
	}
	return s.loginTimeout
}

// describe is the shape in words, for a row.
func (s extShape) describe() string {
	var parts []string
	if s.strict {
		parts = append(parts, "strict (TDS 8.0)")
	} else {
		parts = append(parts, "encrypt on")
	}
	switch {
	case s.tlsMin != 0 && s.tlsMax != 0 && s.tlsMin != s.tlsMax:
		parts = append(parts, tlsbridge.VersionName(s.tlsMin)+"-"+strings.TrimPrefix(tlsbridge.VersionName(s.tlsMax), "TLS "))
	case s.tlsMax != 0:
		parts = append(parts, "up to "+tlsbridge.VersionName(s.tlsMax))
	}
	if s.suite != 0 {
		parts = append(parts, "suite "+tlsbridge.CipherSuiteName(s.suite))
	}
	parts = append(parts, fmt.Sprintf("login timeout %ds", s.timeout()))
	return strings.Join(parts, ", ")
}

// extRun runs one external client, shaped, against port.
func extRun(ctx context.Context, client string, s extShape, port int) (desc string, res *interop.Result, err error) {
	switch client {
	case ClientJDBC:
		j, err := interop.FindJDBC()
		if err != nil {
			return "", nil, err
		}
		cfg := jdbcConfig(s)
		cfg.Port, cfg.User, cfg.Password, cfg.Timeout = port, labUser, labPassword, attemptTimeout+10*time.Second
		desc = fmt.Sprintf("Microsoft JDBC Driver %s (%s), encrypt=%s", interop.JDBCVersion, j.JavaVersion, cfg.Encrypt)
		if len(cfg.Protocols) > 0 {
			desc += ", jdk.tls.client.protocols=" + strings.Join(cfg.Protocols, ",")
		}
		if len(cfg.CipherSuites) > 0 {
			desc += ", jdk.tls.client.cipherSuites=" + strings.Join(cfg.CipherSuites, ",")
		}
		res, err := j.Run(ctx, cfg)
		return desc + fmt.Sprintf(", loginTimeout=%d", s.timeout()), res, err
	case ClientODBC:
		o, err := interop.FindODBC()
		if err != nil {
			return "", nil, err
		}
		cfg := odbcConfig(s)
		cfg.Port, cfg.User, cfg.Password, cfg.Timeout = port, labUser, labPassword, attemptTimeout+10*time.Second
		desc = fmt.Sprintf("ODBC Driver 18 (mssql-python %s), Encrypt=%s", o.Version, cfg.Encrypt)
		if len(cfg.OpenSSL) > 0 {
			desc += ", OpenSSL " + strings.Join(cfg.OpenSSL, "; ")
		}
		res, err := o.Run(ctx, cfg)
		return desc + fmt.Sprintf(", login timeout %ds", s.timeout()), res, err
	case ClientTedious:
		td, err := interop.FindTedious()
		if err != nil {
			return "", nil, err
		}
		cfg := interop.TediousConfig{Port: port, User: labUser, Password: labPassword, Encrypt: true, ConnectTimeout: s.timeout() * 1000,
			Timeout: attemptTimeout + 10*time.Second}
		cc := tediousCrypto(s)
		if s.strict {
			cfg.Encrypt, cc.CA = "strict", string(s.trust)
		}
		if *cc != (interop.CryptoCredentials{}) {
			cfg.CryptoCredentialsDetails = cc
		}
		desc = fmt.Sprintf("tedious %s (Node %s), encrypt=%v", interop.TediousVersion, td.NodeVersion, cfg.Encrypt)
		if cc.MinVersion != "" || cc.MaxVersion != "" {
			desc += fmt.Sprintf(", %s-%s", cc.MinVersion, cc.MaxVersion)
		}
		if cc.Ciphers != "" {
			desc += ", ciphers " + cc.Ciphers
		}
		res, err := td.Run(ctx, cfg)
		return desc + fmt.Sprintf(", connectTimeout %d ms", s.timeout()*1000), res, err
	case ClientTSQL:
		if _, err := interop.FindTSQL(); err != nil {
			return "", nil, err
		}
		cfg := interop.TSQLConfig{Port: port, User: labUser, Password: labPassword, Encryption: "require",
			Conf: []string{fmt.Sprintf("connect timeout = %d", s.timeout())}, Timeout: attemptTimeout + 10*time.Second}
		cfg.GnuTLSOverrides, cfg.EnableTLSv1 = gnuTLSShape(s)
		desc = "FreeTDS tsql, encryption = require"
		if len(cfg.GnuTLSOverrides) > 0 {
			desc += ", GnuTLS " + strings.Join(cfg.GnuTLSOverrides, "; ")
		}
		res, err := interop.RunTSQL(ctx, cfg)
		return desc + fmt.Sprintf(", connect timeout = %d", s.timeout()), res, err
	}
	return "", nil, fmt.Errorf("%w %q", ErrUnknownClient, client)
}

// tediousCrypto is tedious's cryptoCredentialsDetails for a shape (Node's
// OpenSSL names).
func tediousCrypto(s extShape) *interop.CryptoCredentials {
	cc := &interop.CryptoCredentials{}
	if s.tlsMin != 0 {
		cc.MinVersion = openSSLVersion[s.tlsMin]
	}
	if s.tlsMax != 0 {
		cc.MaxVersion = openSSLVersion[s.tlsMax]
	}
	if s.tlsMin != 0 && s.tlsMin < tls.VersionTLS12 {
		cc.Ciphers = "DEFAULT:@SECLEVEL=0"
	}
	if s.suite != 0 {
		cc.Ciphers = openSSLSuite[s.suite]
	}
	return cc
}

// gnuTLSShape is FreeTDS's GnuTLS [overrides] lines and its `enable tls
// v1` for a shape.
func gnuTLSShape(s extShape) (overrides []string, enableTLSv1 *bool) {
	if s.tlsMin != 0 || s.tlsMax != 0 {
		for v := uint16(tls.VersionTLS10); v <= tls.VersionTLS13; v++ {
			if (s.tlsMin != 0 && v < s.tlsMin) || (s.tlsMax != 0 && v > s.tlsMax) {
				overrides = append(overrides, "disabled-version = "+gnuTLSVersion[v])
			}
		}
		if s.tlsMin != 0 && s.tlsMin <= tls.VersionTLS10 {
			enableTLSv1 = ptr(true)
		}
	}
	if s.suite == tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 {
		// GnuTLS priorities name ciphers, not suites: without AES-256
		// the server's AES-256 suite is not offered.
		overrides = append(overrides, "tls-disabled-cipher = AES-256-GCM", "tls-disabled-cipher = AES-256-CBC",
			"tls-disabled-cipher = AES-256-CCM")
	}
	return overrides, enableTLSv1
}

// jdbcOldTLS re-enables TLS 1.0 and 1.1, which JDK 17 disables in
// java.security (jdk.tls.disabledAlgorithms), as an old deployment did not.
const jdbcOldTLS = "SSLv3, RC4, DES, MD5withRSA, DH keySize < 1024, EC keySize < 224, 3DES_EDE_CBC, anon, NULL"

// jdbcConfig shapes the JDBC driver: connection properties, and the JVM's
// jdk.tls.client.* system properties for versions and suites.
func jdbcConfig(s extShape) interop.JDBCConfig {
	cfg := interop.JDBCConfig{Encrypt: "true", LoginTimeout: s.timeout()}
	if s.strict {
		cfg.Encrypt, cfg.ServerCertificatePEM = "strict", s.trust
	}
	if s.tlsMin != 0 || s.tlsMax != 0 {
		lo, hi := s.tlsMin, s.tlsMax
		if lo == 0 {
			lo = tls.VersionTLS12 // JDK 17's lowest enabled version
		}
		if hi == 0 {
			hi = tls.VersionTLS13
		}
		for v := lo; v <= hi; v++ {
			cfg.Protocols = append(cfg.Protocols, jsseVersion[v])
		}
		if lo < tls.VersionTLS12 {
			cfg.SecurityProps = map[string]string{"jdk.tls.disabledAlgorithms": jdbcOldTLS}
		}
	}
	if s.suite != 0 {
		cfg.CipherSuites = []string{tlsbridge.CipherSuiteName(s.suite)} // JSSE uses the IANA names
	}
	return cfg
}

// odbcConfig shapes ODBC Driver 18: the connection string, and OpenSSL's
// system defaults (OPENSSL_CONF) for versions and suites.
func odbcConfig(s extShape) interop.ODBCConfig {
	cfg := interop.ODBCConfig{Encrypt: "yes", LoginTimeout: s.timeout(), OpenSSL: openSSLLines(s)}
	if s.strict {
		cfg.Encrypt, cfg.ServerCertificatePEM = "strict", s.trust
	}
	return cfg
}

func openSSLLines(s extShape) []string {
	var l []string
	if s.tlsMin != 0 {
		l = append(l, "MinProtocol = "+openSSLVersion[s.tlsMin])
	}
	if s.tlsMax != 0 {
		l = append(l, "MaxProtocol = "+openSSLVersion[s.tlsMax])
	}
	switch {
	case s.suite != 0:
		l = append(l, "CipherString = "+openSSLSuite[s.suite])
	case s.tlsMin != 0 && s.tlsMin < tls.VersionTLS12:
		// OpenSSL 3 refuses TLS < 1.2 at its default security level.
		l = append(l, "CipherString = DEFAULT:@SECLEVEL=0")
	}
	return l
}

func ptr[T any](v T) *T { return &v }

// clientAvailable says why an external client cannot run here ("" when it
// can).
func clientAvailable(client string) string {
	var err error
	switch client {
	case ClientJDBC:
		_, err = interop.FindJDBC()
	case ClientODBC:
		_, err = interop.FindODBC()
	case ClientTedious:
		_, err = interop.FindTedious()
	case ClientTSQL:
		_, err = interop.FindTSQL()
	}
	if err != nil {
		return err.Error() + " (make deps installs it)"
	}
	return ""
}

// extAttempt starts an env (emulator or upstream, rules armed) and runs one
// shaped external client through its proxy.
func (r *runner) extAttempt(ctx context.Context, client string, cfg envConfig, server string, s extShape) Attempt {
	cfg.Logger = r.log
	e, err := startEnv(cfg)
	if err != nil {
		return Attempt{Client: client, Server: server, Error: "lab: " + err.Error()}
	}
	defer e.close()
	desc, res, err := extRun(ctx, client, s, e.proxy.Addr().(*net.TCPAddr).Port)
	a := Attempt{Client: desc, Server: server}
	switch {
	case err != nil && res == nil:
		a.Error = "lab: " + err.Error()
		return a
	case err != nil:
		a.Error = joinErr(res.Error, "lab: "+err.Error())
	case res.OK:
		a.Connected = true
		a.Result = "SELECT 1 = " + strings.Join(firstCell(res.Rows), "")
	default:
		a.Error = res.Error
		if res.Cause != "" && res.Cause != res.Error && client != ClientODBC {
			a.Error += " (cause: " + res.Cause + ")"
		}
	}
	if res != nil {
		a.Elapsed = res.Elapsed
	}
	rec, werr := e.recs.wait(ctx, "")
	if werr != nil {
		a.Error = joinErr(a.Error, "proxy: "+werr.Error())
		return a
	}
	a.Record = rec
	return a
}

func firstCell(rows [][]string) []string {
	if len(rows) == 0 || len(rows[0]) == 0 {
		return []string{"(no rows)"}
	}
	return rows[0][:1]
}

// extShapeFor is an external driver set up as a lab client.
func extShapeFor(c faults.LabClient) extShape {
	return extShape{strict: c.Strict, tlsMin: c.TLSMin, tlsMax: c.TLSMax, suite: c.Suite, loginTimeout: c.Timeout}
}

// extRow runs one scenario with an external client: before the fix with the
// scenario's rule, after the fix as the scenario's fix says.
func (r *runner) extRow(ctx context.Context, name, client string) Row {
	info := scenarioInfo(name)
	row := Row{Scenario: name, Summary: info.Summary, Fix: info.Fix, Client: client}
	if why := clientAvailable(client); why != "" {
		row.Status = StatusSkipped
		row.Before = Attempt{Skipped: why}
		row.After = Attempt{Skipped: why}
		row.Note = client + " is not installed here: " + why
		return row
	}
	s, err := scenarioSetup(name)
	if err != nil {
		row.Status, row.Problem = StatusUnexpected, err.Error()
		return row
	}
	row.Rule = s.rule
	l := s.lab()
	if l.Server.DHE != nil {
		r.dheRow(ctx, &row, client, s)
		return row
	}
	armed := envConfig{Emulator: s.emu, Rules: []faults.RuleSpec{s.rule}}
	row.Before = r.extAttempt(ctx, client, armed, s.server, extShapeFor(l.Before))
	after, ok := l.AfterFor[client]
	if !ok {
		after = l.After
	}
	if l.Fixed != nil {
		emu, err := emulatorFor(*l.Fixed)
		if err != nil {
			row.Status, row.Problem = StatusUnexpected, err.Error()
			return row
		}
		row.After = r.extAttempt(ctx, client, envConfig{Emulator: emu}, l.Fixed.Desc, extShapeFor(after))
	} else {
		row.After = r.extAttempt(ctx, client, armed, s.server, extShapeFor(after))
	}
	row.Note = l.ExtNote + l.NoteFor[client]
	judge(&row, expectFor(s.info, client))
	return row
}

// ErrUnknownClient is returned for a client name that is not one of
// ClientNames (or ClientAll).
var ErrUnknownClient = errors.New("unknown client")
