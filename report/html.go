package report

import (
	"cmp"
	"fmt"
	"html/template"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// WriteHTML writes the report as one self-contained page: inline CSS and
// server-side SVG charts, no script, and a Content-Security-Policy that
// forbids every request (default-src 'none'), so it works offline and a
// browser makes no request while showing it.
func (r *Report) WriteHTML(w io.Writer, generated time.Time) error {
	data := map[string]any{
		"Generated": generated.UTC().Format(time.RFC3339),
		"Input":     r.input,
		"R":         r,
		"Offered":   template.HTML(r.offeredChart()),
		"Failures":  template.HTML(r.failureChart()),
		"Steps":     template.HTML(r.stepChart()),
		"Readiness": template.HTML(r.readinessChart()),
	}
	return page.Execute(w, data)
}

// maxCell is how many clients a readiness cell lists.
const maxCell = 8

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"join":  func(s []string) string { return list(s) },
	"stamp": stamp,
	"ms":    func(d time.Duration) string { return ms(d).String() },
	"ev":    func(m map[string]string, k string) string { return m[k] },
	"first": func(s []string) []string { return s[:min(len(s), maxCell)] },
	"more": func(s []string) string {
		if len(s) <= maxCell {
			return ""
		}
		return fmt.Sprintf("... and %d more (all in --json)", len(s)-maxCell)
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tdsproxy report</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0;width:100%}th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top;font-size:13px}
th{background:#f3f3f3}td.n{text-align:right}.b{color:#b00020;font-weight:600}.c{color:#a86400}.ok{color:#2e7d32}
.small{color:#666;font-size:12px}code{font-size:12px;word-break:break-all}svg{max-width:100%;height:auto}
</style></head><body>
<h1>tdsproxy report</h1>
<p class="small">Generated {{.Generated}} from {{.Input.Records}} connection records{{if .Input.Lines}} ({{.Input.Lines}} log lines; {{.Input.Malformed}} malformed lines skipped){{end}}.</p>

<h2>Readiness: who breaks if the server changes</h2>
{{.Readiness}}

<h2>TLS versions offered over time</h2>
{{.Offered}}

<h2>Failures by finding</h2>
{{.Failures}}

<h2>Login time per step</h2>
{{.Steps}}

<h2>Readiness in detail</h2>
<table><tr><th>change</th><th>breaks</th><th>changes</th><th>unaffected</th></tr>
{{range .R.Readiness}}{{$ev := .Evidence}}<tr><td>{{.Change}}</td>
<td>{{range first .Breaks}}<div class="b"><code>{{.}}</code>: {{ev $ev .}}</div>{{else}}<span class="ok">none</span>{{end}}{{more .Breaks}}</td>
<td>{{range first .Changes}}<div class="c"><code>{{.}}</code>: {{ev $ev .}}</div>{{else}}none{{end}}{{more .Changes}}</td>
<td class="n">{{.Unaffected}}</td></tr>
{{end}}</table>

<h2>Failures in detail</h2>
<table><tr><th>finding</th><th>count</th><th>injected</th><th>first seen</th><th>last seen</th><th>fix</th><th>examples</th></tr>
{{range .R.Failures}}<tr><td>{{.Finding}}{{if .Number}} {{.Number}}{{end}}</td><td class="n">{{.Count}}</td><td class="n">{{.Injected}}</td><td>{{stamp .FirstSeen}}</td><td>{{stamp .LastSeen}}</td><td>{{.Fix}}</td>
<td>{{range .Examples}}<div class="small">{{.Proxy}} conn {{.Conn}} <code>{{.Client}}</code>: {{.Evidence}}</div>{{end}}</td></tr>
{{end}}</table>

<h2>Login steps in detail</h2>
<table><tr><th>step</th><th>awaited</th><th>logins</th><th>p50</th><th>p95</th><th>max</th><th>slowest in</th><th>inferred</th></tr>
{{range .R.SlowLogins}}<tr><td>{{.Step}}</td><td>{{.Awaited}}</td><td class="n">{{.Logins}}</td><td class="n">{{ms .P50}}</td><td class="n">{{ms .P95}}</td><td class="n">{{ms .Max}}</td><td class="n">{{.Slow}}</td><td class="n">{{.Inferred}}</td></tr>
{{end}}</table>

<h2>Clients</h2>
<table><tr><th>client</th><th>conns</th><th>failed</th><th>protocol</th><th>encryption</th><th>TLS offered</th><th>negotiated</th><th>suites negotiated</th><th>findings</th></tr>
{{range .R.Clients}}<tr><td><code>{{.ID}}</code></td><td class="n">{{.Connections}}</td><td class="n">{{.Failures}}</td><td>{{join .Protocols}}</td><td>{{join .Encryption}}</td><td>{{join .TLSOffered}}</td><td>{{join .TLSNegotiated}}</td><td>{{join .SuitesNegotiated}}</td><td>{{range $k, $v := .Findings}}{{$k}}: {{$v}}<br>{{end}}</td></tr>
{{end}}</table>
</body></html>
`))

// palette colours series in charts; versions keep their colour across
// charts.
var palette = map[string]string{
	"SSL 3.0": "#6a1b9a", "TLS 1.0": "#c62828", "TLS 1.1": "#ef6c00", "TLS 1.2": "#1565c0", "TLS 1.3": "#2e7d32",
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// offeredChart is a stacked bar chart of connections by the highest TLS
// version offered, per time bucket (hours, or days past 72 hours, at most
// 60 bars).
func (r *Report) offeredChart() string {
	if len(r.offered) == 0 {
		return `<p class="small">No ClientHello seen.</p>`
	}
	hours := slices.Sorted(maps.Keys(r.offered))
	first, last := hours[0], hours[len(hours)-1]
	step := int64(1)
	if last-first >= 72 {
		step = 24
	}
	for (last-first)/step+1 > 60 {
		step *= 2
	}
	n := int((last-first)/step + 1)
	bars := make([]map[string]int, n)
	seen := map[string]bool{}
	for h, m := range r.offered {
		i := int((h - first) / step)
		if bars[i] == nil {
			bars[i] = map[string]int{}
		}
		for v, c := range m {
			bars[i][v] += c
			seen[v] = true
		}
	}
	series := sortVersions(slices.Collect(maps.Keys(seen)))
	maxTotal := 1
	for _, b := range bars {
		t := 0
		for _, c := range b {
			t += c
		}
		maxTotal = max(maxTotal, t)
	}
	const W, H, left, bottom, top = 900, 260, 60, 40, 20
	bw := float64(W-left-10) / float64(n)
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="TLS versions offered over time">`, W, H+30, W, H+30)
	fmt.Fprintf(&sb, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`, left, H-bottom, W-10, H-bottom)
	fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="11" text-anchor="end">%d</text><text x="%d" y="%d" font-size="11" text-anchor="end">0</text>`, left-4, top+4, maxTotal, left-4, H-bottom)
	for i, b := range bars {
		y := float64(H - bottom)
		for _, v := range series {
			c := b[v]
			if c == 0 {
				continue
			}
			h := float64(c) / float64(maxTotal) * float64(H-bottom-top)
			y -= h
			fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %d</title></rect>`,
				float64(left)+float64(i)*bw+1, y, max(bw-2, 1), h, colour(v), esc(v), c)
		}
	}
	label := func(i int) string {
		t := time.Unix((first+int64(i)*step)*3600, 0).UTC()
		if step >= 24 {
			return t.Format("01-02")
		}
		return t.Format("01-02 15h")
	}
	for _, i := range []int{0, n / 2, n - 1} {
		fmt.Fprintf(&sb, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`, float64(left)+(float64(i)+0.5)*bw, H-bottom+14, label(i))
	}
	for i, v := range series {
		x := left + i*110
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d" font-size="12">%s</text>`, x, H+4, colour(v), x+16, H+14, esc(v))
	}
	sb.WriteString(`</svg>`)
	return sb.String()
}

