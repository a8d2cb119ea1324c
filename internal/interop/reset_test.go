package interop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// closeStyle is how a test listener ends each connection after it has read
// the client's first bytes (the PRELOGIN packet).
type closeStyle int

const (
	closeRST closeStyle = iota // SO_LINGER 0: the kernel sends RST
	closeFIN                   // orderly close
)

// startCloser listens on loopback and closes every connection after the
// first read, in the given style. It stops when the test ends.
func startCloser(t *testing.T, style closeStyle) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // listener closed by cleanup
			}
			wg.Add(1)
			go func(c net.Conn) {
				defer wg.Done()
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, 4096)
				_, _ = c.Read(buf)
				if style == closeRST {
					_ = c.(*net.TCPConn).SetLinger(0)
				}
			}(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// TestPreloginClose records what each real client says when the server
// resets or closes the connection right after the client's PRELOGIN: the
// text an application sees for "10054" style failures.
func TestPreloginClose(t *testing.T) {
	tests := []struct {
		name  string
		style closeStyle
		// per client: substrings the client's own Error must contain
		tedious, tsql, gomssql []string
		tediousCause           string
		// jdbc is the driver's message (%d: the port); odbc is
		// mssql-python's text (the same for both closes).
		jdbc, jdbcCause string
	}{
		{
			name:         "RST",
			style:        closeRST,
			tedious:      []string{"Connection lost - read ECONNRESET"},
			tediousCause: "read ECONNRESET",
			tsql:         []string{"Error 20002 (severity 9):\n\tAdaptive Server connection failed"},
			gomssql:      []string{"read: connection reset by peer"},
			jdbc:         "Connection reset",
			jdbcCause:    "java.net.SocketException: Connection reset",
		},
		{
			name:         "FIN",
			style:        closeFIN,
			tedious:      []string{"Connection lost - socket hang up"},
			tediousCause: "socket hang up",
			tsql:         []string{"Error 20017 (severity 9):\n\tUnexpected EOF from the server", "Error 20002 (severity 9):\n\tAdaptive Server connection failed"},
			gomssql:      []string{"EOF"},
			jdbc: "The TCP/IP connection to the host 127.0.0.1, port %d has failed. Error: \"The driver received an unexpected pre-login response. " +
				"Verify the connection properties and check that an instance of SQL Server is running on the host and accepting TCP/IP " +
				"connections at the port. This driver can be used only with SQL Server 2005 or later.\".",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := startCloser(t, tt.style)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			t.Run(ClientTedious, func(t *testing.T) {
				td, err := FindTedious()
				Require(t, ClientTedious, err)
				res, err := td.Run(ctx, TediousConfig{Port: port, User: "sa", Password: "pw", Encrypt: true, Timeout: 20 * time.Second})
				assertFailure(t, res, err, tt.tedious)
				if res.Code != "ESOCKET" || res.Phase != "connect" || res.Cause != tt.tediousCause {
					t.Errorf("code %q phase %q cause %q, want ESOCKET connect %q", res.Code, res.Phase, res.Cause, tt.tediousCause)
				}
			})
			t.Run(ClientTSQL, func(t *testing.T) {
				_, err := FindTSQL()
				Require(t, ClientTSQL, err)
				res, err := RunTSQL(ctx, TSQLConfig{Port: port, User: "sa", Password: "pw", Encryption: "require", Timeout: 20 * time.Second})
				assertFailure(t, res, err, tt.tsql)
				if res.ExitCode != 1 || !strings.HasSuffix(res.Error, "There was a problem connecting to the server") {
					t.Errorf("exit %d, error %q: want exit 1 and tsql's closing line", res.ExitCode, res.Error)
				}
			})
			t.Run(ClientGoMSSQLDB, func(t *testing.T) {
				res, err := RunMSSQL(ctx, MSSQLConfig{Port: port, User: "sa", Password: "pw", Encrypt: "true", Timeout: 20 * time.Second})
				assertFailure(t, res, err, tt.gomssql)
			})
			t.Run(ClientJDBC, func(t *testing.T) {
				j, err := FindJDBC()
				Require(t, ClientJDBC, err)
				res, err := j.Run(ctx, JDBCConfig{Port: port, User: "sa", Password: "pw", Encrypt: "true", Timeout: 20 * time.Second})
				want := tt.jdbc
				if strings.Contains(want, "%d") {
					want = fmt.Sprintf(want, port)
				}
				assertJDBC(t, res, err, want, jdbcException, "08S01", tt.jdbcCause)
			})
			t.Run(ClientODBC, func(t *testing.T) {
				o, err := FindODBC()
				Require(t, ClientODBC, err)
				res, err := o.Run(ctx, ODBCConfig{Port: port, User: "sa", Password: "pw", Encrypt: "yes", Timeout: 20 * time.Second})
				assertODBC(t, res, err, odbcConnFailed(odbcHandshakesBeforeLogin), odbcOperational, "08001", odbcDriverPrefix+odbcHandshakesBeforeLogin)
			})
		})
	}
}

