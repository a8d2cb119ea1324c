package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/testkit"

	"github.com/spf13/cobra"

	"github.com/tdsproxy/tdsproxy/control"
)

// The README's commands and examples, run: the emulator command, every
// `tdsproxy run` one-liner, the YAML snippets through `config check`, the
// admin-API walkthrough in order against a live `run`, `tdsproxy top
// --once`, and the embedding example (a test in package control, compared
// here as text). Addresses are rewritten to free loopback ports; nothing
// leaves loopback. A README change that breaks one fails here.

// readmeBlock is one fenced block of README.md.
type readmeBlock struct {
	lang   string // after the opening fence: sh, yaml, go, json, ...
	marker string // the name of a preceding <!-- readme-test: NAME --> line
	text   string // the lines between the fences, each ending in "\n"
	line   int    // the line of the opening fence, 1-based
}

var readmeMarker = regexp.MustCompile(`^<!-- readme-test: ([a-z0-9-]+)\b.*-->$`)

// readmeBlocks parses README.md's fenced blocks, top level or indented in a
// list (the indentation of the fence is removed from each line).
func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		blocks []readmeBlock
		cur    *readmeBlock
		indent string
		marker string
	)
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimLeft(line, " ")
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &readmeBlock{lang: strings.TrimPrefix(trimmed, "```"), marker: marker, line: i + 1}
			indent = line[:len(line)-len(trimmed)]
			marker = ""
		case cur != nil && trimmed == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += strings.TrimPrefix(line, indent) + "\n"
		default:
			if m := readmeMarker.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				marker = m[1]
			} else if strings.TrimSpace(line) != "" {
				marker = ""
			}
		}
	}
	if cur != nil {
		t.Fatalf("README.md:%d: a fence that never closes", cur.line)
	}
	return blocks
}

// markedBlock returns the block marked with <!-- readme-test: name -->.
func markedBlock(t *testing.T, blocks []readmeBlock, name string) readmeBlock {
	t.Helper()
	for _, b := range blocks {
		if b.marker == name {
			return b
		}
	}
	t.Fatalf("README.md has no block marked <!-- readme-test: %s -->", name)
	return readmeBlock{}
}

// shellCommands joins a shell block's lines into commands: comments and
// blank lines dropped, backslash continuations and quoted newlines joined.
// Each command keeps the comment lines that follow it (an expected answer).
type shellCommand struct {
	text  string
	after []string // comment lines right after the command, without "# "
	line  int      // within the block, 1-based
}

func shellCommands(block string) []shellCommand {
	var (
		cmds    []shellCommand
		pending string
		start   int
	)
	for i, line := range strings.Split(block, "\n") {
		if pending == "" {
			trimmed := strings.TrimSpace(line)
			if strings.HasPrefix(trimmed, "#") {
				if n := len(cmds); n > 0 && i == cmds[n-1].line+len(cmds[n-1].after) {
					cmds[n-1].after = append(cmds[n-1].after, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
				}
				continue
			}
			if trimmed == "" {
				continue
			}
			start = i + 1
		}
		// Drop a trailing comment outside quotes.
		if c := commentStart(line); c >= 0 && strings.Count(pending, "'")%2 == 0 {
			line = strings.TrimRight(line[:c], " ")
		}
		switch {
		case strings.HasSuffix(line, "\\"):
			pending += strings.TrimSuffix(line, "\\") + " "
		case strings.Count(pending+line, "'")%2 == 1:
			pending += line + "\n"
		default:
			cmds = append(cmds, shellCommand{text: strings.TrimSpace(pending + line), line: start})
			pending = ""
		}
	}
	return cmds
}

// commentStart is the index of a " #" comment outside quotes, or -1.
func commentStart(line string) int {
	var quote rune
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (i == 0 || line[i-1] == ' '):
			return i
		}
	}
	return -1
}

