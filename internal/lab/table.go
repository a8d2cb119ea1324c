package lab

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Table writes the report as an aligned plain-text table, one line per
// scenario, followed by what each row did: the two clients, the servers
// and rules they met, the note and the fix.
func (r *Report) Table(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSCENARIO\tCLIENT\tFAULT AT\tCLOSE\tBEFORE THE FIX: THE CLIENT'S ERROR\tAFTER THE FIX\tRESULT")
	for i, row := range r.Rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, row.Scenario, row.Client,
			dash(string(row.FaultAt)), dash(row.Close), dash(beforeCell(row)), afterCell(row), row.Status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var ok, skipped, bad int
	for _, row := range r.Rows {
		switch row.Status {
		case StatusOK:
			ok++
		case StatusSkipped:
			skipped++
		default:
			bad++
		}
	}
	fmt.Fprintf(w, "\n%d scenarios: %d as documented, %d skipped, %d unexpected (%v)\n",
		len(r.Rows), ok, skipped, bad, r.Elapsed.Round(10*time.Millisecond))
	for i, row := range r.Rows {
		fmt.Fprintf(w, "\n%d. %s: %s\n", i+1, row.Scenario, row.Summary)
		detail(w, "before", attemptLine(row.Before))
		detail(w, "after", attemptLine(row.After))
		if row.Also != nil && row.Client != goClientName {
			detail(w, "also", attemptLine(*row.Also))
		}
		detail(w, "note", row.Note)
		detail(w, "fix", row.Fix)
		if row.Problem != "" {
			detail(w, "PROBLEM", row.Problem)
		}
	}
	return nil
}

// JSON writes the report, records included, as indented JSON.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func beforeCell(row Row) string {
	switch {
	case row.Before.Skipped != "":
		return "skipped: " + shortError(row.Before.Skipped)
	case row.Before.Connected:
		return "(connected: " + row.Before.Result + ")"
	}
	return row.ClientError
}

func afterCell(row Row) string {
	a := row.After
	switch {
	case a.Connected && strings.HasPrefix(a.Result, "SELECT 1"):
		return "connected, " + a.Result
	case a.Connected:
		return "connected, handshake done"
	case a.Skipped != "":
		return "skipped"
	}
	return "FAILED to connect"
}

func attemptLine(a Attempt) string {
	if a.Skipped != "" {
		return "not run: " + a.Skipped
	}
	var b strings.Builder
	b.WriteString(a.Client)
	if a.Server != "" {
		b.WriteString(" -> proxy -> " + a.Server)
	}
	switch {
	case a.Connected:
		fmt.Fprintf(&b, ": connected in %v, %s", a.Elapsed.Round(time.Millisecond), a.Result)
	default:
		fmt.Fprintf(&b, ": failed after %v: %s", a.Elapsed.Round(time.Millisecond), shortError(a.Error))
	}
	if rec := a.Record; rec != nil {
		for _, ev := range rec.Faults {
			fmt.Fprintf(&b, " [rule %s at %s: %s, %s]", ev.Rule, ev.Phase, ev.Action, ev.Detail)
		}
		if rec.Close != nil {
			fmt.Fprintf(&b, " [record: %s by %s in %s]", rec.Close.Kind, rec.Close.By, rec.Close.Phase)
		}
	}
	return b.String()
}

// detail writes "   label: text", wrapped at 100 columns.
func detail(w io.Writer, label, text string) {
	if text == "" {
		return
	}
	const width = 100
	prefix := fmt.Sprintf("   %-9s ", label+":")
	indent := strings.Repeat(" ", len(prefix))
	line, fresh := prefix, true
	for _, word := range strings.Fields(text) {
		if !fresh && len(line)+1+len(word) > width {
			fmt.Fprintln(w, line)
			line, fresh = indent, true
		}
		if !fresh {
			line += " "
		}
		line += word
		fresh = false
	}
	fmt.Fprintln(w, line)
}
