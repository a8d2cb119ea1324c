package main

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// The README's `tdsproxy emulate --dhe ...` commands (the real form of
// scenarios 3 and 5) start, and a client that strips the shared secret (the
// DHE engine's, as OpenSSL, GnuTLS and JSSE do) meets what the README says:
// negotiates TLS_DHE_RSA in the named group, and against a padding server
// in lz2049 is reset after its Finished. A grinding client fails against
// every padding server.
func TestReadmeDHEEmulateCommands(t *testing.T) {
	clearEnv(t)
	n := 0
	for _, b := range readmeBlocks(t) {
		if b.lang != "sh" {
			continue
		}
		for _, c := range shellCommands(b.text) {
			// A command run in the background ends in "&".
			fields := strings.Fields(strings.TrimSuffix(strings.TrimSpace(c.text), "&"))
			if len(fields) < 2 || fields[0] != "tdsproxy" || fields[1] != "emulate" || !strings.Contains(c.text, "--dhe ") {
				continue
			}
			n++
			args := replaceFlag(shellWords(t, strings.Join(fields[1:], " "), nil), "--listen", "127.0.0.1:0")
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				addr := startEmulateArgs(t, args)
				group, pad := dhe.DefaultGroup, false
				if i := indexOf(args, "--dhe-group"); i >= 0 {
					group = args[i+1]
				}
				if i := indexOf(args, "--dhe-z"); i >= 0 {
					pad = args[i+1] == "pad"
				}
				st, err := dheHandshake(t, addr, false)
				switch {
				case pad && group == "lz2049":
					if err == nil || !strings.Contains(err.Error(), "connection reset by peer") {
						t.Errorf("against a padding server in lz2049: %v, want a reset after the Finished", err)
					}
				case err != nil && !(pad && st.ZLeadingZero):
					t.Errorf("handshake: %v", err)
				}
				if st.Group != group || !dhe.IsDHESuite(st.CipherSuite) {
					t.Errorf("negotiated %s in %q, want DHE in %s", dhe.CipherSuiteName(st.CipherSuite), st.Group, group)
				}
				if _, err := dheHandshake(t, addr, true); pad && err == nil {
					t.Errorf("a grinding client against a padding server completed")
				}
			})
		}
	}
	if n < 2 {
		t.Errorf("found %d `tdsproxy emulate --dhe` commands in README.md, want the real forms of scenarios 3 and 5", n)
	}
}

// startEmulateArgs runs `tdsproxy emulate` with args until the test ends
// and returns its address.
func startEmulateArgs(t *testing.T, args []string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &testkit.LockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- readmeExec(ctx, out, args...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("emulate did not stop")
		}
	})
	re := regexp.MustCompile(`emulator listening on (\S+)`)
	var addr string
	testkit.WaitForBeforeExit(t, func() bool {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	}, done, 10*time.Second, "tdsproxy "+strings.Join(args, " ")+" to listen")
	return addr
}

// dheHandshake is PRELOGIN (encryption on), then a DHE handshake by the
// engine's client inside PRELOGIN packets (MS-TDS §2.2.6.5), Z stripped.
func dheHandshake(t *testing.T, addr string, grind bool) (dhe.ConnectionState, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	pl := &tds.Prelogin{}
	pl.Set(tds.PreloginVersion, []byte{0, 0, 0, 0, 0, 0})
	pl.Set(tds.PreloginEncryption, []byte{byte(tds.EncryptOn)})
	if err := (&tds.Writer{W: conn}).WriteMessage(tds.PacketPrelogin, pl.Marshal()); err != nil {
		t.Fatal(err)
	}
	if _, err := tds.NewReader(conn).ReadMessage(); err != nil {
		t.Fatalf("PRELOGIN response: %v", err)
	}
	dc := dhe.Client(tlsbridge.NewFramedConn(conn, tlsbridge.RoleClient, tds.DefaultPacketSize),
		&dhe.Config{InsecureSkipVerify: true, Z: dhe.ZStrip, Grind: grind})
	err = dc.Handshake()
	var ae *dhe.AlertError
	if errors.As(err, &ae) {
		t.Logf("alert: %v", ae)
	}
	return dc.ConnectionState(), err
}
