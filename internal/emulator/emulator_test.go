package emulator

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/msdsn"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tdsproxy/tdsproxy/tds"
)

// startServer starts an emulator for one test and closes it at the end.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// dsn builds a go-mssqldb URL for s. Timeouts keep a broken test from
// hanging: "connection timeout" covers each read and write.
func dsn(s *Server, user, password string, params url.Values) string {
	q := url.Values{"connection timeout": {"10"}, "dial timeout": {"5"}}
	for k, v := range params {
		q[k] = v
	}
	u := url.URL{Scheme: "sqlserver", User: url.UserPassword(user, password), Host: s.Addr(), RawQuery: q.Encode()}
	return u.String()
}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlserver", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func selectOne(t *testing.T, ctx context.Context, db *sql.DB) {
	t.Helper()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&n); err != nil {
		t.Fatalf("SELECT 1: %v", err)
	}
	if n != 1 {
		t.Fatalf("SELECT 1 returned %d", n)
	}
}

func writeCertFile(t *testing.T, s *Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "emulator.pem")
	if err := os.WriteFile(path, s.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestGoMssqldbEncryptionModes(t *testing.T) {
	tests := []struct {
		name      string
		server    tds.Encryption
		encrypt   string // go-mssqldb encrypt=
		tls       uint16 // version expected; 0: no TLS expected
		defaults  bool   // leave TLSMin/TLSMax zero instead of pinning tls
		verifyPEM bool   // trust the emulator's certificate instead of TrustServerCertificate
	}{
		{name: "true/default versions/TDS 7.x gets TLS1.2", server: tds.EncryptOff, encrypt: "true", tls: tls.VersionTLS12, defaults: true},
		{name: "strict/default versions/TLS1.3", server: tds.EncryptOff, encrypt: "strict", tls: tls.VersionTLS13, defaults: true, verifyPEM: true},
		{name: "disable/no TLS", server: tds.EncryptOff, encrypt: "disable"},
		{name: "false/login-only/TLS1.2", server: tds.EncryptOff, encrypt: "false", tls: tls.VersionTLS12},
		{name: "false/login-only/TLS1.3", server: tds.EncryptOff, encrypt: "false", tls: tls.VersionTLS13},
		{name: "true/session/TLS1.2", server: tds.EncryptOff, encrypt: "true", tls: tls.VersionTLS12},
		{name: "true/session/TLS1.3", server: tds.EncryptOff, encrypt: "true", tls: tls.VersionTLS13},
		{name: "false/forced by server/TLS1.2", server: tds.EncryptOn, encrypt: "false", tls: tls.VersionTLS12},
		{name: "true/server REQ/TLS1.3", server: tds.EncryptReq, encrypt: "true", tls: tls.VersionTLS13},
		{name: "strict/TLS1.2", server: tds.EncryptOff, encrypt: "strict", tls: tls.VersionTLS12, verifyPEM: true},
		{name: "strict/TLS1.3", server: tds.EncryptOff, encrypt: "strict", tls: tls.VersionTLS13, verifyPEM: true},
		{name: "true/verified certificate", server: tds.EncryptOff, encrypt: "true", tls: tls.VersionTLS13, verifyPEM: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			cfg := Config{Encrypt: tc.server, User: "sa", Password: "Secret-1", Logger: zap.New(core)}
			if tc.tls != 0 && !tc.defaults {
				cfg.TLSMin, cfg.TLSMax = tc.tls, tc.tls
			}
			s := startServer(t, cfg)
			params := url.Values{"encrypt": {tc.encrypt}}
			if tc.verifyPEM {
				params.Set("certificate", writeCertFile(t, s))
				params.Set("hostNameInCertificate", "localhost")
			} else {
				params.Set("TrustServerCertificate", "true")
			}
			db := openDB(t, dsn(s, "sa", "Secret-1", params))
			ctx := testContext(t)
			if err := db.PingContext(ctx); err != nil {
				t.Fatalf("ping: %v", err)
			}
			selectOne(t, ctx, db)

			st := s.Stats()
			if st.LoginsOK == 0 {
				t.Errorf("stats: %+v, want a successful login", st)
			}
			handshakes := logs.FilterMessage("TLS handshake done").All()
			if tc.tls == 0 {
				if st.TLSHandshakes != 0 {
					t.Errorf("%d TLS handshakes, want none", st.TLSHandshakes)
				}
				return
			}
			if len(handshakes) == 0 {
				t.Fatal("no TLS handshake logged")
			}
			if got := handshakes[0].ContextMap()["version"]; got != tls.VersionName(tc.tls) {
				t.Errorf("TLS version %v, want %s", got, tls.VersionName(tc.tls))
			}
			if tc.encrypt == "strict" {
				if got := handshakes[0].ContextMap()["alpn"]; got != "tds/8.0" {
					t.Errorf("ALPN %q, want tds/8.0", got)
				}
			}
		})
	}
}

