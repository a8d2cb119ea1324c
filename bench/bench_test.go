//go:build linux

package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/tds"
)

// TestMain lets the test binary stand in for the bench binary when the
// harness re-executes itself as the hold server.
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == holdFlag {
		os.Exit(holdMain())
	}
	os.Exit(m.Run())
}

// TestSmoke runs the whole harness with quick sizes on the paths that need
// nothing installed (direct, tdsproxy). It builds tdsproxy and opens
// thousands of loopback connections, so it runs only when
// TDSPROXY_BENCH_SMOKE=1; `make test` never runs the benchmark. It asserts
// that every workload produced its table, never a timing.
func TestSmoke(t *testing.T) {
	if os.Getenv("TDSPROXY_BENCH_SMOKE") != "1" {
		t.Skip("set TDSPROXY_BENCH_SMOKE=1 to run the benchmark harness smoke test")
	}
	t.Cleanup(killAll)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sel, err := parseOnly("direct,tdsproxy")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	o := options{reps: 1, quick: true, workDir: t.TempDir()}
	if err := run(ctx, o, sel, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"### Bulk throughput", "### Request/response latency", "### Connection setup", "### Memory", "### Targets", "| tdsproxy |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestParseOnly(t *testing.T) {
	for _, tc := range []struct {
		in        string
		workloads []string
		paths     []string
		wantErr   bool
	}{
		{in: ""},
		{in: "bulk,haproxy", workloads: []string{wlBulk}, paths: []string{pathHAProxy}},
		{in: " memory , tdsproxy-faults ,", workloads: []string{wlMemory}, paths: []string{pathFaults}},
		{in: "bulk,nginx", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			sel, err := parseOnly(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseOnly(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			for _, w := range allWorkloads {
				want := len(tc.workloads) == 0 || contains(tc.workloads, w)
				if sel.workload(w) != want {
					t.Errorf("workload(%s) = %v, want %v", w, !want, want)
				}
			}
			for _, p := range allPaths {
				want := len(tc.paths) == 0 || contains(tc.paths, p)
				if sel.path(p) != want {
					t.Errorf("path(%s) = %v, want %v", p, !want, want)
				}
			}
		})
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestStatistics(t *testing.T) {
	t.Run("median", func(t *testing.T) {
		for _, tc := range []struct {
			in   []float64
			want float64
		}{
			{[]float64{3}, 3},
			{[]float64{5, 1, 3}, 3},
			{[]float64{4, 1, 3, 2}, 2.5},
		} {
			if got := median(tc.in); got != tc.want {
				t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
			}
		}
	})
	t.Run("percentile", func(t *testing.T) {
		d := make([]time.Duration, 100)
		for i := range d {
			d[i] = time.Duration(i+1) * time.Microsecond
		}
		if got := pct(d, 0.50); got != 50*time.Microsecond {
			t.Errorf("p50 = %v, want 50µs", got)
		}
		if got := pct(d, 0.99); got != 99*time.Microsecond {
			t.Errorf("p99 = %v, want 99µs", got)
		}
	})
	t.Run("rows per stream cover the total", func(t *testing.T) {
		for _, streams := range []int{1, 8} {
			rows := rowsPerStream(1<<30, streams)
			if got := int64(rows) * rowBytes * int64(streams); got < 1<<30 {
				t.Errorf("%d streams × %d rows × %d bytes = %d < 1 GiB", streams, rows, rowBytes, got)
			}
		}
	})
}

// TestRawQueryFindsEndOfReply feeds rawQuery a reply split across packets
// and reads, over net.Pipe, and checks it stops exactly at the EOM packet.
func TestRawQueryFindsEndOfReply(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	payload := bytes.Repeat([]byte("r"), 10000)
	w := tds.Writer{PacketSize: 512}
	reply := w.AppendMessage(nil, tds.PacketReply, 0, payload)
	go func() {
		// Read the batch, then answer in awkward 7-byte writes so headers
		// straddle reads.
		r := tds.NewReader(server)
		if _, err := r.ReadMessage(); err != nil {
			return
		}
		for b := reply; len(b) > 0; {
			n := min(7, len(b))
			if _, err := server.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
	}()
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	l := &loggedInConn{raw: client}
	n, err := l.rawQuery("SELECT large(2, 5000)", 4096, make([]byte, 64))
	if err != nil {
		t.Fatalf("rawQuery: %v", err)
	}
	if n != int64(len(reply)) {
		t.Errorf("rawQuery read %d bytes, want %d", n, len(reply))
	}
}

func TestConfigs(t *testing.T) {
	t.Run("haproxy", func(t *testing.T) {
		c := haproxyConfig("127.0.0.1:1", "127.0.0.1:2", 9900)
		for _, want := range []string{"mode tcp", "bind 127.0.0.1:1", "server upstream 127.0.0.1:2", "maxconn 9900"} {
			if !strings.Contains(c, want) {
				t.Errorf("haproxy config lacks %q:\n%s", want, c)
			}
		}
	})
	t.Run("faults match no benchmark client", func(t *testing.T) {
		c := faultsConfig("127.0.0.1:1", "127.0.0.1:2")
		if strings.Count(c, faultsClient) != 2 {
			t.Errorf("want both rules limited to %s:\n%s", faultsClient, c)
		}
		if strings.HasPrefix(faultsClient, "127.") {
			t.Errorf("the armed rules must not match loopback clients, yet they name %s", faultsClient)
		}
	})
}
