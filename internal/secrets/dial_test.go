package secrets_test

import (
	"go/ast"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

// productPackages are the packages that run in tdsproxy itself; internal/
// (emulator, interop, lab, soak) and bench are test equipment.
var productPackages = []string{"proxy", "control", "faults", "tds", "tlsbridge", "configs", "cmd"}

// The proxy has exactly one code path that opens a connection, and it dials
// the configured upstream (proxy.Config.Upstream): nothing a client sends
// (PRELOGIN's instance, LOGIN7's server name, the ClientHello's SNI) can
// choose where it connects. This reads the source of every product package.
func TestOnlyDialIsTheConfiguredUpstream(t *testing.T) {
	fset, files := goFiles(t)
	var dials []string
	for path, f := range files {
		rel, _ := filepath.Rel(repoRoot, path)
		top := strings.SplitN(filepath.ToSlash(rel), "/", 2)[0]
		product := false
		for _, p := range productPackages {
			product = product || top == p
		}
		if !product {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !strings.HasPrefix(sel.Sel.Name, "Dial") || len(call.Args) < 2 {
				return true
			}
			// The address is the argument after the network name.
			addr := ""
			for i, a := range call.Args {
				if lit, ok := a.(*ast.BasicLit); ok && strings.Contains(lit.Value, "tcp") && i+1 < len(call.Args) {
					addr = render(fset, call.Args[i+1])
				}
			}
			pos := fset.Position(call.Pos()).String()
			dials = append(dials, pos+": "+render(fset, call.Fun)+"(… "+addr+")")
			if addr != "s.p.cfg.Upstream" {
				t.Errorf("%s: %s dials %q, not the configured upstream", pos, render(fset, call.Fun), addr)
			}
			return true
		})
	}
	if len(dials) != 1 {
		t.Errorf("dial calls in the product packages: %q, want exactly the upstream dial", dials)
	}
	t.Logf("dial calls: %q", dials)
}

// countingListener counts the connections a listener accepts and records
// the bytes of each.
type countingListener struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	got      [][]byte
	wg       sync.WaitGroup
}

func listenCounting(t *testing.T, reply func(c net.Conn)) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{ln: ln}
	cl.wg.Add(1)
	go func() {
		defer cl.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cl.accepted.Add(1)
			cl.wg.Add(1)
			go func() {
				defer cl.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if reply != nil {
					reply(c)
				}
				b, _ := io.ReadAll(c)
				cl.mu.Lock()
				cl.got = append(cl.got, b)
				cl.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); cl.wg.Wait() })
	return cl
}

// A client that names another server everywhere it can still reaches only
// the configured upstream.
func TestClientCannotChooseTheUpstream(t *testing.T) {
	upstream := listenCounting(t, nil)
	decoy := listenCounting(t, nil)
	_, decoyPort, _ := net.SplitHostPort(decoy.ln.Addr().String())

	recs := make(chan *proxy.Record, 8)
	p, err := proxy.New(proxy.Config{Name: "dial", Listen: "127.0.0.1:0", Upstream: upstream.ln.Addr().String()},
		proxy.Options{Sink: func(r *proxy.Record) { recs <- r }})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })

	// TDS 7.x: PRELOGIN whose instance is the decoy, then LOGIN7 whose
	// server name is the decoy's address (as "host,port", SQL Server's form).
	pre := &tds.Prelogin{}
	pre.Set(tds.PreloginVersion, []byte{0x0F, 0, 0x07, 0xD0, 0, 0})
	pre.Set(tds.PreloginEncryption, []byte{byte(tds.EncryptNotSup)})
	pre.Set(tds.PreloginInstance, append([]byte("DECOY"), 0))
	login := &tds.Login7{TDSVersion: tds.VersionTDS74, PacketSize: 4096, UserName: "u", Password: tds.NewPassword("p"),
		ServerName: "127.0.0.1," + decoyPort, Database: "decoy", AppName: "decoy-app"}
	w := tds.Writer{}
	tds7 := w.AppendMessage(nil, tds.PacketPrelogin, 0, pre.Marshal())
	tds7 = w.AppendMessage(tds7, tds.PacketLogin7, 0, login.Marshal())

	// TDS 8.0 strict: a real ClientHello whose SNI is rewritten to a decoy
	// name of the same length, so every length field stays right.
	hello, err := os.ReadFile(filepath.Join(repoRoot, "tlsbridge", "testdata", "handshakes", "clienthello-go126-strict.bin"))
	if err != nil {
		t.Fatal(err)
	}
	strict := []byte(strings.Replace(string(hello), "sql.example.com", "decoy.localhost", 1))

	for _, msg := range [][]byte{tds7, strict} {
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).CloseWrite()
		_, _ = io.ReadAll(c)
		c.Close()
	}
	var got []*proxy.Record
	for range 2 {
		select {
		case r := <-recs:
			got = append(got, r)
		case <-time.After(10 * time.Second):
			t.Fatal("no record")
		}
	}
	if n := upstream.accepted.Load(); n != 2 {
		t.Errorf("the configured upstream got %d connections, want 2", n)
	}
	if n := decoy.accepted.Load(); n != 0 {
		t.Errorf("the decoy got %d connections", n)
	}
	sawServer, sawSNI := false, false
	for _, r := range got {
		if r.Upstream != upstream.ln.Addr().String() {
			t.Errorf("record upstream %q", r.Upstream)
		}
		if r.Login != nil && r.Login.Server == login.ServerName && r.Prelogin != nil && r.Prelogin.Client.Instance == "DECOY" {
			sawServer = true
		}
		if r.TLS != nil && r.TLS.ClientHello != nil && r.TLS.ClientHello.SNI == "decoy.localhost" {
			sawSNI = true
		}
	}
	// The proxy read the decoy names (so they really were offered) and
	// still went where it was configured to.
	if !sawServer || !sawSNI {
		t.Errorf("records do not show the decoy names (server name %v, SNI %v)", sawServer, sawSNI)
	}
}