func TestGoMssqldbEncryptionMismatch(t *testing.T) {
	// Client requires encryption, server cannot: the server answers
	// NOT_SUP and terminates; go-mssqldb reports it itself.
	s := startServer(t, Config{Encrypt: tds.EncryptNotSup})
	db := openDB(t, dsn(s, "sa", "x", url.Values{"encrypt": {"true"}, "TrustServerCertificate": {"true"}}))
	err := db.PingContext(testContext(t))
	if err == nil || !strings.Contains(err.Error(), "server does not support encryption") {
		t.Fatalf("ping error %v, want go-mssqldb's \"server does not support encryption\"", err)
	}
}

func TestGoMssqldbTLSMismatch(t *testing.T) {
	// The emulator's crypto/tls sends an alert, so go-mssqldb reports the
	// TLS error (a Schannel server would close instead; tdsproxy's faults
	// reproduce that).
	tests := []struct {
		name    string
		server  Config
		client  func(*tls.Config)
		wantErr string
	}{
		{
			name:    "no common version",
			server:  Config{TLSMin: tls.VersionTLS13},
			client:  func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 },
			wantErr: "protocol version not supported",
		},
		{
			name:   "no common cipher suite",
			server: Config{TLSMax: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}},
			client: func(c *tls.Config) {
				c.MaxVersion = tls.VersionTLS12
				c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}
			},
			wantErr: "handshake failure",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tc.server)
			cfg, err := msdsn.Parse(dsn(s, "u", "p", url.Values{"encrypt": {"true"}, "TrustServerCertificate": {"true"}}))
			if err != nil {
				t.Fatal(err)
			}
			tc.client(cfg.TLSConfig)
			db := sql.OpenDB(mssql.NewConnectorConfig(cfg))
			defer db.Close()
			err = db.PingContext(testContext(t))
			if err == nil || !strings.Contains(err.Error(), "TLS Handshake failed") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want a TLS handshake failure with %q", err, tc.wantErr)
			}
			if st := s.Stats(); st.TLSFailures != 1 {
				t.Errorf("stats %+v, want one TLS failure", st)
			}
		})
	}
}

func TestGoMssqldbLoginFailed(t *testing.T) {
	s := startServer(t, Config{User: "sa", Password: "right"})
	for _, enc := range []string{"disable", "false", "true", "strict"} {
		t.Run(enc, func(t *testing.T) {
			params := url.Values{"encrypt": {enc}, "TrustServerCertificate": {"true"}}
			if enc == "strict" {
				// go-mssqldb ignores TrustServerCertificate in strict mode
				// (msdsn parseTLS): the certificate must verify.
				params = url.Values{"encrypt": {enc}, "certificate": {writeCertFile(t, s)}, "hostNameInCertificate": {"localhost"}}
			}
			db := openDB(t, dsn(s, "sa", "wrong", params))
			err := db.PingContext(testContext(t))
			var me mssql.Error
			if !errors.As(err, &me) {
				t.Fatalf("error %v (%T), want an mssql.Error", err, err)
			}
			if me.Number != 18456 || me.Class != 14 || !strings.Contains(me.Message, "Login failed for user 'sa'.") {
				t.Errorf("got number %d class %d message %q", me.Number, me.Class, me.Message)
			}
		})
	}
	if st := s.Stats(); st.LoginsFailed != 4 || st.LoginsOK != 0 {
		t.Errorf("stats %+v, want 4 failed logins", st)
	}
}

