package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/control/client"
	"github.com/tdsproxy/tdsproxy/proxy"
)

func init() { subcommands = append(subcommands, newTopCmd) }

// topFlags are top's flags.
type topFlags struct {
	admin    string
	token    string
	interval time.Duration
	once     bool
	finished int
}

// ansiHome moves the cursor home and clears the screen: each frame is
// drawn in place.
const ansiHome = "\x1b[H\x1b[2J"

func newTopCmd() *cobra.Command {
	var f topFlags
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Live view of a running tdsproxy: connections, phases, injected faults",
		Long: `Show what a running tdsproxy is doing, refreshed in place until Ctrl-C:
its proxies and fault rules, the open connections (phase reached, TLS
version and cipher suite, bytes, age), the connections that finished most
recently (who closed, how, in which phase) and the faults injected lately.

It reads the admin API of "tdsproxy run" (127.0.0.1:8475 by default). With
--once it prints one frame, without terminal control codes, and exits.`,
		Example: `  tdsproxy top
  tdsproxy top --admin http://10.0.0.5:8475 --token "$TDSPROXY_ADMIN_TOKEN" --interval 2s
  tdsproxy top --once > snapshot.txt`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("top takes no arguments, got %q", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.interval <= 0 {
				return usagef("--interval: %v must be more than 0", f.interval)
			}
			if f.finished < 0 {
				return usagef("--finished: %d is negative", f.finished)
			}
			c := client.New(adminURL(f.admin), f.token)
			out := cmd.OutOrStdout()
			if f.once {
				frame, err := topFrame(cmd.Context(), c, f, time.Now())
				if err != nil {
					return err
				}
				_, err = io.WriteString(out, frame)
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			tick := time.NewTicker(f.interval)
			defer tick.Stop()
			for {
				frame, err := topFrame(ctx, c, f, time.Now())
				if ctx.Err() != nil {
					return nil
				}
				if err != nil {
					frame = fmt.Sprintf("tdsproxy top — %s — %s\n\n%v\n(retrying every %v; Ctrl-C to quit)\n",
						adminURL(f.admin), time.Now().Format(time.TimeOnly), err, f.interval)
				}
				if _, err := io.WriteString(out, ansiHome+frame); err != nil {
					return err
				}
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
				}
			}
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.admin, "admin", "http://"+configs.DefaultAdminListen, "`URL` (or host:port) of the admin API of a running tdsproxy")
	fl.StringVar(&f.token, "token", os.Getenv(configs.EnvVar("admin.token")), "bearer `token` of the admin API (default: $TDSPROXY_ADMIN_TOKEN)")
	fl.DurationVar(&f.interval, "interval", time.Second, "time between refreshes")
	fl.BoolVar(&f.once, "once", false, "print one frame, without terminal control codes, and exit")
	fl.IntVar(&f.finished, "finished", 10, "how many recently finished connections to show")
	return cmd
}

// adminURL accepts "host:port" as well as a URL.
func adminURL(s string) string {
	if strings.Contains(s, "://") {
		return s
	}
	return "http://" + s
}

// topFrame fetches everything one frame shows and renders it.
func topFrame(ctx context.Context, c *client.Client, f topFlags, now time.Time) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	proxies, err := c.Proxies(ctx)
	if err != nil {
		return "", err
	}
	live, err := c.Connections(ctx)
	if err != nil {
		return "", err
	}
	// Faults come from more finished records than are listed.
	recent, err := c.Records(ctx, control.RecordQuery{Last: max(f.finished, 100)})
	if err != nil {
		return "", err
	}
	return renderTop(adminURL(f.admin), now, proxies, live, recent.Records, f.finished), nil
}

// renderTop draws one frame.
func renderTop(admin string, now time.Time, proxies []control.ProxyInfo, live, finished []proxy.Record, nFinished int) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "tdsproxy top — %s — %s — %d proxies, %d open connections\n\n",
		admin, now.Format(time.TimeOnly), len(proxies), len(live))
	topProxies(&b, proxies)
	topOpen(&b, now, live)
	topFinished(&b, finished, nFinished)
	topInjections(&b, now, live, finished)
	topRetries(&b, finished)
	return b.String()
}

// topProxies is top's table of proxies and their rules.
func topProxies(b *bytes.Buffer, proxies []control.ProxyInfo) {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROXY\tLISTEN\tUPSTREAM\tOPEN\tFAULT RULES")
	for _, p := range proxies {
		var rules []string
		for _, r := range p.Faults {
			what := r.Scenario
			if what == "" {
				what = r.Action
			}
			rules = append(rules, r.Name+" ("+what+")")
		}
		row(tw, p.Name, p.Addr, p.Upstream, p.Connections, orDash(strings.Join(rules, ", ")))
	}
	tw.Flush()
}

