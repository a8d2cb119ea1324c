package testkit

import (
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
)

// StartEmulator runs a SQL Server emulator with cfg until the test ends. An
// empty cfg.Listen is a free loopback port.
func StartEmulator(t testing.TB, cfg emulator.Config) *emulator.Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	s, err := emulator.New(cfg)
	if err != nil {
		t.Fatalf("emulator.New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("emulator Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// echoDeadline bounds each echoed connection, so a test that forgets one
// does not hold a goroutine past its own timeout.
const echoDeadline = 30 * time.Second

// StartEcho runs a TCP echo server on loopback until the test ends and
// returns its address. Each connection echoes for at most 30 s.
func StartEcho(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(echoDeadline))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// Port is the numeric port of a host:port address.
func Port(t testing.TB, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("port of %q: %v", addr, err)
	}
	return port
}
