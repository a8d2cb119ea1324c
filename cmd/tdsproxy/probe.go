package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tdsproxy/tdsproxy/probe"
)

func init() { subcommands = append(subcommands, newProbeCmd) }

// probeFlags are probe's flags.
type probeFlags struct {
	instance    string
	json        bool
	timeout     time.Duration
	concurrency int
	profiles    []string
}

func newProbeCmd() *cobra.Command {
	var f probeFlags
	cmd := &cobra.Command{
		Use:   "probe HOST:PORT",
		Short: "Examine a SQL Server's TLS over TDS and say which 10054 causes it is exposed to",
		Long: `Probe a SQL Server (or anything speaking TDS) the way its clients meet it:
PRELOGIN with each ENCRYPTION value; TLS 1.0, 1.1, 1.2 and 1.3, one at a
time, inside PRELOGIN (TDS 7.x) and in TDS 8.0 strict form; the cipher
suites of each version, in the server's preference order; DHE groups; the
certificate chain (signature hash, SHA-1 thumbprint, key, validity, host
name); known clients' offers (--client-profile); connect and PRELOGIN
round-trip times. It ends with one verdict per 10054 scenario (risk, ok or
n/a), why, and the fix. See docs/probe.md.

Progress goes to stderr. Exit status: 0 when the server could be probed, 2
on bad arguments, 1 when it could not be reached or does not speak TDS.

Client profiles: ` + strings.Join(probe.ProfileNames(), ", ") + `.`,
		Example: `  tdsproxy probe sql01:1433
  tdsproxy probe 127.0.0.1:1433 --json --timeout 2s --concurrency 8
  tdsproxy probe sql01:1433 --instance SQLEXPRESS --client-profile netfx-tls10 --client-profile java17`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("probe takes one HOST:PORT, got %d arguments", len(args))
			}
			if _, port, err := net.SplitHostPort(args[0]); err != nil || port == "" {
				return usagef("probe: %q is not HOST:PORT (e.g. sql01:1433)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.timeout <= 0 {
				return usagef("--timeout: %v must be more than 0", f.timeout)
			}
			if f.concurrency < 1 || f.concurrency > 64 {
				return usagef("--concurrency: %d is outside 1..64", f.concurrency)
			}
			known := probe.ProfileNames()
			for _, p := range f.profiles {
				found := false
				for _, k := range known {
					found = found || strings.EqualFold(k, p)
				}
				if !found {
					return usagef("--client-profile: %q is not one of %s", p, strings.Join(known, ", "))
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			stderr := cmd.ErrOrStderr()
			res, err := probe.Run(ctx, probe.Config{
				Target:      args[0],
				Instance:    f.instance,
				Timeout:     f.timeout,
				Concurrency: f.concurrency,
				Profiles:    f.profiles,
				Progress:    func(line string) { fmt.Fprintln(stderr, "probe:", line) },
			})
			if err != nil {
				// probe.ErrUnreachable and a cancelled run: one line, exit 1.
				return err
			}
			out := cmd.OutOrStdout()
			if f.json {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			return res.WriteText(out)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.instance, "instance", "", "instance `NAME` sent in PRELOGIN (INSTOPT)")
	fl.BoolVar(&f.json, "json", false, "print one JSON object instead of the report")
	fl.DurationVar(&f.timeout, "timeout", probe.DefaultTimeout, "bound on each connection (connect and every exchange on it)")
	fl.IntVar(&f.concurrency, "concurrency", probe.DefaultConcurrency, "connections open to the target at once")
	fl.StringArrayVar(&f.profiles, "client-profile", nil, "report what this known client would get (repeatable; default all): "+strings.Join(probe.ProfileNames(), ", "))
	return cmd
}