// assertFailure checks that a run produced a failed Result (not a harness
// error) whose Error contains every want.
func assertFailure(t *testing.T, res *Result, err error, want []string) {
	t.Helper()
	if err != nil {
		if errors.Is(err, ErrNotAvailable) {
			Require(t, "client", err)
		}
		t.Fatalf("run: %v (result %+v)", err, res)
	}
	if res.OK {
		t.Fatalf("%s succeeded, want a failure: %+v", res.Client, res)
	}
	for _, w := range want {
		if !strings.Contains(res.Error, w) {
			t.Errorf("%s error %q does not contain %q", res.Client, res.Error, w)
		}
	}
	t.Logf("%s error (%v): %q (cause %q)", res.Client, res.Elapsed.Round(time.Millisecond), res.Error, res.Cause)
}

// startSilent listens on loopback, accepts and never answers: a server whose
// workers never pick up the login (scenario delayed-accept). Connections are
// held until the test ends.
func startSilent(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// TestSilentServer records each client's own timeout error when the server
// accepts but never answers PRELOGIN, with the client's login timeout set
// to 2 s; and checks that the runners' own hard limits end a client that
// would wait longer.
func TestSilentServer(t *testing.T) {
	port := startSilent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run(ClientTedious, func(t *testing.T) {
		td, err := FindTedious()
		Require(t, ClientTedious, err)
		res, err := td.Run(ctx, TediousConfig{Port: port, User: "sa", Password: "pw", Encrypt: true, ConnectTimeout: 2000})
		assertFailure(t, res, err, []string{"Failed to connect to 127.0.0.1:" + strconv.Itoa(port) + " in 2000ms"})
		if res.Code != "ETIMEOUT" {
			t.Errorf("code %q, want ETIMEOUT", res.Code)
		}
		// client.js's own limit, below tedious's connect timeout.
		res, err = td.Run(ctx, TediousConfig{Port: port, User: "sa", Password: "pw", Encrypt: true, ConnectTimeout: 60000, Timeout: 2 * time.Second})
		assertFailure(t, res, err, []string{"client.js: no result within 2000 ms (hard timeout)"})
		if res.Code != "EHARDTIMEOUT" {
			t.Errorf("code %q, want EHARDTIMEOUT", res.Code)
		}
	})
	t.Run(ClientTSQL, func(t *testing.T) {
		_, err := FindTSQL()
		Require(t, ClientTSQL, err)
		res, err := RunTSQL(ctx, TSQLConfig{Port: port, User: "sa", Password: "pw", Conf: []string{"connect timeout = 2"}})
		assertFailure(t, res, err, []string{"Error 20003 (severity 6):\n\tAdaptive Server connection timed out"})
		// The runner's limit, below FreeTDS's connect timeout.
		res, err = RunTSQL(ctx, TSQLConfig{Port: port, User: "sa", Password: "pw", Conf: []string{"connect timeout = 60"}, Timeout: 2 * time.Second})
		if !errors.Is(err, ErrTimeout) || res == nil || res.OK || res.ExitCode != -1 {
			t.Errorf("RunTSQL past its timeout: err %v, result %+v; want ErrTimeout, killed", err, res)
		}
	})
	t.Run(ClientGoMSSQLDB, func(t *testing.T) {
		res, err := RunMSSQL(ctx, MSSQLConfig{Port: port, User: "sa", Password: "pw", Encrypt: "true", Timeout: 2 * time.Second})
		assertFailure(t, res, err, []string{"i/o timeout"})
	})
	t.Run(ClientJDBC, func(t *testing.T) {
		j, err := FindJDBC()
		Require(t, ClientJDBC, err)
		res, err := j.Run(ctx, JDBCConfig{Port: port, User: "sa", Password: "pw", Encrypt: "true", LoginTimeout: 2})
		assertJDBC(t, res, err, "Read timed out", jdbcException, "08S01", "java.net.SocketTimeoutException: Read timed out")
		// The runner's limit, below the driver's login timeout: the JVM
		// is killed, and the next run gets a fresh one.
		res, err = j.Run(ctx, JDBCConfig{Port: port, User: "sa", Password: "pw", Encrypt: "true", LoginTimeout: 60, Timeout: 2 * time.Second})
		if !errors.Is(err, ErrTimeout) || res == nil || res.OK {
			t.Errorf("JDBC past its timeout: err %v, result %+v; want ErrTimeout", err, res)
		}
		res, err = j.Run(ctx, JDBCConfig{Port: port, User: "sa", Password: "pw", Encrypt: "true", LoginTimeout: 1})
		assertJDBC(t, res, err, "Read timed out", jdbcException, "08S01", "java.net.SocketTimeoutException: Read timed out")
	})
	t.Run(ClientODBC, func(t *testing.T) {
		o, err := FindODBC()
		Require(t, ClientODBC, err)
		res, err := o.Run(ctx, ODBCConfig{Port: port, User: "sa", Password: "pw", Encrypt: "yes", LoginTimeout: 2})
		assertODBC(t, res, err, odbcConnFailed("TCP Provider: Timeout error [258]. "), odbcOperational, "08001", "")
		res, err = o.Run(ctx, ODBCConfig{Port: port, User: "sa", Password: "pw", Encrypt: "yes", LoginTimeout: 60, Timeout: 2 * time.Second})
		if !errors.Is(err, ErrTimeout) || res == nil || res.OK || res.ExitCode != -1 {
			t.Errorf("ODBC past its timeout: err %v, result %+v; want ErrTimeout, killed", err, res)
		}
	})
}
