package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText prints the report for a person: clients, readiness, failures,
// slow logins.
func (r *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "CLIENTS (%d)\n", len(r.Clients))
	fmt.Fprintln(tw, "  CLIENT\tCONNS\tFAILED\tPROTOCOL\tENCRYPT\tTLS OFFERED\tNEGOTIATED\tSUITES")
	for _, c := range r.Clients {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Connections, c.Failures, list(c.Protocols), list(c.Encryption),
			list(c.TLSOffered), list(c.TLSNegotiated), list(c.SuitesNegotiated))
	}
	tw.Flush()

	fmt.Fprintf(ew, "\nREADINESS (%d clients)\n", len(r.Clients))
	for _, rd := range r.Readiness {
		fmt.Fprintf(ew, "  %s: %d break, %d change, %d unaffected\n", rd.Change, len(rd.Breaks), len(rd.Changes), rd.Unaffected)
		for _, id := range rd.Breaks {
			fmt.Fprintf(ew, "    breaks   %s: %s\n", id, rd.Evidence[id])
		}
		for _, id := range rd.Changes {
			fmt.Fprintf(ew, "    changes  %s: %s\n", id, rd.Evidence[id])
		}
	}

	fmt.Fprintf(ew, "\nFAILURES (%d findings)\n", len(r.Failures))
	for _, f := range r.Failures {
		name := f.Finding
		if f.Number != 0 {
			name = fmt.Sprintf("%s %d", name, f.Number)
		}
		fmt.Fprintf(ew, "  %s: %d (%d injected), first %s, last %s\n", name, f.Count, f.Injected, stamp(f.FirstSeen), stamp(f.LastSeen))
		fmt.Fprintf(ew, "    fix: %s\n", f.Fix)
		for _, e := range f.Examples {
			fmt.Fprintf(ew, "    e.g. %s conn %d (%s): %s\n", e.Proxy, e.Conn, e.Client, e.Evidence)
		}
	}

	fmt.Fprintf(ew, "\nLOGIN STEPS (completed logins)\n")
	tw = tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  STEP\tAWAITED\tLOGINS\tP50\tP95\tMAX\tSLOWEST IN\tINFERRED")
	for _, s := range r.SlowLogins {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%v\t%v\t%v\t%d\t%d\n", s.Step, s.Awaited, s.Logins, ms(s.P50), ms(s.P95), ms(s.Max), s.Slow, s.Inferred)
	}
	tw.Flush()
	for _, s := range r.SlowLogins {
		for _, e := range s.Examples {
			fmt.Fprintf(ew, "  slow at %s: %s conn %d (%s): %s\n", s.Step, e.Proxy, e.Conn, e.Client, e.Evidence)
		}
	}
	return ew.err
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func ms(d time.Duration) time.Duration {
	if d >= time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

// errWriter keeps the first write error so printing can go on unchecked.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return len(p), nil
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
