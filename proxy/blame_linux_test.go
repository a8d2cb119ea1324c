//go:build linux

package proxy_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// Who closed first is blamed on the side that closed, on every relay path:
// small messages (a read and a write each) and bulk (buffer-filling reads,
// the rest of each burst spliced), in both directions, whether the quitting
// side resets or half-closes. A killed downloading client once showed as
// "closed by the server" because splice's write error went to the function
// that blames the sender (issue 18).
func TestCloseBlameDuringTransfer(t *testing.T) {
	// The first bytes are not TDS: the proxy stops watching and relays.
	hello := []byte("x not TDS")
	cases := []struct {
		name   string
		closer proxy.Side // the side that quits; the other one sends
	}{
		{"client quits a download", proxy.SideClient},
		{"server quits an upload", proxy.SideServer},
	}
	for _, tc := range cases {
		for _, how := range []string{"rst", "fin"} {
			for _, small := range []bool{false, true} {
				path := "bulk"
				if small {
					path = "small messages"
				}
				t.Run(tc.name+"/"+how+"/"+path, func(t *testing.T) {
					// Three rounds: the wrong blame was a race.
					for range 3 {
						role := func(c *net.TCPConn, me proxy.Side) {
							if me == tc.closer {
								quitAfter(c, how, small)
							} else {
								stream(c, small)
							}
						}
						up := serveUp(t, func(c net.Conn) {
							if _, err := io.ReadFull(c, make([]byte, len(hello))); err != nil {
								return
							}
							role(c.(*net.TCPConn), proxy.SideServer)
						})
						p, recs := wireProxy(t, proxy.Config{Upstream: up}, nil)
						c, err := net.Dial("tcp", p.Addr().String())
						if err != nil {
							t.Fatal(err)
						}
						_ = c.SetDeadline(time.Now().Add(20 * time.Second))
						if _, err := c.Write(hello); err != nil {
							t.Fatal(err)
						}
						role(c.(*net.TCPConn), proxy.SideClient)
						c.Close()
						rec := nextRecord(t, recs)
						if rec.Close == nil || rec.Close.By != tc.closer || string(rec.Close.Kind) != how {
							t.Fatalf("close = %+v, want by %s, kind %s", rec.Close, tc.closer, how)
						}
						if rec.Watching {
							t.Fatal("the record says the proxy was still watching: the relay was not tested")
						}
					}
				})
			}
		}
	}
}

// stream sends until a write fails or the peer's FIN arrives: 1 MiB writes
// as fast as the peer takes them (bulk), or 200-byte messages 1 ms apart.
func stream(c *net.TCPConn, small bool) {
	n, size, gap := 64, 1<<20, time.Duration(0)
	if small {
		n, size, gap = 20000, 200, time.Millisecond
	}
	peerDone := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, c); close(peerDone) }()
	b := make([]byte, size)
	b[0] = 'x'
	for range n {
		select {
		case <-peerDone:
			return
		default:
		}
		if _, err := c.Write(b); err != nil {
			return
		}
		time.Sleep(gap)
	}
}

// quitAfter reads some of the stream, then closes with an RST, or
// half-closes (FIN) and reads on until the sender stops, as a half-closed
// peer may.
func quitAfter(c *net.TCPConn, how string, small bool) {
	n := int64(1 << 20)
	if small {
		n = 50 * 200
	}
	_, _ = io.CopyN(io.Discard, c, n)
	if how == "rst" {
		_ = c.SetLinger(0)
		c.Close()
		return
	}
	_ = c.CloseWrite()
	_, _ = io.Copy(io.Discard, c)
}
