package lab

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/msdsn"

	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// goClientName is how rows name go-mssqldb.
const goClientName = "go-mssqldb"

// attemptTimeout bounds one client connection.
const attemptTimeout = 15 * time.Second

// goClient is a go-mssqldb client set up for one attempt.
type goClient struct {
	// Encrypt is the DSN's encrypt= value; "" means "true" (ON: the whole
	// session in TLS, the TLS handshake inside PRELOGIN packets).
	Encrypt string
	// TLSMin and TLSMax bound the client's TLS versions; 0 keeps
	// go-mssqldb's defaults (TLS 1.2 and up). go-mssqldb has a DSN key
	// for the minimum only (tlsmin), so the lab sets both on
	// msdsn.Config.TLSConfig, as an application would in code.
	TLSMin, TLSMax uint16
	// Suites restricts the TLS 1.0-1.2 cipher suites the client offers.
	Suites []uint16
	// ConnTimeout is the DSN's "connection timeout" in seconds: go-mssqldb
	// applies it to every read and write while connecting. 0 means 5.
	ConnTimeout int
}

// String describes the client for a row.
func (c goClient) String() string {
	var parts []string
	parts = append(parts, "encrypt="+c.encrypt())
	switch {
	case c.TLSMin != 0 && c.TLSMax != 0 && c.TLSMin != c.TLSMax:
		parts = append(parts, tlsbridge.VersionName(c.TLSMin)+"-"+strings.TrimPrefix(tlsbridge.VersionName(c.TLSMax), "TLS "))
	case c.TLSMax != 0:
		parts = append(parts, "up to "+tlsbridge.VersionName(c.TLSMax))
	}
	if len(c.Suites) > 0 {
		parts = append(parts, "suites "+suiteList(c.Suites))
	}
	parts = append(parts, fmt.Sprintf("connection timeout=%d", c.timeout()))
	return goClientName + " v1.11.2, " + strings.Join(parts, ", ")
}

func (c goClient) encrypt() string {
	if c.Encrypt == "" {
		return "true"
	}
	return c.Encrypt
}

func (c goClient) timeout() int {
	if c.ConnTimeout == 0 {
		return 5
	}
	return c.ConnTimeout
}

// dsn is the connection string for addr, password included: it is handed
// to go-mssqldb only, never logged or stored in a row.
func (c goClient) dsn(addr string) string {
	q := url.Values{}
	q.Set("database", "master")
	q.Set("encrypt", c.encrypt())
	q.Set("TrustServerCertificate", "true")
	q.Set("connection timeout", strconv.Itoa(c.timeout()))
	q.Set("dial timeout", strconv.Itoa(c.timeout()))
	q.Set("app name", "tdsproxy-lab")
	u := url.URL{Scheme: "sqlserver", User: url.UserPassword(labUser, labPassword), Host: addr, RawQuery: q.Encode()}
	return u.String()
}

// localDialer remembers the local address of each connection it makes, so
// that the proxy's record of the connection can be found.
type localDialer struct {
	mu     sync.Mutex
	locals []string
}

func (d *localDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.locals = append(d.locals, c.LocalAddr().String())
	d.mu.Unlock()
	return c, nil
}

func (d *localDialer) first() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.locals) == 0 {
		return ""
	}
	return d.locals[0]
}

// run connects through the env's proxy, runs SELECT 1 and returns the
// attempt with the proxy's record of the connection.
func (c goClient) run(ctx context.Context, e *env) Attempt {
	a := Attempt{Client: c.String()}
	cfg, err := msdsn.Parse(c.dsn(e.addr()))
	if err != nil {
		a.Error = "go-mssqldb DSN: " + err.Error()
		return a
	}
	if cfg.TLSConfig == nil {
		cfg.TLSConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the lab trusts its own emulator
	}
	if c.TLSMin != 0 {
		cfg.TLSConfig.MinVersion = c.TLSMin
	}
	if c.TLSMax != 0 {
		cfg.TLSConfig.MaxVersion = c.TLSMax
	}
	if c.Suites != nil {
		cfg.TLSConfig.CipherSuites = append([]uint16(nil), c.Suites...)
	}
	conn := mssql.NewConnectorConfig(cfg)
	d := &localDialer{}
	conn.Dialer = d
	db := sql.OpenDB(conn)
	// No idle connection: releasing it closes it, so the proxy finishes the
	// record at once.
	db.SetMaxIdleConns(0)
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	start := time.Now()
	var v int
	err = db.QueryRowContext(actx, "SELECT 1").Scan(&v)
	_ = db.Close()
	a.Elapsed = time.Since(start)
	if err != nil {
		a.Error = err.Error()
	} else {
		a.Connected = true
		a.Result = fmt.Sprintf("SELECT 1 = %d", v)
	}
	local := d.first()
	if local == "" {
		return a // never reached the proxy
	}
	rec, err := e.recs.wait(ctx, local)
	if err != nil {
		a.Error = joinErr(a.Error, "proxy: "+err.Error())
		return a
	}
	a.Record = rec
	return a
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func suiteList(ids []uint16) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = tlsbridge.CipherSuiteName(id)
	}
	return strings.Join(out, ",")
}

// jdbcTLSPrefix is how the JDBC driver starts a TLS handshake failure
// (docs/clients.md).
var jdbcTLSPrefix = regexp.MustCompile(`^"encrypt" property is set to "[^"]*" and "trustServerCertificate" property is set to "[^"]*" but the driver could not establish a secure connection to SQL Server by using Secure Sockets Layer \(SSL\) encryption: `)

// addrPair matches the "127.0.0.1:51234->127.0.0.1:11433" of a net.OpError.
var addrPair = regexp.MustCompile(`(tcp[46]?) \S+->\S+?:( |$)`)

// shortError makes a client error fit a table cell: connection addresses
// become "...", as docs/protocol.md writes them; the words that matter
// ("connection reset by peer", "i/o timeout") stay.
func shortError(s string) string {
	s = addrPair.ReplaceAllString(s, "$1 ...:$2")
	// The JDBC driver's TLS failures start with a long fixed sentence; the
	// cell keeps its end, which says what happened.
	s = jdbcTLSPrefix.ReplaceAllString(s, "...secure connection to SQL Server ... (SSL) encryption: ")
	s = strings.Join(strings.Fields(s), " ")
	const max = 120
	if len(s) > max {
		s = s[:max-3] + "..."
	}
	return s
}
