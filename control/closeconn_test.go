package control_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// POST /connections/{id}/close?style=rst|fin records the style that went on
// the wire and that the API closed it (issue 18), and the close metric
// follows the record.
func TestCloseConnectionRecordsStyle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	in := newInstance(t, control.Options{})
	addr := addProxy(t, in, "main", ln.Addr().String())
	base := serveAdmin(t, in, "")
	for i, tc := range []struct{ style, wire string }{{"rst", "rst"}, {"fin", "fin"}} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		// Not TDS, and more than the proxy reads at once: bytes are left
		// unread when it closes.
		_, _ = c.Write([]byte(strings.Repeat("x", 40<<10)))
		var id uint64
		testkit.WaitFor(t, func() bool {
			if cs := in.Connections(); len(cs) == 1 {
				id = cs[0].ID
			}
			return id != 0
		}, 5*time.Second, "the connection to be listed")
		st, b := call(t, "POST", base+"/connections/"+itoa(id)+"/close?style="+tc.style, "", "")
		wantStatus(t, st, b, 204, "")
		_, err = io.ReadAll(c)
		wire := "fin"
		if errors.Is(err, syscall.ECONNRESET) {
			wire = "rst"
		} else if err != nil {
			t.Fatalf("%s: the client's read ended with %v", tc.style, err)
		}
		c.Close()
		if wire != tc.wire {
			t.Errorf("style=%s: the client got %s", tc.style, wire)
		}
		var rec *proxy.Record
		testkit.Poll(func() bool {
			if page := in.Records(control.RecordQuery{}); len(page.Records) == i+1 {
				rec = page.Records[i]
			}
			return rec != nil
		}, 10*time.Second)
		if rec == nil || rec.Close == nil {
			t.Fatalf("style=%s: no record with a close", tc.style)
		}
		if rec.Close.By != proxy.SideProxy || string(rec.Close.Kind) != tc.style || !strings.Contains(rec.Close.Reason, "admin API") {
			t.Errorf("style=%s: close = %+v, want by proxy, kind %s, reason naming the admin API", tc.style, rec.Close, tc.style)
		}
		st, b = call(t, "GET", base+"/metrics", "", "")
		series := control.MetricCloses + `{by="proxy",kind="` + tc.style + `",proxy="main"} 1`
		wantStatus(t, st, b, 200, series)
	}
}
