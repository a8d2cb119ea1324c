//go:build linux

package main

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/tdsproxy/tdsproxy/tds"
)

// dsn builds a go-mssqldb URL for addr with the given query parameters.
// The emulator accepts any credentials.
func dsn(addr string, q url.Values) string {
	q.Set("app name", "tdsproxy-bench")
	q.Set("dial timeout", "10")
	u := url.URL{Scheme: "sqlserver", User: url.UserPassword("bench", "bench"), Host: addr, RawQuery: q.Encode()}
	return u.String()
}

// loginOnlyDSN is SQL Server's default session: TLS for LOGIN7 only, then
// plaintext TDS (encrypt=false), with the given packet size (0: the
// driver's default, 4096).
func loginOnlyDSN(addr string, packetSize int) string {
	q := url.Values{}
	q.Set("encrypt", "false")
	q.Set("TrustServerCertificate", "true")
	if packetSize > 0 {
		q.Set("packet size", fmt.Sprint(packetSize))
	}
	return dsn(addr, q)
}

// Login modes of the connection-setup workload.
const (
	modeEncrypt = "encrypt=true"
	modeStrict  = "strict"
)

// verifiedDSN is a fully encrypted session that verifies the emulator's
// certificate: encrypt=true (TDS 7.x, TLS inside PRELOGIN) or strict
// (TDS 8.0, TLS first).
func verifiedDSN(addr, mode, caFile string) string {
	q := url.Values{}
	switch mode {
	case modeStrict:
		q.Set("encrypt", "strict")
	default:
		q.Set("encrypt", "true")
	}
	q.Set("certificate", caFile)
	q.Set("hostNameInCertificate", "localhost")
	return dsn(addr, q)
}

// captureDialer dials plain TCP and remembers the connection, so that after
// go-mssqldb has logged in the harness can use the same socket itself.
type captureDialer struct {
	d    net.Dialer
	mu   sync.Mutex
	last net.Conn
}

func (c *captureDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := c.d.DialContext(ctx, network, addr)
	if err == nil {
		c.mu.Lock()
		c.last = conn
		c.mu.Unlock()
	}
	return conn, err
}

// loggedInConn is a TCP connection on which go-mssqldb completed a real
// login (PRELOGIN, TLS for LOGIN7, LOGIN7, login response) and that
// continues in plaintext TDS; or (drv nil) the TLS connection of the
// harness's own TDS 8.0 strict login (strictLoginRaw).
type loggedInConn struct {
	drv driver.Conn
	raw net.Conn
}

func (l *loggedInConn) Close() error {
	if l.drv == nil {
		return l.raw.Close()
	}
	return l.drv.Close()
}

// loginRaw logs in with go-mssqldb (encrypt=false: login-only TLS) and
// returns the socket under the session.
func loginRaw(ctx context.Context, addr string, packetSize int) (*loggedInConn, error) {
	c, err := mssql.NewConnector(loginOnlyDSN(addr, packetSize))
	if err != nil {
		return nil, err
	}
	d := &captureDialer{d: net.Dialer{Timeout: 10 * time.Second}}
	c.Dialer = d
	drv, err := c.Connect(ctx)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	raw := d.last
	d.mu.Unlock()
	if raw == nil {
		drv.Close()
		return nil, errors.New("login: no connection captured")
	}
	return &loggedInConn{drv: drv, raw: raw}, nil
}

// rawQuery sends text as a SQL batch on the logged-in socket and reads the
// reply as raw TDS packets, parsing only the 8-byte packet headers to find
// the end of the message. It returns the bytes received.
func (l *loggedInConn) rawQuery(text string, packetSize int, buf []byte) (int64, error) {
	w := tds.Writer{W: l.raw, PacketSize: packetSize}
	if err := w.WriteMessage(tds.PacketSQLBatch, tds.AppendSQLBatch(nil, text, 0)); err != nil {
		return 0, fmt.Errorf("sending batch: %w", err)
	}
	var (
		total  int64
		hdr    [tds.HeaderLen]byte
		hlen   int  // bytes of the current header collected
		remain int  // payload bytes left in the current packet
		eom    bool // the current packet ends the message
	)
	for {
		n, err := l.raw.Read(buf)
		total += int64(n)
		b := buf[:n]
		for len(b) > 0 {
			if remain > 0 {
				k := min(remain, len(b))
				remain -= k
				b = b[k:]
				if remain == 0 && eom {
					if len(b) > 0 {
						return total, fmt.Errorf("%d bytes after the end of the reply", len(b))
					}
					return total, nil
				}
				continue
			}
			k := copy(hdr[hlen:], b)
			hlen += k
			b = b[k:]
			if hlen < tds.HeaderLen {
				continue
			}
			hlen = 0
			h, herr := tds.ParseHeader(hdr[:])
			if herr != nil {
				return total, fmt.Errorf("reply: %w", herr)
			}
			remain, eom = h.PayloadLen(), h.Status.EOM()
			if remain == 0 && eom {
				return total, nil
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return total, fmt.Errorf("reading reply after %d bytes: %w", total, err)
		}
	}
}
