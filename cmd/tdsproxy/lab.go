package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/lab"
)

func init() { subcommands = append(subcommands, newLabCmd) }

// labFlags are the flags of "tdsproxy lab".
type labFlags struct {
	scenario   string
	client     string
	json       bool
	timeout    time.Duration
	hold       bool
	listen     string
	handshakes int
	logLevel   string
	logFormat  string
	retry      bool // the retry section (lab_retry.go)
}

func newLabCmd() *cobra.Command {
	var f labFlags
	cmd := &cobra.Command{
		Use:     "lab",
		Short:   "Reproduce each documented cause of error 10054, before and after its fix (no SQL Server needed)",
		Long:    labLong(),
		Example: labExample(),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("lab takes no arguments, got %q (one scenario goes after --scenario)", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.validate(cmd); err != nil {
				return err
			}
			if f.retry {
				return runLabRetry(cmd, f)
			}
			if f.hold {
				return runLabHold(cmd, f)
			}
			return runLab(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.scenario, "scenario", "", "run one scenario `name`: "+strings.Join(faults.ScenarioNames(), ", "))
	fl.StringVar(&f.client, "client", lab.ClientGo, "the client(s) that meet each scenario: "+strings.Join(lab.ClientNames(), ", ")+
		", a comma-separated list, or "+lab.ClientAll+" (go is go-mssqldb, in process and the fastest; the others need make deps)")
	fl.BoolVar(&f.json, "json", false, "print the report as JSON, with each connection's record, instead of the table")
	fl.DurationVar(&f.timeout, "timeout", 2*time.Minute, "give up on the whole lab after this long")
	fl.IntVar(&f.handshakes, "handshakes", 0, fmt.Sprintf("the dhe-leading-zero row's natural count: `N` handshakes against the padding server and N after the fix, per client (default %d with the default client, the DHE engine's, in process; %d with an external client, each a process)", lab.DefaultHandshakes, lab.DefaultExtHandshakes))
	fl.BoolVar(&f.hold, "hold", false, "with --scenario: keep the emulator and the armed proxy running for your own clients until Ctrl-C")
	fl.StringVar(&f.listen, "listen", lab.DefaultHoldListen, "with --hold: `host:port` the proxy listens on")
	fl.StringVar(&f.logLevel, "log-level", "", "with --hold: debug, info (default), warn or error; without: proxy logs at this level (default none)")
	fl.StringVar(&f.logFormat, "log-format", "auto", "json, console, or auto: console on a terminal, else json")
	fl.BoolVar(&f.retry, "retry", false, "run the retry section instead (docs/tds-faults.md): a transient login error, a deadlock victim and a failover, met by go-mssqldb without and with a retry wrapper")
	return cmd
}

// scenarioList is the help text's list of scenarios, from the catalogue.
func scenarioList() string {
	var b strings.Builder
	for i, s := range faults.Scenarios() {
		wrapHelp(&b, fmt.Sprintf("\n  %d. ", i+1), s.Name+": "+s.Summary)
		wrapHelp(&b, "     fault: ", s.Where)
		wrapHelp(&b, "     fix:   ", s.Fix)
	}
	return b.String()
}

// wrapHelp writes prefix and text, wrapped at 80 columns under the prefix.
func wrapHelp(b *strings.Builder, prefix, text string) {
	indent := strings.Repeat(" ", len(strings.TrimLeft(prefix, "\n")))
	line, fresh := prefix, true
	for _, w := range strings.Fields(text) {
		if !fresh && len(line)+1+len(w) > 80 {
			b.WriteString(line + "\n")
			line, fresh = indent, true
		}
		if !fresh {
			line += " "
		}
		line, fresh = line+w, false
	}
	b.WriteString(line + "\n")
}

func (f labFlags) validate(cmd *cobra.Command) error {
	fl := cmd.Flags()
	if f.scenario != "" && !isScenario(f.scenario) {
		return usagef("--scenario %q: not one of %s", f.scenario, strings.Join(faults.ScenarioNames(), ", "))
	}
	switch {
	case f.hold && f.scenario == "":
		return usagef("--hold needs --scenario NAME (one of %s)", strings.Join(faults.ScenarioNames(), ", "))
	case f.hold && f.json:
		return usagef("--json prints a lab report; --hold runs no report")
	case f.hold && fl.Changed("client"):
		return usagef("--client is for the lab's report; with --hold, connect your own clients (the connection strings are printed)")
	case !f.hold && fl.Changed("listen"):
		return usagef("--listen is for --hold (the lab's own proxies listen on free loopback ports)")
	case f.handshakes < 0:
		return usagef("--handshakes %d: must be positive", f.handshakes)
	case f.hold && fl.Changed("handshakes"):
		return usagef("--handshakes is for the lab's report (the dhe-leading-zero counts), not --hold")
	case f.timeout <= 0:
		return usagef("--timeout %v: must be positive", f.timeout)
	}
	switch f.logLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return usagef("--log-level %q: not one of debug, info, warn, error", f.logLevel)
	}
	switch f.logFormat {
	case "auto", "json", "console":
	default:
		return usagef("--log-format %q: not one of json, console, auto", f.logFormat)
	}
	return nil
}

func isScenario(name string) bool {
	for _, n := range faults.ScenarioNames() {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// labLogger builds the logger: for hold mode always (info by default),
// otherwise only when --log-level is given.
func labLogger(f labFlags, hold bool) (*zap.Logger, func(), error) {
	level := f.logLevel
	if level == "" {
		if !hold {
			return nil, func() {}, nil
		}
		level = "info"
	}
	return newLogger(configs.LogConfig{Level: level, Format: f.logFormat}, isTerminal(os.Stderr))
}

func runLab(cmd *cobra.Command, f labFlags) error {
	log, cleanup, err := labLogger(f, false)
	if err != nil {
		return usageError{err}
	}
	defer cleanup()
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	opts := lab.Options{Logger: log, Clients: strings.Split(f.client, ","), Handshakes: f.handshakes}
	if f.scenario != "" {
		opts.Scenarios = []string{f.scenario}
	}
	rep, err := lab.Run(ctx, opts)
	if rep != nil {
		out := cmd.OutOrStdout()
		var werr error
		if f.json {
			werr = rep.JSON(out)
		} else {
			werr = rep.Table(out)
		}
		if werr != nil {
			return werr
		}
	}
	if err != nil {
		if errors.Is(err, lab.ErrUnknownScenario) || errors.Is(err, lab.ErrUnknownClient) {
			return usageError{err}
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("the lab did not finish within --timeout %v", f.timeout)
		}
		return err
	}
	if failed := rep.Failed(); len(failed) > 0 {
		lines := make([]string, len(failed))
		for i, row := range failed {
			lines[i] = fmt.Sprintf("scenario %s did not behave as documented: %s", row.Scenario, row.Problem)
		}
		return errors.New(strings.Join(lines, "\ntdsproxy: "))
	}
	return nil
}

func runLabHold(cmd *cobra.Command, f labFlags) error {
	log, cleanup, err := labLogger(f, true)
	if err != nil {
		return usageError{err}
	}
	defer cleanup()
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	held, err := lab.Hold(lab.HoldOptions{Scenario: f.scenario, Listen: f.listen, Logger: log})
	if err != nil {
		return err
	}
	defer held.Close()
	if err := held.ConnectionHelp(cmd.OutOrStdout()); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("lab hold: stopping", zap.String("scenario", held.Scenario.Name))
	return nil
}

// labLong is lab's help text.
func labLong() string {
	return `Reproduce every documented cause of "error 10054: An existing connection was
forcibly closed by the remote host", with no SQL Server and no arguments.

The lab starts, in this process and on loopback only, the SQL Server emulator
and a tdsproxy proxy with the scenario's fault rule armed. For each scenario
it connects a real client (go-mssqldb, or those --client names) twice:

  before the fix  a client or server set up as in the failing case: a client
                  limited to TLS 1.0/1.1, a client whose cipher suites do not
                  overlap the server's, a server certificate signed with MD5,
                  a client timeout shorter than the server's accept delay;
  after the fix   the remedy the scenario names: a TLS 1.2 client, a matching
                  suite, a SHA-256 certificate, a longer timeout.

The scenarios, in the documented order:
` + scenarioList() + `
How to read the table (one row per scenario):

  FAULT AT       the phase where the rule acted, from the proxy's record of
                 the connection before the fix (tcp.accept, prelogin.*,
                 tls.client_hello, tls.client_finished, ...)
  CLOSE          how that connection ended and who closed first: "rst by
                 proxy" is the RST a Windows client reports as 10054 (the
                 proxy closed in the failing server's place); "fin by client"
                 means the client gave up
  BEFORE THE FIX the client library's own error text (addresses elided): what
                 your application would log
  AFTER THE FIX  whether the fixed client connected and ran SELECT 1
  RESULT         ok: the failure and the fix behaved as documented;
                 UNEXPECTED: something did not (the line under the table says
                 what); skipped: no client here can meet the scenario

Below the table each row lists both connections in full: client, server, the
rule's decisions and the record's close, then a note and the fix.

--client picks the clients: go (go-mssqldb, the default), jdbc (Microsoft
JDBC Driver 13.6 on the JDK), odbc (Microsoft ODBC Driver 18 through
mssql-python), tedious, tsql (FreeTDS), a comma-separated list, or all. Each
(scenario, client) is a row with that client's own error text. The others
are installed by make deps; one that is missing gives skipped rows saying so.

The two DHE rows are the real form, not an armed rule: the emulator
negotiates TLS_DHE_RSA with tdsproxy's DHE engine as an unpatched Windows
server (emulate --dhe prefer --dhe-z pad --dhe-fail rst) and the client,
which strips the shared secret's leading zero byte (RFC 5246), is reset
after its Finished, in TDS 7.x. dhe-enabled uses the lz2049 group, where
nearly every shared secret starts with a zero byte, so the failure is
deterministic (JDBC refuses that group: its row shows the refusal); after
the fix (--dhe off) the client connects with ECDHE and runs SELECT 1.
dhe-leading-zero adds counts: natural (--handshakes N against a padding
server in ffdhe2048: the failures, the rate with its 99% interval, against
the expected 1/256), forced (the DHE engine's client grinds its key so the
shared secret starts with 0x00: 20 of 20 fail against pad, 0 of 20 against
strip) and after the fix (both strip: 0 failures). go-mssqldb cannot
negotiate DHE (Go's crypto/tls has none), so with the default client these
rows use the DHE engine's own client, in process, before the fix and
go-mssqldb for SELECT 1 after it; --client tedious,tsql,jdbc,odbc shows the
real SQL clients' own errors. The passthrough form of these scenarios (the
proxy resets after the client's Finished with --dhe-rate) is what
tdsproxy run --scenario does in front of a real server.

Exit status: 0 when every row behaved as documented (skipped rows included),
1 otherwise, with a line naming each row that did not, 2 for bad flags.

With --hold, one scenario is kept running for your own clients: the emulator
behind a proxy on --listen with the rule armed (for the DHE scenarios, no
rule: the emulator itself fails, as in the lab). tdsproxy prints connection strings for go-mssqldb, the JDBC
driver, ODBC Driver 18, tedious and FreeTDS, before and after the fix, and logs each connection's record until
SIGINT or SIGTERM.`
}

// labExample is lab's examples, naming scenarios from the table.
func labExample() string {
	names := faults.ScenarioNames()
	return `  # Every scenario, a table; exit status 0 when all behaved as documented
  tdsproxy lab

  # Microsoft's own drivers as well as go-mssqldb
  tdsproxy lab --client go,jdbc,odbc

  # One scenario, the report as JSON (with each connection's record)
  tdsproxy lab --scenario ` + names[0] + ` --json

  # Keep a scenario running and try your own application against it
  tdsproxy lab --scenario ` + names[1] + ` --hold --listen 127.0.0.1:11433`
}