func colour(v string) string {
	if c, ok := palette[v]; ok {
		return c
	}
	return "#777"
}

// hbars draws a horizontal bar chart: one row per label, up to two values
// (drawn one above the other) with their own colours and legends.
func hbars(title string, labels []string, values [][]float64, legends, colours []string, format func(float64) string) string {
	if len(labels) == 0 {
		return `<p class="small">Nothing to show.</p>`
	}
	maxV := 0.0
	for _, vs := range values {
		for _, v := range vs {
			maxV = max(maxV, v)
		}
	}
	if maxV == 0 {
		maxV = 1
	}
	const W, left, rowH = 900, 230, 26
	H := len(labels)*rowH + 40
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`, W, H, W, H, esc(title))
	barW := float64(W - left - 90)
	for i, l := range labels {
		y := 10 + i*rowH
		fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="12" text-anchor="end">%s</text>`, left-6, y+14, esc(l))
		k := len(values[i])
		for j, v := range values[i] {
			if v == 0 && k > 1 {
				continue
			}
			h := float64(rowH-6) / float64(k)
			w := v / maxV * barW
			fmt.Fprintf(&sb, `<rect x="%d" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s</title></rect>`, left, float64(y)+float64(j)*h, max(w, 1), h-1, colours[j], esc(legends[j]), esc(format(v)))
			fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" font-size="11">%s</text>`, float64(left)+max(w, 1)+4, float64(y)+float64(j)*h+h-2, esc(format(v)))
		}
	}
	if len(legends) > 1 {
		for j, lg := range legends {
			x := left + j*120
			fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d" font-size="12">%s</text>`, x, H-20, colours[j], x+16, H-10, esc(lg))
		}
	}
	sb.WriteString(`</svg>`)
	return sb.String()
}

