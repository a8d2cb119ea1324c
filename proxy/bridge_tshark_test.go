package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"
	"github.com/tdsproxy/tdsproxy/tds"
)

// TestBridgeKeylogTshark checks the key log with an independent decoder:
// tshark captures both legs on loopback and, given --keylog's file,
// decrypts them and finds LOGIN7 and the SELECT 1 batch on each leg.
// Skipped when tshark is missing or cannot capture (no privileges).
func TestBridgeKeylogTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed (apt-get install tshark)")
	}
	p, recs, dir := startBridgeProxy(t, nil)
	pport := proxykit.Port(p)
	_, uport, _ := strings.Cut(p.Config().Upstream, ":")
	pcap := filepath.Join(dir, "cap.pcapng")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A marker port: a connection to it shows in tshark's live output
	// once the capture really runs, and again once everything before it
	// has been written.
	marker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer marker.Close()
	go func() {
		for {
			c, err := marker.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	mport := marker.Addr().(*net.TCPAddr).Port
	capt := exec.CommandContext(ctx, tshark, "-i", "lo", "-l", "-P", "-w", pcap,
		"-f", fmt.Sprintf("tcp port %d or tcp port %s or tcp port %d", pport, uport, mport))
	stdout, _ := capt.StdoutPipe()
	if err := capt.Start(); err != nil {
		t.Skipf("tshark cannot start: %v", err)
	}
	defer func() { capt.Process.Kill(); capt.Wait() }()
	var markers atomic.Int32
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), fmt.Sprint(mport)) {
				markers.Add(1)
			}
		}
	}()
	waitMarker := func() bool {
		n := markers.Load()
		for range 100 {
			if c, err := net.Dial("tcp", marker.Addr().String()); err == nil {
				c.Close()
			}
			if testkit.Poll(func() bool { return markers.Load() > n }, 200*time.Millisecond) {
				return true
			}
		}
		return false
	}
	if !waitMarker() {
		t.Skip("tshark does not capture on lo (privileges?)")
	}
	// TDS 7.x with TLS inside PRELOGIN: Wireshark 4.0's TDS dissector
	// follows that TLS; it has no TDS-over-TLS (TDS 8.0 strict) binding.
	for _, enc := range []string{"true"} {
		if res := runThrough(t, p, enc, bridgePassword, "SELECT 1"); !res.OK {
			t.Fatalf("encrypt=%s: %q", enc, res.Error)
		}
		proxykit.Next(t, recs, 20*time.Second)
	}
	// Everything before the second marker is in the capture file.
	if !waitMarker() {
		t.Fatal("tshark stopped showing packets")
	}
	capt.Process.Signal(syscall.SIGINT)
	capt.Wait()
	keylog := filepath.Join(dir, "keys.log")
	// Wireshark 4.0 decrypts both legs with the key log; its TDS dissector
	// does not dissect what TLS decrypts after a PRELOGIN handshake, so
	// the test reads the decrypted bytes tshark prints (-x) instead.
	for leg, port := range map[string]string{"client": fmt.Sprint(pport), "upstream": uport} {
		out, err := exec.CommandContext(ctx, tshark, "-r", pcap, "-o", "tls.keylog_file:"+keylog,
			"-d", "tcp.port=="+port+",tds", "-Y", "tcp.dstport=="+port, "-x").CombinedOutput()
		if err != nil {
			t.Fatalf("tshark -r: %v\n%s", err, out)
		}
		var login7, selectBatch bool
		for _, plain := range decryptedTLS(string(out)) {
			login7 = login7 || (len(plain) > 8 && plain[0] == byte(tds.PacketLogin7))
			selectBatch = selectBatch || (len(plain) > 8 && plain[0] == byte(tds.PacketSQLBatch) &&
				bytes.Contains(plain, []byte("S\x00E\x00L\x00E\x00C\x00T\x00 \x001\x00")))
		}
		if !login7 || !selectBatch {
			t.Errorf("%s leg: tshark decrypted LOGIN7 %v, SELECT 1 batch %v\n%.3000s", leg, login7, selectBatch, out)
		}
	}
	if err := os.Remove(pcap); err != nil {
		t.Log(err)
	}
}

// decryptedTLS returns the bytes of each "Decrypted TLS (N bytes):" hex
// dump in tshark -x output.
func decryptedTLS(out string) [][]byte {
	var all [][]byte
	var cur []byte
	in := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "Decrypted TLS"):
			if in {
				all = append(all, cur)
			}
			cur, in = nil, true
			continue
		case !in:
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || len(f[0]) != 4 {
			all = append(all, cur)
			in = false
			continue
		}
		for _, h := range f[1:] {
			if len(h) != 2 {
				break
			}
			b, err := hex.DecodeString(h)
			if err != nil {
				break
			}
			cur = append(cur, b[0])
		}
	}
	if in {
		all = append(all, cur)
	}
	return all
}
