package testkit

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// Poll calls cond until it returns true or timeout passes, and says whether
// it did. The pause between calls starts at 1 ms and doubles up to 20 ms.
// Use it where a test must do something else on failure (a goroutine that
// may not call t.Fatal); otherwise use WaitFor.
func Poll(cond func() bool, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for {
		if cond() {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(min(pause, time.Until(deadline)))
		pause = min(2*pause, 20*time.Millisecond)
	}
}

// WaitFor waits until cond returns true, failing the test with "timed out
// after <timeout> waiting for <what>" when timeout passes first. Call it from
// the test's goroutine.
func WaitFor(t testing.TB, cond func() bool, timeout time.Duration, what string) {
	t.Helper()
	if !Poll(cond, timeout) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// LockedBuffer is a bytes.Buffer safe to write from one goroutine (a
// command, a child's copier) while the test reads it.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is what was written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Len is the number of bytes written so far.
func (l *LockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

// WaitForBeforeExit is WaitFor for something a running command (a
// goroutine reporting its end on exited) must bring about: it fails at once
// when the command ends first, with the command's error, rather than
// waiting out the timeout.
func WaitForBeforeExit(t testing.TB, cond func() bool, exited <-chan error, timeout time.Duration, what string) {
	t.Helper()
	var err error
	ended := false
	ok := Poll(func() bool {
		if cond() {
			return true
		}
		select {
		case err = <-exited:
			ended = true
			return true
		default:
			return false
		}
	}, timeout)
	switch {
	case ended:
		t.Fatalf("ended (%v) before %s", err, what)
	case !ok:
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}
