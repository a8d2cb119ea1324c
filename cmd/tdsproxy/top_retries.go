package main

import (
	"bytes"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// topRetries is top's table of retry chains (docs/tds-faults.md, "Retry
// analysis"): the latest attempts that came back after a failure, each
// with its attempt number, the delay after the previous attempt and how
// that one ended. It is left out when no finished connection retried.
func topRetries(b *bytes.Buffer, finished []proxy.Record) {
	var rs []proxy.Record
	for _, r := range finished {
		if r.Retry != nil && r.Retry.Attempt >= 2 {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return
	}
	slices.SortStableFunc(rs, func(a, b proxy.Record) int { return b.Start.Compare(a.Start) })
	if len(rs) > 10 {
		rs = rs[:10]
	}
	fmt.Fprintf(b, "\nRETRIES (latest)\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CONN\tPROXY\tCLIENT\tATTEMPT\tAFTER\tPREVIOUS ENDED\tRULE\tTHIS ONE")
	for _, r := range rs {
		ri := r.Retry
		row(tw, r.ID, r.Proxy, oneLine(ri.Identity, 40), ri.Attempt, ri.AfterPrevious.Round(time.Millisecond),
			ri.PreviousEnded, orDash(ri.PreviousRule), ri.Ended)
	}
	tw.Flush()
}
