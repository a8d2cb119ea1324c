package testkit

import (
	"io"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/tds"
)

func TestEchoEchoes(t *testing.T) {
	c, err := net.Dial("tcp", StartEcho(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
		t.Fatalf("echo = %q, %v", b, err)
	}
}

func TestSelectOneAgainstEmulator(t *testing.T) {
	emu := StartEmulator(t, emulator.Config{Encrypt: tds.EncryptOff})
	for _, enc := range []string{"disable", "false", "true"} {
		v, err := SelectOne(t, GoDSN(emu.Addr(), enc, nil), Query{})
		if err != nil || v != 1 {
			t.Errorf("encrypt=%s: SELECT 1 = %d, %v", enc, v, err)
		}
	}
	if p := Port(t, emu.Addr()); p <= 0 {
		t.Errorf("Port(%q) = %d", emu.Addr(), p)
	}
}

func TestGoMSSQLDSN(t *testing.T) {
	dsn := GoMSSQL{User: "u", Password: "p w", Encrypt: "strict", Verify: true, Timeout: 1500 * time.Millisecond,
		AppName: "a", Params: url.Values{"dial timeout": {"9"}}}.DSN("127.0.0.1:1433")
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	want := map[string]string{"encrypt": "strict", "TrustServerCertificate": "false", "connection timeout": "2",
		"dial timeout": "9", "app name": "a", "database": "master"}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if pw, _ := u.User.Password(); u.User.Username() != "u" || pw != "p w" || u.Host != "127.0.0.1:1433" {
		t.Errorf("user/host = %v %q", u.User.Username(), u.Host)
	}
	if d := GoDSN("h:1", "", nil); !strings.Contains(d, "encrypt=false") || !strings.Contains(d, "sa:") {
		t.Errorf("GoDSN defaults: %s", d)
	}
}

func TestPollAndWaitFor(t *testing.T) {
	var n atomic.Int32
	WaitFor(t, func() bool { return n.Add(1) >= 3 }, 5*time.Second, "three calls")
	if Poll(func() bool { return false }, 30*time.Millisecond) {
		t.Error("Poll of a false condition returned true")
	}
	var b LockedBuffer
	b.Write([]byte("ab"))
	if b.String() != "ab" || b.Len() != 2 {
		t.Errorf("LockedBuffer = %q", b.String())
	}
}

func TestWaitForBeforeExitSucceeds(t *testing.T) {
	exited := make(chan error, 1)
	var n atomic.Int32
	WaitForBeforeExit(t, func() bool { return n.Add(1) >= 2 }, exited, 5*time.Second, "two calls")
}
