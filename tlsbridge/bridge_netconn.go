package tlsbridge

import (
	"net"
	"sync"
	"time"
)

// prefixConn returns pre before reading from Conn.
type prefixConn struct {
	net.Conn
	pre []byte
}

// NetConn returns the wrapped conn (the DHE engine finds the TCP conn
// through it to reset).
func (c *prefixConn) NetConn() net.Conn { return c.Conn }

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// maxCapture bounds what a captureConn keeps: a ClientHello and the
// server's first flight fit easily.
const maxCapture = 64 << 10

// captureConn keeps the first bytes read and written while capturing, and
// can swallow alert records written through it (the "rst" close style).
type captureConn struct {
	net.Conn
	mu         sync.Mutex
	replay     []byte // bytes already read from Conn, returned first
	capture    bool
	rbuf, wbuf []byte
	dropAlerts bool
	alert      []byte // the last alert record swallowed

	// lastRead is when the last read from Conn returned bytes; firstHS
	// when the first write of a TLS handshake record (RFC 5246 §6.2.1
	// content type 22) returned; lastWrite when the last write returned.
	// The bridge reads them when its handshake ends (StepTimes).
	lastRead, firstHS, lastWrite time.Time
}

// NetConn returns the wrapped conn (the DHE engine finds the TCP conn
// through it to reset).
func (c *captureConn) NetConn() net.Conn { return c.Conn }

func (c *captureConn) Read(b []byte) (int, error) {
	var n int
	var err error
	fromConn := len(c.replay) == 0
	if !fromConn {
		n = copy(b, c.replay)
		c.replay = c.replay[n:]
	} else {
		n, err = c.Conn.Read(b)
	}
	c.mu.Lock()
	if n > 0 && fromConn {
		c.lastRead = time.Now()
	}
	if c.capture && len(c.rbuf) < maxCapture {
		c.rbuf = append(c.rbuf, b[:min(n, maxCapture-len(c.rbuf))]...)
	}
	c.mu.Unlock()
	return n, err
}

func (c *captureConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.capture && len(c.wbuf) < maxCapture {
		c.wbuf = append(c.wbuf, b[:min(len(b), maxCapture-len(c.wbuf))]...)
	}
	drop := c.dropAlerts && len(b) > 0 && b[0] == byte(ContentAlert)
	if !drop && len(b) > 0 && b[0] == byte(ContentAlert) {
		c.alert = append(c.alert[:0], b...)
	}
	c.mu.Unlock()
	if drop {
		return len(b), nil
	}
	n, err := c.Conn.Write(b)
	if n > 0 {
		now := time.Now()
		c.mu.Lock()
		if c.firstHS.IsZero() && b[0] == byte(ContentHandshake) {
			c.firstHS = now
		}
		c.lastWrite = now
		c.mu.Unlock()
	}
	return n, err
}

// times returns lastRead, firstHS and lastWrite.
func (c *captureConn) times() (lastRead, firstHS, lastWrite time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastRead, c.firstHS, c.lastWrite
}

func (c *captureConn) captured() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.rbuf...)
}

func (c *captureConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.wbuf...)
}

func (c *captureConn) stopCapture() {
	c.mu.Lock()
	c.capture = false
	c.mu.Unlock()
}

func (c *captureConn) setDropAlerts(on bool) {
	c.mu.Lock()
	c.dropAlerts = on
	c.mu.Unlock()
}

func (c *captureConn) lastAlert() (Alert, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.alert) == RecordHeaderLen+2 {
		a, err := ParseAlert(c.alert[RecordHeaderLen:])
		return a, err == nil
	}
	return Alert{}, false
}

func closeWrite(c net.Conn) {
	if cw, ok := unwrapTCP(c).(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// resetConn closes c with a TCP reset (SO_LINGER 0), the close that becomes
// error 10054 on Windows.
func resetConn(c net.Conn) {
	if tc, ok := unwrapTCP(c).(interface{ SetLinger(int) error }); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func unwrapTCP(c net.Conn) net.Conn {
	for {
		switch x := c.(type) {
		case *prefixConn:
			c = x.Conn
		case *captureConn:
			c = x.Conn
		case *FramedConn:
			c = x.Raw()
		default:
			return c
		}
	}
}