func (r *Report) failureChart() string {
	fs := slices.Clone(r.Failures)
	slices.SortStableFunc(fs, func(a, b Failure) int { return cmp.Compare(b.Count, a.Count) })
	var labels []string
	var values [][]float64
	for _, f := range fs {
		l := f.Finding
		if f.Number != 0 {
			l = fmt.Sprintf("%s %d", l, f.Number)
		}
		labels = append(labels, l)
		values = append(values, []float64{float64(f.Count - f.Injected), float64(f.Injected)})
	}
	return hbars("failures by finding", labels, values, []string{"natural", "injected"}, []string{"#c62828", "#9e9e9e"},
		func(v float64) string { return fmt.Sprintf("%.0f", v) })
}

func (r *Report) stepChart() string {
	var labels []string
	var values [][]float64
	for _, s := range r.SlowLogins {
		l := s.Step + " (" + s.Awaited + ")"
		if s.Inferred > 0 {
			l += " *"
		}
		labels = append(labels, l)
		values = append(values, []float64{float64(s.P50) / 1e6, float64(s.P95) / 1e6})
	}
	out := hbars("login time per step", labels, values, []string{"p50", "p95"}, []string{"#1565c0", "#90caf9"},
		func(v float64) string { return fmt.Sprintf("%.1f ms", v) })
	return out + `<p class="small">* end inferred from encrypted TLS records on some logins (passthrough).</p>`
}

// readinessChart is one stacked bar per change: clients that break,
// change and are unaffected.
func (r *Report) readinessChart() string {
	if len(r.Clients) == 0 {
		return `<p class="small">No clients.</p>`
	}
	const W, left, rowH = 900, 300, 26
	H := len(r.Readiness)*rowH + 40
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="readiness">`, W, H, W, H)
	barW := float64(W - left - 20)
	total := float64(len(r.Clients))
	for i, rd := range r.Readiness {
		y := 10 + i*rowH
		fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="12" text-anchor="end">%s</text>`, left-6, y+14, esc(rd.Change))
		x := float64(left)
		for _, part := range []struct {
			n      int
			colour string
			what   string
		}{{len(rd.Breaks), "#c62828", "break"}, {len(rd.Changes), "#f9a825", "change"}, {rd.Unaffected, "#66bb6a", "unaffected"}} {
			if part.n == 0 {
				continue
			}
			w := float64(part.n) / total * barW
			fmt.Fprintf(&sb, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%d %s</title></rect>`, x, y, w, rowH-6, part.colour, part.n, part.what)
			if w > 24 {
				fmt.Fprintf(&sb, `<text x="%.1f" y="%d" font-size="11" fill="#fff" text-anchor="middle">%d</text>`, x+w/2, y+14, part.n)
			}
			x += w
		}
	}
	for j, lg := range [][2]string{{"breaks", "#c62828"}, {"changes", "#f9a825"}, {"unaffected", "#66bb6a"}} {
		x := left + j*120
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d" font-size="12">%s</text>`, x, H-20, lg[1], x+16, H-10, lg[0])
	}
	sb.WriteString(`</svg>`)
	return sb.String()
}
