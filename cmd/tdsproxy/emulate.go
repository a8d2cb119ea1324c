package main

import (
	"cmp"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

func init() { subcommands = append(subcommands, newEmulateCmd) }

// emulateFlags holds the raw flag values of "tdsproxy emulate".
type emulateFlags struct {
	listen        string
	encrypt       string
	tlsMin        string
	tlsMax        string
	ciphers       []string
	certFile      string
	keyFile       string
	certOut       string
	user          string
	password      string
	largeRows     int
	largeRowBytes int
	serverName    string
	logLevel      string
	dhe           string
	dheGroup      string
	dheZ          string
	dheY          string
	dheFail       string
}

func newEmulateCmd() *cobra.Command {
	var f emulateFlags
	cmd := &cobra.Command{
		Use:   "emulate",
		Short: "Run a small SQL Server emulator to test clients and tdsproxy against",
		Long: `Run a SQL Server stand-in that speaks enough TDS for go-mssqldb, tedious and
FreeTDS to connect, log in and run SELECT 1, SELECT @@VERSION and
SELECT large(N, M). It negotiates encryption as SQL Server does: the PRELOGIN
ENCRYPTION exchange, TLS carried in PRELOGIN packets, TLS for the login
packet only when both sides say OFF, and TDS 8.0 strict (TLS first, ALPN
tds/8.0). TLS versions, cipher suites and the certificate are configurable,
so it can play a server that a client cannot agree with.

--encrypt is the server's setting: off (SQL Server's default: no "force
encryption"), on or req (force encryption), not_sup (no TLS at all).

--dhe prefer|only negotiates TLS_DHE_RSA suites with tdsproxy's own DHE engine
(Go's TLS has none), inside PRELOGIN and in strict mode, at TLS 1.2 at most.
With --dhe-z pad it behaves like an unpatched Windows server: clients that
strip the DH shared secret's leading zero byte (OpenSSL, GnuTLS, JSSE) fail
about one handshake in 256, the way --dhe-fail says; --dhe-group lz2049 makes
that every handshake (docs/dhe.md).

It prints the address and connection strings for go-mssqldb, tedious and
FreeTDS, then serves until interrupted (SIGINT or SIGTERM).`,
		Example: `  # SQL Server 2022's defaults: encryption off, self-signed certificate,
  # TLS 1.2 inside PRELOGIN (TDS 7.x), TLS 1.2-1.3 for TDS 8.0 strict
  tdsproxy emulate

  # A force-encryption server that only speaks TLS 1.2, with a login
  tdsproxy emulate --encrypt on --tls-min 1.2 --tls-max 1.2 --user sa --password 'Secret-1'

  # An old server: TLS 1.0 only, one CBC cipher suite
  tdsproxy emulate --tls-min 1.0 --tls-max 1.0 --cipher-suites TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA

  # A server that prefers TLS_DHE_RSA and pads the DH shared secret, as an
  # unpatched Windows server does (KB4557473): clients that strip it (OpenSSL,
  # GnuTLS, JSSE) fail about 1 handshake in 256 (docs/dhe.md)
  tdsproxy emulate --encrypt on --dhe prefer --dhe-z pad --dhe-fail rst

  # Your own certificate; write the served certificate for clients to trust
  tdsproxy emulate --cert server.pem --key server.key
  tdsproxy emulate --cert-out /tmp/emulator.pem`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("emulate takes no arguments, got %q", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEmulate(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:14330", "TCP address to listen on (port 0 picks a free port)")
	fl.StringVar(&f.encrypt, "encrypt", "off", "server encryption setting: off, on, req or not_sup")
	fl.StringVar(&f.tlsMin, "tls-min", "1.2", "lowest TLS version: 1.0, 1.1, 1.2 or 1.3")
	fl.StringVar(&f.tlsMax, "tls-max", "", "highest TLS version: 1.0, 1.1, 1.2 or 1.3 (default: as SQL Server 2022, 1.2 inside PRELOGIN and 1.3 for TDS 8.0 strict)")
	fl.StringSliceVar(&f.ciphers, "cipher-suites", nil, "TLS 1.0-1.2 cipher suites by Go name, comma-separated (default: Go's)")
	fl.StringVar(&f.certFile, "cert", "", "server certificate chain, PEM (with --key; default: a generated self-signed RSA-2048/SHA-256 certificate)")
	fl.StringVar(&f.keyFile, "key", "", "private key for --cert, PEM")
	fl.StringVar(&f.certOut, "cert-out", "", "write the served certificate (PEM) to this file, for clients to trust")
	fl.StringVar(&f.user, "user", "", "the only login accepted (default: any login)")
	fl.StringVar(&f.password, "password", "", "password for --user")
	fl.IntVar(&f.largeRows, "large-rows", emulator.DefaultLargeRows, "rows returned by SELECT large")
	fl.IntVar(&f.largeRowBytes, "large-row-bytes", emulator.DefaultLargeRowBytes, "bytes per row of SELECT large (1..8000)")
	fl.StringVar(&f.serverName, "server-name", emulator.DefaultServerName, "server name in messages and @@VERSION")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.StringVar(&f.dhe, "dhe", "off", "TLS_DHE_RSA with the DHE engine (TLS 1.0-1.2): off; prefer (a client that offers DHE gets it); only (every client, others refused)")
	fl.StringVar(&f.dheGroup, "dhe-group", dhe.DefaultGroup, "DH group: "+strings.Join(dhe.Groups(), ", "))
	fl.StringVar(&f.dheZ, "dhe-z", "strip", "DH shared secret as pre-master secret: strip (RFC 5246 8.1.2, patched Windows) or pad (unpatched Windows)")
	fl.StringVar(&f.dheY, "dhe-y", "minimal", "server DH public value on the wire: minimal or padded (to the length of p)")
	fl.StringVar(&f.dheFail, "dhe-fail", "alert", "when the client's Finished does not decrypt: fin (close, no alert), rst (abort: 10054) or alert (bad_record_mac)")
	return cmd
}

// emulatorConfig turns flags into an emulator.Config; errors name the flag.
func (f emulateFlags) emulatorConfig() (emulator.Config, error) {
	cfg := emulator.Config{
		Listen:        f.listen,
		User:          f.user,
		Password:      f.password,
		LargeRows:     f.largeRows,
		LargeRowBytes: f.largeRowBytes,
		ServerName:    f.serverName,
	}
	if _, _, err := net.SplitHostPort(f.listen); err != nil {
		return cfg, usagef("--listen %q: %v", f.listen, err)
	}
	enc, err := parseServerEncrypt(f.encrypt)
	if err != nil {
		return cfg, err
	}
	cfg.Encrypt = enc
	if cfg.TLSMin, err = parseTLSVersion("--tls-min", f.tlsMin); err != nil {
		return cfg, err
	}
	if f.tlsMax != "" {
		if cfg.TLSMax, err = parseTLSVersion("--tls-max", f.tlsMax); err != nil {
			return cfg, err
		}
	}
	if cfg.TLSMax != 0 && cfg.TLSMin > cfg.TLSMax {
		return cfg, usagef("--tls-min %s is above --tls-max %s", f.tlsMin, f.tlsMax)
	}
	if cfg.CipherSuites, err = parseCipherSuites(f.ciphers); err != nil {
		return cfg, err
	}
	switch {
	case (f.certFile == "") != (f.keyFile == ""):
		return cfg, usagef("--cert and --key go together")
	case f.certFile != "":
		c, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return cfg, usagef("--cert/--key: %v", err)
		}
		cfg.Certificate = &c
	}
	if f.password != "" && f.user == "" {
		return cfg, usagef("--password needs --user")
	}
	if f.largeRows < 0 {
		return cfg, usagef("--large-rows %d: must not be negative", f.largeRows)
	}
	if f.largeRowBytes < 1 || f.largeRowBytes > tds.MaxVarLen {
		return cfg, usagef("--large-row-bytes %d: must be 1..%d", f.largeRowBytes, tds.MaxVarLen)
	}
	if cfg.DHE, err = emulator.ParseDHEMode(f.dhe); err != nil {
		return cfg, usagef("--dhe: %v", err)
	}
	if _, err := dhe.GroupByName(f.dheGroup); err != nil {
		return cfg, usagef("--dhe-group: %v", err)
	}
	cfg.DHEGroup = f.dheGroup
	if cfg.DHEZ, err = dhe.ParseZEncoding(f.dheZ); err != nil {
		return cfg, usagef("--dhe-z: %v", err)
	}
	if cfg.DHEY, err = dhe.ParseYEncoding(f.dheY); err != nil {
		return cfg, usagef("--dhe-y: %v", err)
	}
	if cfg.DHEFail, err = dhe.ParseFailMode(f.dheFail); err != nil {
		return cfg, usagef("--dhe-fail: %v", err)
	}
	if cfg.DHE != emulator.DHEOff && cfg.TLSMin > tls.VersionTLS12 {
		return cfg, usagef("--dhe %s needs TLS 1.2 or lower, but --tls-min is %s", f.dhe, f.tlsMin)
	}
	switch f.logLevel {
	case "debug", "info", "warn", "error":
	default:
		return cfg, usagef("--log-level %q: not one of debug, info, warn, error", f.logLevel)
	}
	return cfg, nil
}

func parseServerEncrypt(s string) (tds.Encryption, error) {
	switch strings.ToLower(s) {
	case "off":
		return tds.EncryptOff, nil
	case "on":
		return tds.EncryptOn, nil
	case "req", "required":
		return tds.EncryptReq, nil
	case "not_sup", "not-sup", "notsup":
		return tds.EncryptNotSup, nil
	}
	return 0, usagef("--encrypt %q: not one of off, on, req, not_sup", s)
}

func parseTLSVersion(flag, s string) (uint16, error) {
	switch strings.TrimPrefix(strings.ToLower(s), "tls") {
	case "1.0", "10":
		return tls.VersionTLS10, nil
	case "1.1", "11":
		return tls.VersionTLS11, nil
	case "1.2", "12":
		return tls.VersionTLS12, nil
	case "1.3", "13":
		return tls.VersionTLS13, nil
	}
	return 0, usagef("%s %q: not one of 1.0, 1.1, 1.2, 1.3", flag, s)
}

func parseCipherSuites(names []string) ([]uint16, error) {
	if len(names) == 0 {
		return nil, nil
	}
	byName := make(map[string]uint16)
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		byName[cs.Name] = cs.ID
	}
	var ids []uint16
	for _, n := range names {
		id, ok := byName[strings.ToUpper(strings.TrimSpace(n))]
		if !ok {
			return nil, usagef("--cipher-suites: %q is not a cipher suite Go implements (e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)", n)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func runEmulate(cmd *cobra.Command, f emulateFlags) error {
	cfg, err := f.emulatorConfig()
	if err != nil {
		return err
	}
	log, cleanup, err := newLogger(configs.LogConfig{Level: f.logLevel}, isTerminal(os.Stderr))
	if err != nil {
		return err
	}
	defer cleanup()
	cfg.Logger = log.Named("emulator")

	srv, err := emulator.New(cfg)
	if err != nil {
		return err
	}
	certPath := f.certFile
	if f.certOut != "" {
		if err := os.WriteFile(f.certOut, srv.CertificatePEM(), 0o644); err != nil {
			return fmt.Errorf("--cert-out: %w", err)
		}
		certPath = f.certOut
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Start(); err != nil {
		return err
	}
	printConnectionHelp(cmd.OutOrStdout(), srv, cfg, certPath)
	<-ctx.Done()
	log.Info("shutting down", zap.Stringer("stats", statsString(srv.Stats())))
	return srv.Close()
}

// printConnectionHelp prints the address and, for each client library, a
// connection that works with this server's encryption setting.
func printConnectionHelp(w io.Writer, srv *emulator.Server, cfg emulator.Config, certPath string) {
	addr := srv.Addr()
	minV, max7, max8 := srv.TLSVersions()
	host, port, _ := net.SplitHostPort(addr)
	user, password := cfg.User, cfg.Password
	if user == "" {
		user, password = "sa", "any"
	}
	// A client setting that connects to this server: encrypt=true/ON
	// gets TLS for the session unless the server cannot do TLS at all.
	goEnc, tediousEnc, freetdsEnc := "true", true, "require"
	switch cfg.Encrypt {
	case tds.EncryptNotSup:
		goEnc, tediousEnc, freetdsEnc = "disable", false, "off"
	case tds.EncryptOff:
		goEnc, freetdsEnc = "false", "request" // login-only TLS, SQL Server's default
	}
	u := url.URL{Scheme: "sqlserver", User: url.UserPassword(user, password), Host: addr,
		RawQuery: url.Values{"encrypt": {goEnc}, "TrustServerCertificate": {"true"}}.Encode()}
	fmt.Fprintf(w, "tdsproxy SQL Server emulator listening on %s (encrypt %s; %s..%s in PRELOGIN, up to %s for TDS 8.0)\n",
		addr, cfg.Encrypt, tls.VersionName(minV), tls.VersionName(max7), tls.VersionName(max8))
	if cfg.DHE != emulator.DHEOff {
		fmt.Fprintf(w, "TLS_DHE_RSA: %s (group %s, Z %s, Y %s, fail %s; TLS 1.2 at most with DHE)\n",
			cfg.DHE, cmp.Or(cfg.DHEGroup, dhe.DefaultGroup), cfg.DHEZ, cfg.DHEY, cfg.DHEFail)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "go-mssqldb:\n  %s\n", u.String())
	if certPath != "" {
		su := u
		su.RawQuery = url.Values{"encrypt": {"strict"}, "certificate": {certPath}, "hostNameInCertificate": {"localhost"}}.Encode()
		fmt.Fprintf(w, "  %s   (TDS 8.0 strict)\n", su.String())
	} else {
		fmt.Fprintf(w, "  (TDS 8.0 strict verifies the certificate even with TrustServerCertificate: use --cert-out FILE and certificate=FILE)\n")
	}
	tedious := map[string]any{
		"server": host,
		"authentication": map[string]any{"type": "default",
			"options": map[string]any{"userName": user, "password": password}},
		"options": map[string]any{"port": json.Number(port), "encrypt": tediousEnc, "trustServerCertificate": true},
	}
	tj, _ := json.Marshal(tedious)
	fmt.Fprintf(w, "\ntedious (new Connection(config)):\n  %s\n", tj)
	fmt.Fprintf(w, "\nFreeTDS:\n  tsql -H %s -p %s -U %s -P %s\n", host, port, shellQuote(user), shellQuote(password))
	fmt.Fprintf(w, "  freetds.conf: encryption = %s\n\n", freetdsEnc)
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

type statsString emulator.Stats

func (s statsString) String() string {
	return fmt.Sprintf("connections=%d logins_ok=%d logins_failed=%d batches=%d tls_handshakes=%d tls_failures=%d protocol_errors=%d dhe_handshakes=%d",
		s.Connections, s.LoginsOK, s.LoginsFailed, s.Batches, s.TLSHandshakes, s.TLSFailures, s.ProtocolErrors, s.DHEHandshakes)
}
