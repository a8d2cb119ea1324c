package control_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/msdsn"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/control/client"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// newInstance returns an Instance closed when the test ends.
func newInstance(t *testing.T, opts control.Options) *control.Instance {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	in, err := control.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

// addProxy starts a proxy on a free loopback port and returns its address.
func addProxy(t *testing.T, in *control.Instance, name, upstream string) string {
	t.Helper()
	if err := in.AddProxy(proxy.Config{Name: name, Listen: "127.0.0.1:0", Upstream: upstream}, nil); err != nil {
		t.Fatal(err)
	}
	pi, err := in.Proxy(name)
	if err != nil {
		t.Fatal(err)
	}
	return pi.Addr
}

// proxyConfig is a proxy on a free loopback port.
func proxyConfig(name, upstream string) proxy.Config {
	return proxy.Config{Name: name, Listen: "127.0.0.1:0", Upstream: upstream}
}

// serveAdmin serves in's admin API on a free loopback port and returns its
// base URL.
func serveAdmin(t *testing.T, in *control.Instance, token string) string {
	t.Helper()
	addr, err := in.ServeAdmin("127.0.0.1:0", token)
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + addr.String()
}

// sqlClient is one go-mssqldb connector bound to a local loopback address,
// so fault rules can match it by match.clients.
type sqlClient struct {
	conn  *mssql.Connector
	local net.IP
	// dialed records the local address of the last connection dialled.
	dialed chan string
}

// dialer dials from a fixed local address and reports the local port.
type dialer struct {
	nd     net.Dialer
	dialed chan string
}

func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.nd.DialContext(ctx, network, addr)
	if err == nil {
		select {
		case d.dialed <- c.LocalAddr().String():
		default:
		}
	}
	return c, err
}

// newSQLClient builds a go-mssqldb connector for proxyAddr that dials from
// local (nil: any). encrypt is the DSN's encrypt value ("false": TLS for
// the login only; "disable": no TLS, LOGIN7 in plaintext).
func newSQLClient(t *testing.T, proxyAddr string, local net.IP, user, password, encrypt string) *sqlClient {
	t.Helper()
	dsn := testkit.GoMSSQL{User: user, Password: password, Encrypt: encrypt}.DSN(proxyAddr)
	cfg, err := msdsn.Parse(dsn)
	if err != nil {
		t.Fatalf("DSN: %v", errors.Unwrap(err)) // the DSN holds the password
	}
	c := mssql.NewConnectorConfig(cfg)
	d := &dialer{dialed: make(chan string, 1)}
	d.nd.Timeout = 5 * time.Second
	if local != nil {
		d.nd.LocalAddr = &net.TCPAddr{IP: local}
	}
	c.Dialer = d
	return &sqlClient{conn: c, local: local, dialed: d.dialed}
}

// lastLocal returns the local address of the connection just dialled, or
// "" when none was.
func (c *sqlClient) lastLocal() string {
	select {
	case a := <-c.dialed:
		return a
	default:
		return ""
	}
}

// connect opens one connection (one TDS login).
func (c *sqlClient) connect(ctx context.Context) (driver.Conn, error) {
	return c.conn.Connect(ctx)
}

// query runs q on conn, reading every row (pausing pause every 50 rows, to
// keep a stream in flight), and returns the row count.
func query(ctx context.Context, conn driver.Conn, q string, pause time.Duration) (int, error) {
	pc, ok := conn.(driver.ConnPrepareContext)
	if !ok {
		return 0, fmt.Errorf("%T is not a ConnPrepareContext", conn)
	}
	stmt, err := pc.PrepareContext(ctx, q)
	if err != nil {
		return 0, err
	}
	defer stmt.Close()
	sq, ok := stmt.(driver.StmtQueryContext)
	if !ok {
		return 0, fmt.Errorf("%T is not a StmtQueryContext", stmt)
	}
	// No arguments: go-mssqldb sends a plain SQL batch.
	rows, err := sq.QueryContext(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	n := 0
	for {
		if err := rows.Next(dest); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		n++
		if pause > 0 && n%50 == 0 {
			time.Sleep(pause)
		}
	}
}

// queryOnce connects, runs q and closes: one connection, one record.
func (c *sqlClient) queryOnce(ctx context.Context, q string) (local string, err error) {
	conn, err := c.connect(ctx)
	local = c.lastLocal()
	if err != nil {
		return local, err
	}
	defer conn.Close()
	_, err = query(ctx, conn, q, 0)
	return local, err
}

// loopbackIP returns 127.0.0.n.
func loopbackIP(n int) net.IP { return net.IPv4(127, 0, 0, byte(n)) }

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// newClient returns an admin API client for base.
func newClient(base, token string) *client.Client { return client.New(base, token) }