// shellWords splits a command as sh would for these examples: single and
// double quotes, $NAME expanded from vars.
func shellWords(t *testing.T, cmd string, vars map[string]string) []string {
	t.Helper()
	var (
		words []string
		cur   strings.Builder
		in    bool
		quote rune
	)
	expand := func(s string) string {
		return regexp.MustCompile(`\$([A-Za-z_][A-Za-z0-9_]*)`).ReplaceAllStringFunc(s, func(m string) string {
			v, ok := vars[m[1:]]
			if !ok {
				t.Fatalf("%q: $%s is not set", cmd, m[1:])
			}
			return v
		})
	}
	rs := []rune(cmd)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			if r == '"' {
				quote = 0
			} else {
				j := i
				for j < len(rs) && rs[j] != '"' {
					j++
				}
				cur.WriteString(expand(string(rs[i:j])))
				i = j - 1
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			j := i
			for j < len(rs) && !strings.ContainsRune(" \t\n'\"", rs[j]) {
				j++
			}
			cur.WriteString(expand(string(rs[i:j])))
			i, in = j-1, true
		}
	}
	if quote != 0 {
		t.Fatalf("%q: unbalanced quote", cmd)
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// readmeExec runs tdsproxy in-process, its output in out.
func readmeExec(ctx context.Context, out io.Writer, args ...string) error {
	root := newRootCmd()
	root.SetOut(out)
	root.SetErr(out)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// startReadmeEmulator runs the README's `tdsproxy emulate` command (on a
// free port) until the test ends and returns its address.
func startReadmeEmulator(t *testing.T, blocks []readmeBlock) string {
	t.Helper()
	var args []string
	for _, b := range blocks {
		for _, c := range shellCommands(b.text) {
			if strings.HasPrefix(c.text, "go run ./cmd/tdsproxy emulate ") {
				args = shellWords(t, strings.TrimPrefix(c.text, "go run ./cmd/tdsproxy "), nil)
			}
		}
	}
	if args == nil {
		t.Fatal("README.md has no `go run ./cmd/tdsproxy emulate` command")
	}
	args = replaceFlag(args, "--listen", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	out := &testkit.LockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- readmeExec(ctx, out, args...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("emulate did not stop")
		}
	})
	re := regexp.MustCompile(`emulator listening on (\S+)`)
	var addr string
	defer func() {
		if t.Failed() {
			t.Logf("output:\n%s", out)
		}
	}()
	testkit.WaitForBeforeExit(t, func() bool {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	}, done, 10*time.Second, "tdsproxy "+strings.Join(args, " ")+" to listen")
	return addr
}

// replaceFlag sets flag's value in args (both "--f v" and "--f=v").
func replaceFlag(args []string, flag, value string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == flag && i+1 < len(args):
			out = append(out, flag, value)
			i++
		case strings.HasPrefix(args[i], flag+"="):
			out = append(out, flag+"="+value)
		default:
			out = append(out, args[i])
		}
	}
	return out
}

// startRun runs `tdsproxy run args...` in-process until the test ends (or
// stop is called) and returns the log file it writes.
func startRun(t *testing.T, args ...string) (logFile string, runErr <-chan error, stop func() error) {
	t.Helper()
	logFile = filepath.Join(t.TempDir(), "tdsproxy.log")
	args = append(append([]string{}, args...), "--log-file", logFile, "--log-format", "json", "--drain-timeout", "1s")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- readmeExec(ctx, io.Discard, args...) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(15 * time.Second):
			return fmt.Errorf("tdsproxy %s did not stop within 15s", strings.Join(args, " "))
		}
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return logFile, errc, stop
}

