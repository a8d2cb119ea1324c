package control_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/testkit"

	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
)

// Shutdown with connections in flight: the proxy stops accepting at once,
// the connections finish their work and close by themselves within the
// drain timeout, and Shutdown returns nil.
func TestShutdownDrains(t *testing.T) {
	const clients = 10
	emu := testkit.StartEmulator(t, emulator.Config{})
	in := newInstance(t, control.Options{})
	addr := addProxy(t, in, "main", emu.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var started, done sync.WaitGroup
	errs := make([]error, clients)
	queries := make([]int, clients)
	for i := range clients {
		c := newSQLClient(t, addr, nil, "app", "pw", "false")
		started.Add(1)
		done.Go(func() {
			conn, err := c.connect(ctx)
			started.Done()
			if err != nil {
				errs[i] = err
				return
			}
			defer conn.Close()
			for range 5 {
				if _, err := query(ctx, conn, "SELECT large(100, 1000)", 5*time.Millisecond); err != nil {
					errs[i] = err
					return
				}
				queries[i]++
			}
		})
	}
	started.Wait()

	shut := make(chan error, 1)
	go func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer dcancel()
		shut <- in.Shutdown(dctx, true)
	}()
	// New connections are refused as soon as draining starts.
	testkit.WaitFor(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	}, 5*time.Second, "new connections to be refused once draining starts")
	done.Wait()
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v, want nil (every connection ended within the drain timeout)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not return after every connection ended")
	}
	for i := range clients {
		if errs[i] != nil || queries[i] != 5 {
			t.Errorf("client %d: %d of 5 queries, error %v; want all through the drain", i, queries[i], errs[i])
		}
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("the proxy accepts after Shutdown")
	}
	if err := in.AddProxy(proxyConfig("late", emu.Addr()), nil); !errors.Is(err, control.ErrClosed) {
		t.Errorf("AddProxy after Shutdown = %v, want ErrClosed", err)
	}
}

// Connections still open when the drain timeout ends are closed, and
// Shutdown says so.
func TestShutdownDrainTimeout(t *testing.T) {
	emu := testkit.StartEmulator(t, emulator.Config{})
	in := newInstance(t, control.Options{})
	addr := addProxy(t, in, "main", emu.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := newSQLClient(t, addr, nil, "app", "pw", "false").connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dctx, dcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer dcancel()
	if err := in.Shutdown(dctx, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the drain deadline", err)
	}
	if _, err := query(ctx, conn, "SELECT 1", 0); err == nil {
		t.Error("the idle connection survived the drain timeout")
	}
	recs := in.Records(control.RecordQuery{}).Records
	if len(recs) != 1 || recs[0].Close == nil || recs[0].Close.Kind != "shutdown" {
		t.Errorf("records = %+v, want one closed by shutdown", recs)
	}
}

// WatchFile reports a write, an atomic replace (rename) and a symlink
// swap, once each, and nothing for a rewrite with the same content.
func TestWatchFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tdsproxy.yaml")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(path, "v1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan struct{}, 10)
	if err := control.WatchFile(ctx, path, func() { changes <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	want := func(what string, n int) {
		t.Helper()
		got := 0
		timeout := time.After(2 * time.Second)
		for got < n {
			select {
			case <-changes:
				got++
			case <-timeout:
				t.Fatalf("%s: %d change callbacks, want %d", what, got, n)
			}
		}
		select {
		case <-changes:
			t.Fatalf("%s: more than %d change callbacks", what, n)
		case <-time.After(500 * time.Millisecond):
		}
	}
	write(path, "v2")
	want("write", 1)
	write(path, "v2")
	want("same content", 0)
	tmp := filepath.Join(dir, "new.tmp")
	write(tmp, "v3")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	want("rename over", 1)

	// A ConfigMap-style symlink: path -> data/x; the swap repoints data.
	link := filepath.Join(dir, "linked.yaml")
	for _, d := range []string{"a", "b"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(dir, d, "x"), "content "+d)
	}
	if err := os.Symlink("a", filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("data", "x"), link); err != nil {
		t.Fatal(err)
	}
	lchanges := make(chan struct{}, 10)
	if err := control.WatchFile(ctx, link, func() { lchanges <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("b", filepath.Join(dir, "data.new")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "data.new"), filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lchanges:
	case <-time.After(2 * time.Second):
		t.Fatal("no change callback after the symlink swap")
	}
}