func TestGoMssqldbQueries(t *testing.T) {
	s := startServer(t, Config{LargeRows: 40, LargeRowBytes: 8000})
	for _, params := range []url.Values{
		{"encrypt": {"true"}, "TrustServerCertificate": {"true"}, "packet size": {"16383"}},
		// A small packet size makes every large row span several
		// packets. go-mssqldb cannot combine it with TLS: it reads the
		// server's 4096-byte handshake packets into a packet-size buffer
		// and fails with "invalid packet size, it is longer than buffer
		// size", against SQL Server too (microsoft/go-sqlcmd#129).
		{"encrypt": {"disable"}, "packet size": {"512"}},
	} {
		t.Run("encrypt="+params.Get("encrypt"), func(t *testing.T) {
			testQueries(t, s, params)
		})
	}
}

func testQueries(t *testing.T, s *Server, params url.Values) {
	ctx := testContext(t)
	db := openDB(t, dsn(s, "u", "p", params))
	db.SetMaxOpenConns(1)

	t.Run("version", func(t *testing.T) {
		var v string
		if err := db.QueryRowContext(ctx, "  select @@VERSION ; ").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(v, "tdsproxy emulator") || !strings.Contains(v, "16.0.1000") {
			t.Errorf("@@VERSION = %q", v)
		}
	})
	t.Run("spid", func(t *testing.T) {
		var spid int
		if err := db.QueryRowContext(ctx, "SELECT @@SPID").Scan(&spid); err != nil {
			t.Fatal(err)
		}
		if spid < firstSPID {
			t.Errorf("@@SPID = %d", spid)
		}
	})
	large := []struct {
		query      string
		rows, size int
	}{
		{"SELECT large", 40, 8000},
		{"select LARGE(3000, 100)", 3000, 100},
		{"SELECT large(0,1)", 0, 1},
	}
	for _, l := range large {
		t.Run(l.query, func(t *testing.T) {
			rows, err := db.QueryContext(ctx, l.query)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			n, bytes := 0, 0
			for rows.Next() {
				var b []byte
				if err := rows.Scan(&b); err != nil {
					t.Fatal(err)
				}
				n++
				bytes += len(b)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if n != l.rows || bytes != l.rows*l.size {
				t.Errorf("%d rows, %d bytes; want %d rows of %d bytes", n, bytes, l.rows, l.size)
			}
		})
	}
	t.Run("sp_executesql", func(t *testing.T) {
		// Arguments make go-mssqldb send an sp_executesql RPC.
		var n int
		if err := db.QueryRowContext(ctx, "SELECT 1", sql.Named("unused", 5)).Scan(&n); err != nil || n != 1 {
			t.Fatalf("got %d, %v", n, err)
		}
	})
	t.Run("session setup", func(t *testing.T) {
		if _, err := db.ExecContext(ctx, "SET NOCOUNT ON\nset textsize 2147483647; USE master"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unknown statement keeps the connection", func(t *testing.T) {
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, rpc := range []bool{false, true} {
			var args []any
			if rpc {
				args = []any{sql.Named("p", 1)}
			}
			_, err := conn.ExecContext(ctx, "DROP TABLE important", args...)
			var me mssql.Error
			if !errors.As(err, &me) || me.Number != 2812 || me.Class != 16 {
				t.Fatalf("rpc=%v: error %v, want mssql.Error 2812", rpc, err)
			}
			var n int
			if err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&n); err != nil || n != 1 {
				t.Fatalf("rpc=%v: SELECT 1 after the error: %d, %v", rpc, n, err)
			}
		}
	})
}

func TestCloseWithLiveConnection(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, dsn(s, "u", "p", url.Values{"encrypt": {"true"}, "TrustServerCertificate": {"true"}}))
	ctx := testContext(t)
	selectOne(t, ctx, db) // leaves one idle, logged-in connection in the pool

	// A raw connection that never sends anything is live too.
	idle, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return")
	}
	_ = idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Error("idle connection still open after Close")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