// Every `tdsproxy run` command of the README parses and starts (on a free
// loopback port, in front of the README's emulator) and stops cleanly. A
// non-loopback admin address is not bound: it must be refused without a
// token and accepted with one.
func TestReadmeRunCommands(t *testing.T) {
	clearEnv(t)
	blocks := readmeBlocks(t)
	upstream := startReadmeEmulator(t, blocks)
	n := 0
	for _, b := range blocks {
		if b.lang != "sh" {
			continue
		}
		for _, c := range shellCommands(b.text) {
			fields := strings.Fields(c.text)
			if len(fields) < 2 || filepath.Base(fields[0]) != "tdsproxy" || fields[1] != "run" {
				continue
			}
			n++
			args := shellWords(t, strings.Join(fields[1:], " "), map[string]string{"TDSPROXY_ADMIN_TOKEN": "readme-token"})
			t.Run(fmt.Sprintf("line %d", b.line+c.line), func(t *testing.T) {
				t.Logf("README.md:%d: %s", b.line+c.line, c.text)
				args = replaceFlag(replaceFlag(args, "--listen", "127.0.0.1:0"), "--upstream", upstream)
				// Files a command writes go to the test's own directory.
				dir := t.TempDir()
				args = replaceFlag(args, "--bridge-ca-out", filepath.Join(dir, "bridge-ca.pem"))
				args = replaceFlag(args, "--keylog", filepath.Join(dir, "keys.log"))
				if i := indexOf(args, "--admin"); i >= 0 && !strings.HasPrefix(args[i+1], "127.0.0.1") {
					checkAdminNeedsToken(t, args)
					return
				}
				args = append(args, "--admin", "127.0.0.1:0")
				logFile, runErr, stop := startRun(t, args...)
				waitForLog(t, logFile, "proxy listening", "default", runErr)
				admin, _ := waitForLog(t, logFile, "admin API listening", "", runErr)["listen"].(string)
				// The scenario flags became one rule of that scenario.
				if i := indexOf(args, "--scenario"); i >= 0 {
					_, body := readmeRequest(t, &http.Client{Timeout: 10 * time.Second}, "GET", "http://"+admin+"/proxies/default/faults", "")
					var rules []struct {
						Scenario string `json:"scenario"`
					}
					if err := json.Unmarshal([]byte(body), &rules); err != nil || len(rules) != 1 || rules[0].Scenario != args[i+1] {
						t.Errorf("rules after %v: %s, want one %s rule", args, body, args[i+1])
					}
				}
				if err := stop(); err != nil {
					t.Fatalf("stop: %v", err)
				}
			})
		}
	}
	if n < 7 {
		t.Errorf("found %d `tdsproxy run` commands in README.md, want at least 7 (one per scenario, and the first)", n)
	}
}

func indexOf(args []string, s string) int {
	for i, a := range args {
		if a == s && i+1 < len(args) {
			return i
		}
	}
	return -1
}

// checkAdminNeedsToken loads a run command's configuration (nothing is
// bound): refused without a token, accepted with one.
func checkAdminNeedsToken(t *testing.T, args []string) {
	t.Helper()
	load := func() error {
		cmd := &cobra.Command{}
		var f runFlags
		bindRunFlags(cmd, &f)
		if err := cmd.ParseFlags(args[1:]); err != nil {
			t.Fatal(err)
		}
		_, err := loadRunConfig(cmd, &f)
		return err
	}
	wantUsageError(t, load(), "--admin: a non-loopback admin address needs a token")
	t.Setenv("TDSPROXY_ADMIN_TOKEN", "readme-token")
	if err := load(); err != nil {
		t.Errorf("with TDSPROXY_ADMIN_TOKEN set: %v", err)
	}
}

// Each YAML block of the README passes `tdsproxy config check`: a whole
// file as it is, a `faults:` list as the rules of one proxy.
func TestReadmeConfigBlocks(t *testing.T) {
	clearEnv(t)
	n := 0
	for _, b := range readmeBlocks(t) {
		if b.lang != "yaml" {
			continue
		}
		n++
		text := b.text
		if strings.HasPrefix(text, "faults:") {
			text = "proxies:\n  - name: readme\n    listen: 127.0.0.1:0\n    upstream: 127.0.0.1:14330\n" +
				regexp.MustCompile(`(?m)^`).ReplaceAllString(strings.TrimRight(text, "\n"), "    ") + "\n"
		}
		path := writeFile(t, "readme.yaml", text)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := execute(t, ctx, "config", "check", path)
		cancel()
		if err != nil {
			t.Errorf("README.md:%d: config check: %v\n%s\n%s", b.line, err, out, text)
		}
	}
	if n == 0 {
		t.Error("README.md has no yaml block")
	}
}

