package lab

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/interop"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// DefaultHoldListen is where Hold's proxy listens unless told otherwise.
const DefaultHoldListen = "127.0.0.1:11433"

// HoldOptions configures Hold.
type HoldOptions struct {
	// Scenario is the scenario whose rule is armed (required).
	Scenario string
	// Listen is the proxy's address; "" means DefaultHoldListen.
	Listen string
	// Logger receives the proxy's line per finished connection (its whole
	// record) and the emulator's logs; nil means none.
	Logger *zap.Logger
	// Sink, if set, receives every finished connection's record too.
	Sink func(*proxy.Record)
}

// Held is a scenario kept running for real clients: the emulator behind a
// proxy with the scenario's rule armed, as in the lab's "before the fix"
// connection. For the DHE scenarios no rule is armed: the emulator itself
// is the failing Windows server (faults.LabServer.DHE, the DHE engine).
type Held struct {
	Scenario faults.ScenarioInfo
	// Rule is the armed rule.
	Rule faults.RuleSpec
	// Proxy is the address clients connect to.
	Proxy string
	// Upstream is the upstream's address and Server describes it.
	Upstream, Server string
	// Dir holds the files the connection help names (freetds.conf, GnuTLS
	// priority files, the server certificate); removed by Close.
	Dir string
	// CertFile is the upstream's certificate (PEM), for clients that verify.
	CertFile string
	// TDS is true: the upstream is the emulator, a TDS server.
	TDS bool

	env *env
}