func TestBadInputClosesOnlyThatConnection(t *testing.T) {
	s := startServer(t, Config{})
	prelogin := func(payload []byte) []byte {
		w := tds.Writer{}
		return w.AppendMessage(nil, tds.PacketPrelogin, 0, payload)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"HTTP request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"packet length below header", []byte{0x12, 0x01, 0x00, 0x04, 0, 0, 0, 0}},
		{"PRELOGIN option past the end", prelogin([]byte{0x00, 0x00, 0x40, 0x00, 0x06, 0xFF})},
		{"PRELOGIN without terminator", prelogin([]byte{0x01, 0x00, 0x05, 0x00, 0x01})},
		{"TLS garbage", []byte{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5}},
		{"LOGIN7 where PRELOGIN belongs", func() []byte {
			w := tds.Writer{}
			return append([]byte{}, w.AppendMessage(nil, tds.PacketLogin7, 0, make([]byte, 10))...)
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(tc.in); err != nil {
				t.Fatal(err)
			}
			// The server closes the connection (perhaps after a TLS
			// alert): reading reaches EOF or a reset, not the deadline.
			_, err = io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("server kept the connection open")
			}
		})
	}
	if st := s.Stats(); st.ProtocolErrors < 5 {
		t.Errorf("stats %+v: want the bad inputs counted", st)
	}
	db := openDB(t, dsn(s, "u", "p", url.Values{"encrypt": {"disable"}}))
	selectOne(t, testContext(t), db)
}

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"strict is not a server setting", Config{Encrypt: tds.EncryptStrict}, "Config.Encrypt"},
		{"TLSMin too low", Config{TLSMin: 0x0300}, "Config.TLSMin"},
		{"TLSMax too high", Config{TLSMax: 0x0305}, "Config.TLSMax"},
		{"TLSMin above TLSMax", Config{TLSMin: tls.VersionTLS13, TLSMax: tls.VersionTLS12}, "Config.TLSMin"},
		{"unknown cipher suite", Config{CipherSuites: []uint16{0x0033}}, "Config.CipherSuites"},
		{"password without user", Config{Password: "x"}, "Config.User"},
		{"negative rows", Config{LargeRows: -1}, "Config.LargeRows"},
		{"row too wide", Config{LargeRowBytes: 8001}, "Config.LargeRowBytes"},
		{"certificate without key", Config{Certificate: &tls.Certificate{Certificate: [][]byte{{1}}}}, "Config.Certificate"},
		{"negative login timeout", Config{LoginTimeout: -time.Second}, "Config.LoginTimeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %v, want one naming %s", err, tc.field)
			}
		})
	}
}

func ExampleServer() {
	s, err := New(Config{Encrypt: tds.EncryptOn, User: "sa", Password: "Secret-1"})
	if err != nil {
		panic(err)
	}
	if err := s.Start(); err != nil {
		panic(err)
	}
	defer s.Close()
	db, _ := sql.Open("sqlserver", fmt.Sprintf("sqlserver://sa:Secret-1@%s?TrustServerCertificate=true", s.Addr()))
	defer db.Close()
	var n int
	_ = db.QueryRow("SELECT 1").Scan(&n)
	fmt.Println(n)
	// Output: 1
}