// The admin-API walkthrough, every curl in order, against a live `tdsproxy
// run`: each answers 2xx, or exactly the error written under it. Then the
// error shape the README shows, and `tdsproxy top --once`.
func TestReadmeAdminWalkthrough(t *testing.T) {
	clearEnv(t)
	blocks := readmeBlocks(t)
	upstream := startReadmeEmulator(t, blocks)
	logFile, runErr, _ := startRun(t, "run", "--listen", "127.0.0.1:0", "--upstream", upstream, "--admin", "127.0.0.1:0")
	listen, _ := waitForLog(t, logFile, "proxy listening", "default", runErr)["listen"].(string)
	admin, _ := waitForLog(t, logFile, "admin API listening", "", runErr)["listen"].(string)
	base := "http://" + admin
	httpc := &http.Client{Timeout: 10 * time.Second}

	// Connection 1, for "cut one": a client that has connected and sent
	// nothing yet.
	c, err := net.DialTimeout("tcp", listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testkit.WaitFor(t, func() bool {
		_, body := readmeRequest(t, httpc, "GET", base+"/connections", "")
		var open []struct {
			ID uint64 `json:"id"`
		}
		return json.Unmarshal([]byte(body), &open) == nil && len(open) == 1 && open[0].ID == 1
	}, 10*time.Second, "connection 1 to be listed at /connections")

	block := markedBlock(t, blocks, "admin-walkthrough")
	vars := map[string]string{}
	ran := 0
	for _, cmd := range shellCommands(block.text) {
		where := fmt.Sprintf("README.md:%d: %s", block.line+cmd.line, cmd.text)
		if m := regexp.MustCompile(`^([A-Z]+)=(\S+)$`).FindStringSubmatch(cmd.text); m != nil {
			vars[m[1]] = strings.Replace(m[2], "http://127.0.0.1:8475", base, 1)
			continue
		}
		words := shellWords(t, cmd.text, vars)
		if words[0] != "curl" {
			t.Fatalf("%s: only curl commands are run", where)
		}
		method, url, data := curlRequest(t, where, words[1:])
		// A listener added by the walkthrough takes a free port.
		data = strings.Replace(data, "127.0.0.1:11434", "127.0.0.1:0", 1)
		status, body := readmeRequest(t, httpc, method, url, data)
		ran++
		if len(cmd.after) > 0 && strings.HasPrefix(cmd.after[0], "{") {
			if status < 400 || !sameJSON(t, body, cmd.after[0]) {
				t.Errorf("%s\n answered %d %s\n README says %s", where, status, body, cmd.after[0])
			}
			continue
		}
		if status < 200 || status > 299 {
			t.Errorf("%s\n answered %d %s", where, status, body)
		}
	}
	if ran < 10 {
		t.Errorf("ran %d curl commands of the walkthrough, want at least 10", ran)
	}
	// Connection 1 was cut with an RST.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	// "connection reset by peer"; Windows: "forcibly closed by the remote host".
	if _, err := c.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "forcibly closed") {
		t.Errorf("connection 1 after close?style=rst: read error %v, want a reset", err)
	}

	// The error shape shown under "Conventions".
	for _, b := range blocks {
		if b.lang != "json" || !strings.Contains(b.text, `"error"`) {
			continue
		}
		status, body := readmeRequest(t, httpc, "POST", base+"/proxies/default/faults",
			`{"name": "bad", "scenario": "protocol-mismatch", "options": {"server_tls": "9"}}`)
		if status != http.StatusBadRequest || !sameJSON(t, body, b.text) {
			t.Errorf("README.md:%d: the error example; a server_tls of \"9\" answers %d %s", b.line, status, body)
		}
	}

	// tdsproxy top --once, against this admin API.
	for _, b := range blocks {
		for _, cmd := range shellCommands(b.text) {
			if !strings.HasPrefix(cmd.text, "tdsproxy top --once") {
				continue
			}
			args := append(shellWords(t, cmd.text, nil)[1:], "--admin", base)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, err := execute(t, ctx, args...)
			cancel()
			if err != nil || !strings.Contains(out, "PROXY") {
				t.Errorf("README.md:%d: %s: %v\n%s", b.line+cmd.line, cmd.text, err, out)
			}
		}
	}
}

