package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/diagnose"
	"github.com/tdsproxy/tdsproxy/report"
)

func init() { subcommands = append(subcommands, newReportCmd) }

// reportFlags are report's flags.
type reportFlags struct {
	from      string
	token     string
	since     time.Duration
	json      bool
	html      string
	slowLogin time.Duration
}

func newReportCmd() *cobra.Command {
	var f reportFlags
	cmd := &cobra.Command{
		Use:   "report [LOGFILE ...]",
		Short: "Say who your clients are, who breaks if TLS settings change, why connections failed and where logins are slow",
		Long:  reportLong,
		Example: `  tdsproxy report /var/log/tdsproxy/*.log /archive/tdsproxy-*.log.gz
  tdsproxy report --from http://127.0.0.1:8475 --since 24h --html report.html
  zcat fleet.log.gz | tdsproxy report - --json > report.json`,
		RunE: func(cmd *cobra.Command, args []string) error { return runReport(cmd, args, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.from, "from", "", "read a running tdsproxy's finished records from its admin `URL` (e.g. http://127.0.0.1:8475)")
	// The default is read when the command runs, not shown by --help: it
	// is a secret.
	fl.StringVar(&f.token, "token", "", "bearer `token` of the admin API for --from (default: $TDSPROXY_ADMIN_TOKEN)")
	fl.DurationVar(&f.since, "since", 0, "only connections that ended within this long before now, e.g. 24h (0: all)")
	fl.BoolVar(&f.json, "json", false, `print one JSON object {"clients","readiness","failures","slow_logins"} instead of text`)
	fl.StringVar(&f.html, "html", "", "also write a self-contained HTML page with charts to `FILE`")
	fl.DurationVar(&f.slowLogin, "slow-login", diagnose.DefaultSlowLogin, "a login slower than this gets a slow-login finding (records diagnosed when they closed keep the proxy's own)")
	return cmd
}

// reportLong is report's help text.
const reportLong = `Read tdsproxy's JSON log lines (any number of files from any number of
instances; - is stdin; gzip is recognised) or a running instance's finished
records (--from, its admin API), and print:

  Clients     grouped by address, LOGIN7 host/app/library when visible,
              PRELOGIN driver version and JA4, with the TLS versions and
              suites offered and negotiated, encryption, connections and
              failures.
  Readiness   for each change (disable TLS 1.0 and 1.1; TLS 1.3 only;
              remove TLS_DHE_*; remove TLS_RSA; re-issue the certificate with
              SHA-256 or SHA-512; require TDS 8.0 strict): the clients that
              would break, those that would change, and how many are
              unaffected, each with the evidence.
  Failures    by finding, with counts, first and last seen, examples and the
              fix; injected faults counted apart.
  Slow logins by step (p50, p95, max; the step slow logins were slowest in).

The input is streamed: memory grows with distinct clients, not lines.
Malformed lines are counted and skipped; a summary goes to stderr. See
docs/report.md.`

// runReport reads the inputs report's arguments and flags name, then
// writes the report.
func runReport(cmd *cobra.Command, args []string, f *reportFlags) error {
	if len(args) == 0 && f.from == "" {
		return usagef("report: give LOGFILE arguments (- for stdin) or --from URL")
	}
	if f.since < 0 {
		return usagef("--since: %v is negative", f.since)
	}
	// The live heap is small (the clients, a few batches of
	// lines) and the garbage large (every decoded line): a heap
	// goal of 4x the live heap instead of 2x costs ~40 MiB of RSS
	// and saves ~20% of the CPU (BENCHMARKS.md).
	defer debug.SetGCPercent(debug.SetGCPercent(300))
	now := time.Now()
	opts := report.Options{SlowLogin: f.slowLogin}
	if f.since > 0 {
		opts.Since = now.Add(-f.since)
	}
	b := report.New(opts)
	for _, name := range args {
		if err := b.ReadFile(name, cmd.InOrStdin()); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	if f.from != "" {
		token := f.token
		if token == "" {
			token = os.Getenv(configs.EnvVar("admin.token"))
		}
		if err := b.ReadAPI(cmd.Context(), adminURL(f.from), token, opts.Since); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	return writeReport(cmd, b.Result(), f, now)
}

// writeReport writes the input summary to stderr, the HTML page when
// --html asks, and the report as text or JSON to stdout.
func writeReport(cmd *cobra.Command, res *report.Report, f *reportFlags, now time.Time) error {
	in := res.Input()
	stderr := cmd.ErrOrStderr()
	fmt.Fprintln(stderr, in.Summary())
	for _, e := range in.Examples {
		fmt.Fprintln(stderr, "report: skipped", e)
	}
	if f.html != "" {
		hf, err := os.Create(f.html)
		if err != nil {
			return fmt.Errorf("report: --html: %w", err)
		}
		if err := res.WriteHTML(hf, now); err != nil {
			hf.Close()
			return fmt.Errorf("report: --html: %w", err)
		}
		if err := hf.Close(); err != nil {
			return fmt.Errorf("report: --html: %w", err)
		}
	}
	out := cmd.OutOrStdout()
	if f.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return res.WriteText(out)
}