// topOpen is top's table of open connections.
func topOpen(b *bytes.Buffer, now time.Time, live []proxy.Record) {
	fmt.Fprintf(b, "\nOPEN CONNECTIONS\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPROXY\tCLIENT\tPHASE\tTLS\tCIPHER SUITE\tC→S\tS→C\tAGE")
	for _, r := range live {
		ver, suite := tlsOf(&r)
		row(tw, r.ID, r.Proxy, r.Client, r.Phase, ver, suite,
			size(r.BytesClientToServer), size(r.BytesServerToClient), age(now.Sub(r.Start)))
	}
	tw.Flush()
}

// topFinished is top's table of the newest nFinished finished connections,
// newest first.
func topFinished(b *bytes.Buffer, finished []proxy.Record, nFinished int) {
	fmt.Fprintf(b, "\nRECENTLY FINISHED\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPROXY\tCLIENT\tREACHED\tCLOSED BY\tHOW\tIN PHASE\tTLS\tDURATION\tFAULT\tDIAGNOSIS")
	shown := finished
	if len(shown) > nFinished {
		shown = shown[len(shown)-nFinished:]
	}
	for i := len(shown) - 1; i >= 0; i-- { // newest first
		r := shown[i]
		by, kind, phase := "-", "-", "-"
		if r.Close != nil {
			by, kind, phase = string(r.Close.By), string(r.Close.Kind), string(r.Close.Phase)
		}
		ver, _ := tlsOf(&r)
		// The rule that acted last; rules that let it pass are not faults.
		fault := "-"
		for _, ev := range r.Faults {
			if ev.Acted() {
				fault = ev.Rule
			}
		}
		row(tw, r.ID, r.Proxy, r.Client, r.Phase, by, kind, phase, ver, age(r.End.Sub(r.Start)), fault, diagnosisOf(&r))
	}
	tw.Flush()
}

// topInjections is top's table of the latest injected faults, open
// connections' and recent ones', newest first.
func topInjections(b *bytes.Buffer, now time.Time, live, finished []proxy.Record) {
	// Injected faults: open connections' and recent ones', newest first.
	type injection struct {
		id   uint64
		at   time.Time
		prx  string
		ev   proxy.FaultEvent
		live bool
	}
	var inj []injection
	collect := func(rs []proxy.Record, isLive bool) {
		for _, r := range rs {
			for _, ev := range r.Faults {
				if ev.Acted() { // pass and skip decisions are not injections
					inj = append(inj, injection{r.ID, r.Start.Add(ev.At), r.Proxy, ev, isLive})
				}
			}
		}
	}
	collect(finished, false)
	collect(live, true)
	slices.SortStableFunc(inj, func(a, b injection) int { return b.at.Compare(a.at) })
	if len(inj) > 10 {
		inj = inj[:10]
	}
	fmt.Fprintf(b, "\nINJECTED FAULTS (latest)\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WHEN\tCONN\tPROXY\tRULE\tSCENARIO\tPHASE\tACTION\tDETAIL")
	for _, x := range inj {
		conn := fmt.Sprint(x.id)
		if x.live {
			conn += " (open)"
		}
		row(tw, age(now.Sub(x.at))+" ago", conn, x.prx, x.ev.Rule,
			orDash(x.ev.Scenario), x.ev.Phase, x.ev.Action, orDash(oneLine(x.ev.Detail, 60)))
	}
	tw.Flush()
}

// row writes one table row. Every value is printed with control
// characters escaped (\x1b, \n): names, addresses and details come from
// the admin API, i.e. from whoever set a rule or sent a ClientHello, and
// must never move the cursor or recolour the terminal.
func row(tw io.Writer, cols ...any) {
	for i, c := range cols {
		sep := "\t"
		if i == len(cols)-1 {
			sep = "\n"
		}
		fmt.Fprint(tw, printable(fmt.Sprint(c)), sep)
	}
}

// printable escapes control characters (C0, DEL, C1: ESC, CR, LF, tab,
// ...) and Unicode format characters (bidi overrides) as \xNN or \uNNNN.
func printable(s string) string {
	if !strings.ContainsFunc(s, unsafeRune) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !unsafeRune(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError
}

func tlsOf(r *proxy.Record) (version, suite string) {
	version, suite = "-", "-"
	if r.TLS != nil {
		if r.TLS.Version != "" {
			version = r.TLS.Version
		}
		if r.TLS.CipherSuite != "" {
			suite = r.TLS.CipherSuite
		}
	}
	return version, suite
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a detail on one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// size prints a byte count in B, KiB, MiB, GiB.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	v, suffix := float64(n), "KMGT"
	i := -1
	for v >= unit && i < len(suffix)-1 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f%ciB", v, suffix[i])
}

// age prints a duration for people: 850ms, 12s, 3m05s, 2h01m.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// diagnosisOf lists a record's findings (package diagnose), an injected
// one marked with *; "-" for none.
func diagnosisOf(r *proxy.Record) string {
	var out []string
	for _, f := range r.Diagnosis {
		n := f.Finding
		if f.Number != 0 {
			n += fmt.Sprintf(" %d", f.Number)
		}
		if f.Step != "" {
			n += " (" + f.Step + ")"
		}
		if f.Injected {
			n += "*"
		}
		out = append(out, n)
	}
	return orDash(strings.Join(out, ", "))
}
