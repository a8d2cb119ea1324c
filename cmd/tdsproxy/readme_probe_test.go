package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is an io.Writer safe for a command writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// verdictLine is a line of the probe report's Verdicts section.
var verdictLine = regexp.MustCompile(`(?m)^\s+([a-z0-9-]+): (risk|ok|n/a) — `)

// The README's probe example runs as written (on a free port) and the
// verdicts it shows are the ones the probe reports.
func TestReadmeProbeExample(t *testing.T) {
	blocks := readmeBlocks(t)
	block := markedBlock(t, blocks, "probe")
	cmds := shellCommands(block.text)
	if len(cmds) != 2 || !strings.HasPrefix(cmds[0].text, "tdsproxy emulate ") || !strings.HasPrefix(cmds[1].text, "tdsproxy probe ") {
		t.Fatalf("the probe block should be `tdsproxy emulate ... &` then `tdsproxy probe ADDR`, got %+v", cmds)
	}
	// The report excerpt is the next text block.
	var shown string
	for i, b := range blocks {
		if b.line == block.line && i+1 < len(blocks) {
			shown = blocks[i+1].text
		}
	}
	want := map[string]string{}
	for _, m := range verdictLine.FindAllStringSubmatch(shown, -1) {
		want[m[1]] = m[2]
	}
	if len(want) < 6 {
		t.Fatalf("the README's probe excerpt shows %d verdicts, want one per scenario:\n%s", len(want), shown)
	}

	emuArgs := shellWords(t, strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(cmds[0].text, "tdsproxy ")), "&"), nil)
	emuArgs = replaceFlag(emuArgs, "--listen", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	emuOut := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- readmeExec(ctx, emuOut, emuArgs...) }()
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
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); {
		if m := re.FindStringSubmatch(emuOut.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("tdsproxy %s: %v\n%s", strings.Join(emuArgs, " "), err, emuOut)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if addr == "" {
		t.Fatalf("emulator not listening after 10s:\n%s", emuOut)
	}

	probeArgs := shellWords(t, strings.TrimPrefix(cmds[1].text, "tdsproxy "), nil)
	probeArgs[len(probeArgs)-1] = addr
	out := &syncBuffer{}
	pctx, pcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer pcancel()
	if err := readmeExec(pctx, out, probeArgs...); err != nil {
		t.Fatalf("tdsproxy %s: %v\n%s", strings.Join(probeArgs, " "), err, out)
	}
	got := map[string]string{}
	for _, m := range verdictLine.FindAllStringSubmatch(out.String(), -1) {
		got[m[1]] = m[2]
	}
	for name, status := range want {
		if got[name] != status {
			t.Errorf("README shows %s: %s, the probe says %q", name, status, got[name])
		}
	}
	if t.Failed() {
		t.Logf("probe report:\n%s", out)
	}
}
