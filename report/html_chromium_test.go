package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// findChromium returns Debian's chromium (make deps-chromium installs it).
// A missing browser is a named skip, or a failure under
// TDSPROXY_INTEROP=require (make test).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("TDSPROXY_INTEROP") == "require" {
		t.Fatal("chromium not found and TDSPROXY_INTEROP=require: run make deps-chromium")
	}
	t.Skip("SKIP chromium: not installed (make deps-chromium installs Debian chromium)")
	return ""
}

// browse opens page in headless chromium, saves a screenshot at png, and
// returns the console messages it logged and the URLs the page itself
// asked the network for (from chromium's net log: requests whose network
// isolation key is the file:// page, not the browser's own background
// requests).
func browse(t *testing.T, chromium, page, png string) (console, requests []string) {
	t.Helper()
	dir := t.TempDir()
	netlog := filepath.Join(dir, "net.json")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--window-size=1280,2200", "--screenshot="+png,
		"--enable-logging=stderr", "--v=0", "--log-net-log="+netlog,
		"--user-data-dir="+filepath.Join(dir, "profile"), "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
		// Nothing resolves: a request the page makes fails fast, on
		// loopback only, and is still in the net log.
		"--host-resolver-rules=MAP * ~NOTFOUND",
		"file://"+page)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, ":CONSOLE") {
			console = append(console, l)
		}
	}
	b, err := os.ReadFile(netlog)
	if err != nil {
		t.Fatalf("chromium wrote no net log: %v", err)
	}
	var nl struct {
		Events []struct {
			Params map[string]any `json:"params"`
		} `json:"events"`
	}
	if err := json.Unmarshal(b, &nl); err != nil {
		// Chromium may end the file without its closing bracket.
		if err := json.Unmarshal(append(bytes.TrimRight(b, ",\n "), []byte("]}")...), &nl); err != nil {
			t.Fatalf("net log: %v", err)
		}
	}
	seen := map[string]bool{}
	for _, e := range nl.Events {
		u, _ := e.Params["url"].(string)
		nik, _ := e.Params["network_isolation_key"].(string)
		// The page's own file (and a favicon beside it) is not a network
		// request.
		local := strings.HasPrefix(u, "file:") || strings.HasPrefix(u, "data:")
		if u != "" && !local && strings.Contains(nik, "file://") && !seen[u] {
			seen[u] = true
			requests = append(requests, u)
		}
	}
	return console, requests
}

// TestHTMLInChromium renders the report page in headless Chromium: no
// console message (a CSP violation is one), no request from the page, and
// a screenshot kept in testdata/out (ignored by git). A control page with
// an external image and a script proves the checks see both.
func TestHTMLInChromium(t *testing.T) {
	chromium := findChromium(t)
	out := filepath.Join("testdata", "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	r := build(t, len(profiles)*6)
	var page bytes.Buffer
	if err := r.WriteHTML(&page, base); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "report.html")
	if err := os.WriteFile(name, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	png, _ := filepath.Abs(filepath.Join(out, "report.png"))
	console, requests := browse(t, chromium, name, png)
	if len(console) > 0 {
		t.Errorf("console messages:\n%s", strings.Join(console, "\n"))
	}
	if len(requests) > 0 {
		t.Errorf("the page asked the network for %q", requests)
	}
	if st, err := os.Stat(png); err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v (size %v): nothing rendered?", png, err, st)
	}
	t.Logf("screenshot: %s", png)

	control := filepath.Join(dir, "control.html")
	os.WriteFile(control, []byte(`<!DOCTYPE html><html><body><img src="https://example.invalid/x.png"><script>console.error("boom")</script></body></html>`), 0o644)
	console, requests = browse(t, chromium, control, filepath.Join(dir, "control.png"))
	if len(console) == 0 || fmt.Sprint(requests) != "[https://example.invalid/x.png]" {
		t.Fatalf("control page: console %q, requests %q: the checks cannot see a bad page", console, requests)
	}
}

// TestDocsScreenshot writes docs/report.png, the README's picture of the
// HTML page, when TDSPROXY_DOCS_SCREENSHOT=1: a generated fleet over three
// days whose old-TLS clients fade out.
func TestDocsScreenshot(t *testing.T) {
	if os.Getenv("TDSPROXY_DOCS_SCREENSHOT") != "1" {
		t.Skip("SKIP docs screenshot: set TDSPROXY_DOCS_SCREENSHOT=1 to rewrite docs/report.png")
	}
	chromium := findChromium(t)
	b := New(Options{})
	const n = 6000
	for i := range n {
		r := genRecord(i, base)
		shift := time.Duration(i) * 43 * time.Second
		r.Start, r.End = r.Start.Add(shift), r.End.Add(shift)
		// Old clients are upgraded over the three days.
		if r.TLS != nil && r.TLS.Version == "TLS 1.0" && i%n > n/3 && i%3 != 0 {
			r = genRecord(i-i%len(profiles), base)
			r.Start, r.End = r.Start.Add(shift), r.End.Add(shift)
		}
		b.Add(r)
	}
	var page bytes.Buffer
	if err := b.Result().WriteHTML(&page, base.Add(n*43*time.Second)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	name := filepath.Join(dir, "report.html")
	if err := os.WriteFile(name, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	png, _ := filepath.Abs(filepath.Join("..", "docs", "report.png"))
	if console, requests := browse(t, chromium, name, png); len(console)+len(requests) > 0 {
		t.Fatalf("console %q, requests %q", console, requests)
	}
}