// Hold starts the scenario's upstream and a proxy on opts.Listen with the
// scenario's rule armed, and returns at once; Close stops them.
func Hold(opts HoldOptions) (*Held, error) {
	if opts.Scenario == "" {
		return nil, fmt.Errorf("lab: hold needs a scenario (one of %s)", strings.Join(faults.ScenarioNames(), ", "))
	}
	names, err := selectScenarios([]string{opts.Scenario})
	if err != nil {
		return nil, err
	}
	name := names[0]
	s, err := scenarioSetup(name)
	if err != nil {
		return nil, err
	}
	r, err := newRunner(Options{Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	h := &Held{Scenario: s.info, Rule: s.rule, Dir: r.dir, Server: s.server, TDS: true}
	fail := func(err error) (*Held, error) {
		h.Close()
		return nil, err
	}
	listen := opts.Listen
	if listen == "" {
		listen = DefaultHoldListen
	}
	cfg := envConfig{Emulator: s.emu, Rules: []faults.RuleSpec{s.rule}, Listen: listen, Logger: opts.Logger, Sink: opts.Sink}
	if s.lab().Server.DHE != nil {
		// The real form: the emulator fails by itself; no rule.
		cfg.Rules, h.Rule = nil, faults.RuleSpec{}
	}
	h.env, err = startEnv(cfg)
	if err != nil {
		return fail(err)
	}
	h.Proxy, h.Upstream = h.env.addr(), h.env.upstream
	if h.env.emu != nil {
		h.CertFile = filepath.Join(r.dir, "emulator.pem")
		if err := os.WriteFile(h.CertFile, h.env.emu.CertificatePEM(), 0o600); err != nil {
			return fail(fmt.Errorf("lab: %w", err))
		}
	}
	return h, nil
}

// Close stops the proxy and the upstream and removes Dir.
func (h *Held) Close() error {
	if h.env != nil {
		h.env.close()
	}
	if h.Dir != "" {
		return os.RemoveAll(h.Dir)
	}
	return nil
}

// clientSetup is how one client library is set up to fail (before) or
// pass (after) in a held scenario.
type clientSetup struct {
	// goTLS is Go code applied to msdsn.Config.TLSConfig after msdsn.Parse
	// (go-mssqldb has no DSN key for a maximum version or suites).
	goTLS string
	// goDSN are extra DSN keys.
	goDSN url.Values
	// tediousCrypto is options.cryptoCredentialsDetails.
	tediousCrypto *interop.CryptoCredentials
	// tediousOptions are extra tedious options.
	tediousOptions map[string]any
	// gnutls are [overrides] lines for a GnuTLS priority file.
	gnutls []string
	// freetds are extra freetds.conf lines.
	freetds []string
	// none says why this library cannot be set up this way.
	none string
	// ms is how Microsoft's JDBC and ODBC drivers are shaped (nil: their
	// defaults).
	ms *extShape
}

// ConnectionHelp prints what is running and, for go-mssqldb, Microsoft's
// JDBC and ODBC drivers, tedious and FreeTDS, a connection that meets the fault (before the fix) and one that
// passes (after the fix), with the files it needs written to Dir.
func (h *Held) ConnectionHelp(w io.Writer) error {
	rule, _ := json.Marshal(h.Rule)
	fmt.Fprintf(w, "tdsproxy lab: scenario %s held: %s\n", h.Scenario.Name, h.Scenario.Summary)
	fmt.Fprintf(w, "  proxy    %s  (connect here)\n", h.Proxy)
	fmt.Fprintf(w, "  upstream %s  %s\n", h.Upstream, h.Server)
	if h.Rule.Name == "" {
		fmt.Fprintf(w, "  rule     none: the emulator itself fails as the server the scenario describes\n")
	} else {
		fmt.Fprintf(w, "  rule     %s\n", rule)
	}
	fmt.Fprintf(w, "  fault    %s\n", h.Scenario.Where)
	fmt.Fprintf(w, "  fix      %s\n", h.Scenario.Fix)
	if h.TDS {
		fmt.Fprintf(w, "  login    %s / %s (the emulator checks it)\n", labUser, labPassword)
	}
	before, after, note := h.setups()
	if note != "" {
		fmt.Fprintf(w, "\n%s\n", note)
	}
	for _, side := range []struct {
		title string
		set   map[string]clientSetup
		tag   string
	}{{"BEFORE THE FIX: clients that meet the fault", before, "before"}, {"AFTER THE FIX: clients that pass", after, "after"}} {
		if side.set == nil {
			continue
		}
		fmt.Fprintf(w, "\n%s\n", side.title)
		if err := h.printClients(w, side.tag, side.set); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\nEach connection is logged with its record when it ends. Ctrl-C stops.\n\n")
	return nil
}

func (h *Held) printClients(w io.Writer, tag string, set map[string]clientSetup) error {
	host, port, err := net.SplitHostPort(h.Proxy)
	if err != nil {
		return err
	}
	if c, ok := set["go-mssqldb"]; ok {
		h.printGo(w, c)
	}
	if c, ok := set["jdbc"]; ok {
		if err := h.printJDBC(w, tag, c); err != nil {
			return err
		}
	}
	if c, ok := set["odbc"]; ok {
		if err := h.printODBC(w, tag, c); err != nil {
			return err
		}
	}
	if c, ok := set["tedious"]; ok {
		if err := printTedious(w, host, port, c); err != nil {
			return err
		}
	}
	if c, ok := set["freetds"]; ok {
		return h.printFreeTDS(w, tag, host, port, c)
	}
	return nil
}

// printGo prints a go-mssqldb DSN and the TLS settings it needs in code.
func (h *Held) printGo(w io.Writer, c clientSetup) {
	fmt.Fprintf(w, "  go-mssqldb:\n")
	if c.none != "" {
		fmt.Fprintf(w, "    %s\n", c.none)
		return
	}
	q := url.Values{"database": {"master"}, "encrypt": {"true"}, "TrustServerCertificate": {"true"}}
	for k, v := range c.goDSN {
		q[k] = v
	}
	u := url.URL{Scheme: "sqlserver", User: url.UserPassword(labUser, labPassword), Host: h.Proxy, RawQuery: q.Encode()}
	fmt.Fprintf(w, "    %s\n", u.String())
	if c.goTLS != "" {
		fmt.Fprintf(w, "    then, after msdsn.Parse: %s\n", c.goTLS)
	}
}

// printTedious prints a tedious connection config.
func printTedious(w io.Writer, host, port string, c clientSetup) error {
	fmt.Fprintf(w, "  tedious (new Connection(config)):\n")
	if c.none != "" {
		fmt.Fprintf(w, "    %s\n", c.none)
		return nil
	}
	opts := map[string]any{"port": json.Number(port), "encrypt": true, "trustServerCertificate": true}
	for k, v := range c.tediousOptions {
		opts[k] = v
	}
	if c.tediousCrypto != nil {
		opts["cryptoCredentialsDetails"] = c.tediousCrypto
	}
	cfg := map[string]any{"server": host, "options": opts,
		"authentication": map[string]any{"type": "default", "options": map[string]any{"userName": labUser, "password": labPassword}}}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "    %s\n", b)
	return nil
}

// printFreeTDS prints a tsql command line with the freetds.conf (and GnuTLS
// priority file) it needs, written to Dir.
func (h *Held) printFreeTDS(w io.Writer, tag, host, port string, c clientSetup) error {
	fmt.Fprintf(w, "  FreeTDS (tsql):\n")
	if c.none != "" {
		fmt.Fprintf(w, "    %s\n", c.none)
		return nil
	}
	section := "tdsproxy-lab-" + tag
	conf := fmt.Sprintf("[%s]\n\thost = %s\n\tport = %s\n\ttds version = 7.4\n\tencryption = require\n", section, host, port)
	for _, l := range c.freetds {
		conf += "\t" + l + "\n"
	}
	confFile := filepath.Join(h.Dir, "freetds-"+tag+".conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	env := "FREETDSCONF=" + confFile
	if len(c.gnutls) > 0 {
		pf := filepath.Join(h.Dir, "gnutls-"+tag+".conf")
		if err := os.WriteFile(pf, []byte("[overrides]\n"+strings.Join(c.gnutls, "\n")+"\n"), 0o600); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		env += " GNUTLS_SYSTEM_PRIORITY_FILE=" + pf
	}
	fmt.Fprintf(w, "    %s tsql -S %s -U %s -P %s\n", env, section, labUser, labPassword)
	fmt.Fprintf(w, "    %s:\n", confFile)
	for _, l := range strings.Split(strings.TrimRight(conf, "\n"), "\n") {
		fmt.Fprintf(w, "      %s\n", l)
	}
	if len(c.gnutls) > 0 {
		fmt.Fprintf(w, "    GnuTLS [overrides]: %s\n", strings.Join(c.gnutls, "; "))
	}
	return nil
}

// holdClientNames are the clients ConnectionHelp prints, by their names
// in the faults lab table.
var holdClientNames = map[string]string{
	faults.LabGo: "go-mssqldb", faults.LabJDBC: "jdbc", faults.LabODBC: "odbc", faults.LabTedious: "tedious", faults.LabTSQL: "freetds",
}

// setups returns the client set-ups for the held scenario, from its lab
// entry; nil after means the fix is on the server side and no client
// passes.
func (h *Held) setups() (before, after map[string]clientSetup, note string) {
	l := h.Scenario.Lab
	before = holdClients(l.Before, nil, l.Cannot)
	if l.Fixed == nil {
		after = holdClients(l.After, l.AfterFor, nil)
	}
	return before, after, l.HoldNote
}

// holdClients sets every client up as c (or its own entry in per); cannot
// says why a client cannot be set up so.
func holdClients(c faults.LabClient, per map[string]faults.LabClient, cannot map[string]string) map[string]clientSetup {
	out := map[string]clientSetup{}
	for lc, name := range holdClientNames {
		cl, ok := per[lc]
		if !ok {
			cl = c
		}
		if why, ok := cannot[lc]; ok {
			out[name] = clientSetup{none: why}
			continue
		}
		out[name] = holdClient(lc, extShapeFor(cl))
	}
	return out
}

// holdClient is one client library set up as s.
func holdClient(client string, s extShape) clientSetup {
	switch client {
	case faults.LabGo:
		var set clientSetup
		switch {
		case s.tlsMin != 0 && s.tlsMax != 0:
			set.goTLS = "cfg.TLSConfig.MinVersion, cfg.TLSConfig.MaxVersion = " + goTLSVersion[s.tlsMin] + ", " + goTLSVersion[s.tlsMax]
		case s.tlsMax != 0:
			set.goTLS = "cfg.TLSConfig.MaxVersion = " + goTLSVersion[s.tlsMax]
		}
		if s.suite != 0 {
			set.goTLS += "; cfg.TLSConfig.CipherSuites = []uint16{tls." + tlsbridge.CipherSuiteName(s.suite) + "}"
		}
		set.goTLS = strings.TrimPrefix(set.goTLS, "; ")
		if s.loginTimeout != 0 {
			set.goDSN = url.Values{"connection timeout": {strconv.Itoa(s.loginTimeout)}}
		}
		return set
	case faults.LabJDBC, faults.LabODBC:
		return clientSetup{ms: &s}
	case faults.LabTedious:
		set := clientSetup{}
		if cc := tediousCrypto(s); *cc != (interop.CryptoCredentials{}) {
			set.tediousCrypto = cc
		}
		if s.loginTimeout != 0 || s.strict {
			set.tediousOptions = map[string]any{}
		}
		if s.loginTimeout != 0 {
			set.tediousOptions["connectTimeout"] = s.loginTimeout * 1000
		}
		if s.strict {
			set.tediousOptions["encrypt"] = "strict"
		}
		return set
	}
	set := clientSetup{}
	var v1 *bool
	set.gnutls, v1 = gnuTLSShape(s)
	if v1 != nil && *v1 {
		set.freetds = append(set.freetds, "enable tls v1 = yes")
	}
	return set
}

// goTLSVersion names a version as Go code.
var goTLSVersion = map[uint16]string{tls.VersionTLS10: "tls.VersionTLS10", tls.VersionTLS11: "tls.VersionTLS11",
	tls.VersionTLS12: "tls.VersionTLS12", tls.VersionTLS13: "tls.VersionTLS13"}

// printJDBC prints a JDBC URL and the JVM options for a set-up; a
// java.security override, when one is needed, is written to Dir.
func (h *Held) printJDBC(w io.Writer, tag string, c clientSetup) error {
	fmt.Fprintf(w, "  Microsoft JDBC Driver (DriverManager.getConnection):\n")
	if c.none != "" {
		fmt.Fprintf(w, "    %s\n", c.none)
		return nil
	}
	host, port, err := net.SplitHostPort(h.Proxy)
	if err != nil {
		return err
	}
	var shape extShape
	if c.ms != nil {
		shape = *c.ms
	}
	cfg := jdbcConfig(shape)
	u := fmt.Sprintf("jdbc:sqlserver://%s:%s;user=%s;password=%s;encrypt=%s", host, port, labUser, labPassword, cfg.Encrypt)
	if cfg.Encrypt == "strict" {
		u += ";serverCertificate=" + h.CertFile
	} else {
		u += ";trustServerCertificate=true"
	}
	u += fmt.Sprintf(";loginTimeout=%d", cfg.LoginTimeout)
	fmt.Fprintf(w, "    %s\n", u)
	var jvm []string
	if len(cfg.Protocols) > 0 {
		jvm = append(jvm, "-Djdk.tls.client.protocols="+strings.Join(cfg.Protocols, ","))
	}
	if len(cfg.CipherSuites) > 0 {
		jvm = append(jvm, "-Djdk.tls.client.cipherSuites="+strings.Join(cfg.CipherSuites, ","))
	}
	if v, ok := cfg.SecurityProps["jdk.tls.disabledAlgorithms"]; ok {
		f := filepath.Join(h.Dir, "java-"+tag+".security")
		if err := os.WriteFile(f, []byte("jdk.tls.disabledAlgorithms="+v+"\n"), 0o600); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		jvm = append(jvm, "-Djava.security.properties="+f)
	}
	if len(jvm) > 0 {
		fmt.Fprintf(w, "    java %s ...\n", strings.Join(jvm, " "))
	}
	return nil
}

// printODBC prints an ODBC Driver 18 connection string and, when the TLS
// settings differ from OpenSSL's defaults, an OPENSSL_CONF written to Dir.
func (h *Held) printODBC(w io.Writer, tag string, c clientSetup) error {
	fmt.Fprintf(w, "  ODBC Driver 18 (SQLDriverConnect, pyodbc, mssql-python):\n")
	if c.none != "" {
		fmt.Fprintf(w, "    %s\n", c.none)
		return nil
	}
	host, port, err := net.SplitHostPort(h.Proxy)
	if err != nil {
		return err
	}
	var shape extShape
	if c.ms != nil {
		shape = *c.ms
	}
	cfg := odbcConfig(shape)
	cs := fmt.Sprintf("Driver={ODBC Driver 18 for SQL Server};Server=tcp:%s,%s;UID=%s;PWD=%s;Encrypt=%s", host, port, labUser, labPassword, cfg.Encrypt)
	if cfg.Encrypt == "strict" {
		cs += ";ServerCertificate=" + h.CertFile
	} else {
		cs += ";TrustServerCertificate=yes"
	}
	env := ""
	if len(cfg.OpenSSL) > 0 {
		f := filepath.Join(h.Dir, "openssl-"+tag+".cnf")
		conf := "openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n[ssl_sect]\nsystem_default = system_default_sect\n[system_default_sect]\n" +
			strings.Join(cfg.OpenSSL, "\n") + "\n"
		if err := os.WriteFile(f, []byte(conf), 0o600); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		env = "OPENSSL_CONF=" + f + " "
	}
	fmt.Fprintf(w, "    %s%q\n", env, cs)
	fmt.Fprintf(w, "    login timeout %d s (SQL_ATTR_LOGIN_TIMEOUT; mssql-python and pyodbc: connect(..., timeout=%d))\n", cfg.LoginTimeout, cfg.LoginTimeout)
	if len(cfg.OpenSSL) > 0 {
		fmt.Fprintf(w, "    OpenSSL [system_default_sect]: %s\n", strings.Join(cfg.OpenSSL, "; "))
	}
	return nil
}