// curlRequest reads the curl flags the README uses: -s, -X METHOD, -d DATA,
// -H HEADER, and one URL.
func curlRequest(t *testing.T, where string, args []string) (method, url, data string) {
	t.Helper()
	method = "GET"
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-s":
		case (a == "-X" || a == "-d" || a == "-H") && i+1 < len(args):
			i++
			switch a {
			case "-X":
				method = args[i]
			case "-d":
				data = args[i]
				if method == "GET" {
					method = "POST"
				}
			}
		case strings.HasPrefix(a, "http://"):
			url = a
		default:
			t.Fatalf("%s: curl argument %q is not understood here", where, a)
		}
	}
	if url == "" {
		t.Fatalf("%s: no URL", where)
	}
	return method, url, data
}

func readmeRequest(t *testing.T, c *http.Client, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded") // what curl -d sends
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}

func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		return false
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("README JSON %q: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// The README's embedding example is control/readme_embed_test.go (a test
// that runs against the emulator), word for word from its import block on.
func TestReadmeEmbeddingExample(t *testing.T) {
	block := markedBlock(t, readmeBlocks(t), "embedding")
	src, err := os.ReadFile(filepath.Join("..", "..", "control", "readme_embed_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(src), "import (")
	if i < 0 {
		t.Fatal("control/readme_embed_test.go has no import block")
	}
	if got := string(src[i:]); got != block.text {
		t.Errorf("README.md:%d: the embedding example differs from control/readme_embed_test.go (from `import (` on); copy the file's text into the README:\n%s", block.line, got)
	}
}

// The README's admin-API client example is the body of readmeClient in
// control/client/readme_example_test.go (a test that runs it against a
// live admin API), between its readme markers, one tab less indented.
func TestReadmeClientExample(t *testing.T) {
	block := markedBlock(t, readmeBlocks(t), "client")
	src, err := os.ReadFile(filepath.Join("..", "..", "control", "client", "readme_example_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "\t// readme:begin\n", "\t// readme:end\n"
	s := string(src)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatal("control/client/readme_example_test.go lacks its readme markers")
	}
	var want strings.Builder
	for _, line := range strings.SplitAfter(s[i+len(begin):j], "\n") {
		want.WriteString(strings.TrimPrefix(line, "\t"))
	}
	if want.String() != block.text {
		t.Errorf("README.md:%d: the client example differs from control/client/readme_example_test.go; copy its body into the README:\n%s", block.line, want.String())
	}
}

// The methods the README lists for control.Instance exist.
func TestReadmeInstanceMethods(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "`control.Instance` also offers")
	if i < 0 {
		t.Fatal("README.md no longer lists control.Instance's methods")
	}
	para := s[i : i+strings.Index(s[i:], "\n\n")]
	typ := reflect.TypeOf((*control.Instance)(nil))
	names := regexp.MustCompile("`([A-Z][A-Za-z]+)`").FindAllStringSubmatch(para, -1)
	if len(names) < 5 {
		t.Fatalf("found %d method names in %q", len(names), para)
	}
	for _, m := range names {
		if _, ok := typ.MethodByName(m[1]); !ok {
			t.Errorf("README.md says control.Instance offers %s; it has no such method", m[1])
		}
	}
}
