package tlsbridge_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/interop"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

const (
	brUser     = "tdsproxy"
	brPassword = "Emu-Pa55word!"
)

type bridgeRig struct {
	emu   *emulator.Server
	certs *tlsbridge.CertSource
	port  int
	reps  chan *tlsbridge.BridgeReport
	cfg   tlsbridge.BridgeConfig
}

func startEmu(t *testing.T, cfg emulator.Config) *emulator.Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.User == "" {
		cfg.User, cfg.Password = brUser, brPassword
	}
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	return emu
}

// startBridge runs a bridge listener in front of emu; edit changes the
// config before it starts.
func startBridge(t *testing.T, emu *emulator.Server, edit func(*tlsbridge.BridgeConfig)) *bridgeRig {
	t.Helper()
	certs, err := tlsbridge.LoadCertSource(tlsbridge.BridgeCertConfig{CAOut: filepath.Join(t.TempDir(), "ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(emu.CertificatePEM())
	cfg := tlsbridge.BridgeConfig{Certs: certs, UpstreamHost: "127.0.0.1", UpstreamRoots: roots,
		HandshakeTimeout: 20 * time.Second, Queries: tds.QueriesText}
	if edit != nil {
		edit(&cfg)
	}
	b, err := tlsbridge.NewBridge(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &bridgeRig{emu: emu, certs: certs, port: ln.Addr().(*net.TCPAddr).Port, reps: make(chan *tlsbridge.BridgeReport, 64), cfg: cfg}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				u, err := net.Dial("tcp", emu.Addr())
				if err != nil {
					c.Close()
					r.reps <- &tlsbridge.BridgeReport{Failure: err.Error()}
					return
				}
				rep, _ := b.Serve(ctx, c, u)
				r.reps <- rep
			}()
		}
	}()
	t.Cleanup(func() { cancel(); ln.Close(); <-done })
	return r
}

func (r *bridgeRig) next(t *testing.T) *tlsbridge.BridgeReport {
	t.Helper()
	select {
	case rep := <-r.reps:
		return rep
	case <-time.After(20 * time.Second):
		t.Fatal("no bridge report within 20s")
		return nil
	}
}

// mssql runs go-mssqldb through the bridge, trusting the bridge's CA.
func (r *bridgeRig) mssql(t *testing.T, encrypt, password, query string, edit func(*tls.Config)) *interop.Result {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(r.certs.CAPEM())
	cfg := interop.MSSQLConfig{Port: r.port, User: brUser, Password: password, Encrypt: encrypt, Query: query, Timeout: 20 * time.Second,
		TLS: func(c *tls.Config) {
			c.RootCAs = pool
			if edit != nil {
				edit(c)
			}
		}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := interop.RunMSSQL(ctx, cfg)
	if err != nil {
		t.Fatalf("go-mssqldb: %v", err)
	}
	return res
}

func TestBridgeGoMSSQLDB(t *testing.T) {
	emu := startEmu(t, emulator.Config{Encrypt: tds.EncryptOff})
	keylog := filepath.Join(t.TempDir(), "keys.log")
	kl, err := tlsbridge.OpenKeyLog(keylog)
	if err != nil {
		t.Fatal(err)
	}
	defer kl.Close()
	r := startBridge(t, emu, func(c *tlsbridge.BridgeConfig) { c.KeyLog = kl })
	for _, tc := range []struct {
		encrypt, protocol, scope string
		tls                      bool
	}{
		{"disable", "tds7", "none", false},
		{"false", "tds7", "login-only", true},
		{"true", "tds7", "session", true},
		{"strict", "tds8-strict", "", true},
	} {
		t.Run("encrypt="+tc.encrypt, func(t *testing.T) {
			before := emu.Stats()
			res := r.mssql(t, tc.encrypt, brPassword, "SELECT 1", nil)
			if !res.OK || !reflect.DeepEqual(res.Rows, [][]string{{"1"}}) {
				t.Fatalf("SELECT 1: ok %v rows %q error %q", res.OK, res.Rows, res.Error)
			}
			rep := r.next(t)
			if rep.Protocol != tc.protocol || rep.Scope != tc.scope {
				t.Errorf("protocol %q scope %q, want %q %q", rep.Protocol, rep.Scope, tc.protocol, tc.scope)
			}
			if got := emu.Stats().TLSHandshakes - before.TLSHandshakes; (got == 1) != tc.tls {
				t.Errorf("emulator saw %d handshakes", got)
			}
			s := rep.Session
			if s.Login == nil || s.Login.User != brUser || s.Login.App == "" || s.LoginOutcome != "success" ||
				s.LoginAck == nil || s.LoginAck.ProgVersion == [4]byte{} {
				t.Errorf("login %+v outcome %q ack %+v", s.Login, s.LoginOutcome, s.LoginAck)
			}
			if s.SQLBatches != 1 || s.Rows != 1 || len(s.Queries) != 1 || s.Queries[0] != "SELECT 1" {
				t.Errorf("batches %d rows %d queries %q", s.SQLBatches, s.Rows, s.Queries)
			}
			if tc.tls {
				if rep.ClientHello == nil || rep.UpstreamHello == nil {
					t.Fatalf("hellos %v %v (failure %q)", rep.ClientHello, rep.UpstreamHello, rep.Failure)
				}
				// Go 1.26 lists post-quantum groups utls cannot compute
				// (SecP256r1MLKEM768, SecP384r1MLKEM1024) in
				// supported_groups only, without a key share: they are
				// dropped, and JA4 (which has no groups) stays equal.
				if onlyGroupsDropped(rep.Dropped) != "" || rep.ClientHello.JA4() != rep.UpstreamHello.JA4() {
					t.Errorf("JA4 client %s upstream %s, dropped %q", rep.ClientHello.JA4(), rep.UpstreamHello.JA4(), rep.Dropped)
				}
				if rep.Client == nil || rep.Upstream == nil || rep.Client.Version != rep.Upstream.Version {
					t.Errorf("legs %v / %v", rep.Client, rep.Upstream)
				}
				if tc.protocol == "tds8-strict" && (rep.Client.ALPN != "tds/8.0" || rep.Upstream.ALPN != "tds/8.0") {
					t.Errorf("ALPN %q / %q", rep.Client.ALPN, rep.Upstream.ALPN)
				}
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		res := r.mssql(t, "true", "not-"+brPassword, "SELECT 1", nil)
		if res.OK || !strings.Contains(res.Error, "18456") {
			t.Fatalf("ok %v error %q", res.OK, res.Error)
		}
		s := r.next(t).Session
		if s.LoginOutcome != "failed" || len(s.Errors) != 1 || s.Errors[0].Number != 18456 ||
			s.Errors[0].Message != "Login failed for user '"+brUser+"'." {
			t.Fatalf("outcome %q errors %+v", s.LoginOutcome, s.Errors)
		}
	})
	t.Run("unknown procedure", func(t *testing.T) {
		res := r.mssql(t, "strict", brPassword, "EXEC tdsproxy_nope", nil)
		if res.OK || !strings.Contains(res.Error, "tdsproxy_nope") {
			t.Fatalf("ok %v error %q", res.OK, res.Error)
		}
		s := r.next(t).Session
		if s.LoginOutcome != "success" || len(s.Errors) != 1 || s.Errors[0].Number != 2812 || s.Errors[0].Class != 16 {
			t.Fatalf("outcome %q errors %+v", s.LoginOutcome, s.Errors)
		}
	})
	keys, err := os.ReadFile(keylog)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(keylog); fi.Mode().Perm() != 0o600 {
		t.Errorf("key log mode %v", fi.Mode().Perm())
	}
	if !bytes.Contains(keys, []byte("CLIENT_RANDOM ")) && !bytes.Contains(keys, []byte("CLIENT_HANDSHAKE_TRAFFIC_SECRET ")) {
		t.Errorf("key log has no NSS lines: %.200q", keys)
	}
	if bytes.Contains(keys, []byte(brPassword)) {
		t.Fatal("password in key log")
	}
}

// onlyGroupsDropped returns the first dropped item that is not a
// supported_groups entry, or "".
func onlyGroupsDropped(d []string) string {
	for _, x := range d {
		if !strings.HasPrefix(x, "supported_group ") {
			return x
		}
	}
	return ""
}
