//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/tds"
)

// startEmulator starts the in-process SQL Server emulator every TDS workload
// talks to, and writes its CA certificate (the self-signed server
// certificate) to dir for the clients that verify it. Its certificate is
// the harness's (makeBenchCert), which the bridge paths present too.
func startEmulator(dir string, cert *benchCert) (*emulator.Server, string, error) {
	srv, err := emulator.New(emulator.Config{
		Listen:      "127.0.0.1:0",
		Certificate: &cert.cert,
		Encrypt:     tds.EncryptOff, // SQL Server's default: no "force encryption"
		// Each bulk query names its size: SELECT large(N, 8000).
		LargeRows:     1,
		LargeRowBytes: 8000,
	})
	if err != nil {
		return nil, "", err
	}
	if err := srv.Start(); err != nil {
		return nil, "", err
	}
	ca := filepath.Join(dir, "emulator-ca.pem")
	if err := os.WriteFile(ca, srv.CertificatePEM(), 0o644); err != nil {
		srv.Close()
		return nil, "", err
	}
	return srv, ca, nil
}

// holdServer is the raw upstream of the memory workload: for each
// connection it reads one byte, answers one byte (so the client knows the
// whole path is established), then holds the connection open until the
// peer closes it.
type holdServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startHoldServer() (*holdServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &holdServer{ln: ln, conns: map[net.Conn]struct{}{}}
	h.wg.Add(1)
	go h.accept()
	return h, nil
}

func (h *holdServer) addr() string { return h.ln.Addr().String() }

func (h *holdServer) accept() {
	defer h.wg.Done()
	var backoff time.Duration
	for {
		c, err := h.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		h.mu.Lock()
		h.conns[c] = struct{}{}
		h.mu.Unlock()
		h.wg.Add(1)
		go h.serve(c)
	}
}

func (h *holdServer) serve(c net.Conn) {
	defer h.wg.Done()
	defer func() {
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
		// RST: no TIME_WAIT left behind by thousands of connections.
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}()
	var b [1]byte
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return
	}
	if _, err := c.Write(b[:]); err != nil {
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	// Hold until the peer closes; anything it sends is discarded.
	_, _ = io.Copy(io.Discard, c)
}

// holdFlag, as the only argument, makes the bench binary run as the hold
// server: a child process, so that the connections' upstream ends count
// against the child's RLIMIT_NOFILE and not the harness's.
const holdFlag = "-hold-server"

// holdMain runs the hold server until SIGTERM (or the harness's death:
// Pdeathsig); it prints
// "listening ADDR" first.
func holdMain() int {
	if _, err := raiseNoFile(1 << 18); err != nil {
		fmt.Fprintln(os.Stderr, "hold server: RLIMIT_NOFILE:", err)
	}
	h, err := startHoldServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hold server:", err)
		return 1
	}
	fmt.Printf("listening %s\n", h.addr())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	h.close()
	return 0
}

// startHoldProc starts the hold server as a child process and returns it
// with its address.
func startHoldProc(ctx context.Context, dir string) (*proc, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	p, err := startProc("hold-server", dir, nil, self, holdFlag)
	if err != nil {
		return nil, "", err
	}
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil && !p.exited() {
		b, _ := os.ReadFile(p.logPath)
		for _, l := range strings.Split(string(b), "\n") {
			if a, ok := strings.CutPrefix(l, "listening "); ok {
				return p, strings.TrimSpace(a), nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.stop()
	return nil, "", fmt.Errorf("hold server did not start: %v\n%s", p.waitErr, p.logTail())
}

func (h *holdServer) close() {
	h.ln.Close()
	h.mu.Lock()
	for c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		fmt.Fprintln(os.Stderr, "bench: hold server: connections still open after 10s")
	}
}
