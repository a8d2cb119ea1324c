package proxy

import (
	"crypto/tls"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/tds"
)

type chunk struct {
	dir Direction
	b   []byte
}

// captureSession runs one go-mssqldb login through a proxy and returns the
// chunks its watcher saw, in order, with the record it built.
func captureSession(t *testing.T, encrypt string, server tds.Encryption, emuMax uint16) ([]chunk, *Record) {
	t.Helper()
	emu := testkit.StartEmulator(t, emulator.Config{Encrypt: server, TLSMax: emuMax})
	p, rs := startProxy(t, emu.Addr(), Options{})
	var mu sync.Mutex
	var chunks []chunk
	p.chunkHook = func(dir Direction, b []byte) {
		mu.Lock()
		chunks = append(chunks, chunk{dir, append([]byte(nil), b...)})
		mu.Unlock()
	}
	var extra url.Values
	if encrypt == "strict" {
		extra = strictParams(t, emu)
	}
	if _, err := testkit.SelectOne(t, testkit.GoDSN(p.Addr().String(), encrypt, extra), testkit.Query{}); err != nil {
		t.Fatal(err)
	}
	rec := rs.next(t)
	mu.Lock()
	defer mu.Unlock()
	return chunks, rec
}

// replay feeds chunks to a fresh watcher, re-cut into pieces of at most n
// bytes (n 0: as captured), and returns the phases it marked.
func replay(chunks []chunk, n int) (*Record, []Phase) {
	rec := &Record{Start: time.Unix(0, 0), Watching: true}
	w := newWatcher(rec, func() time.Time { return time.Unix(1, 0) }, DefaultMaxNegotiationBuffer)
	var got []Phase
	for _, c := range chunks {
		b := c.b
		for len(b) > 0 {
			k := len(b)
			if n > 0 {
				k = min(k, n)
			}
			for _, ev := range w.feed(c.dir, b[:k]) {
				got = append(got, ev.Phase)
			}
			b = b[k:]
		}
	}
	return rec, got
}

// TLS records split across TCP segments and TDS packets, several handshake
// messages in one record and one message across several records all parse:
// a real session re-cut into every chunk size from 1 byte up gives the same
// phases and the same record as the session itself.
func TestWatcherChunkingInvariance(t *testing.T) {
	for _, tc := range []struct {
		encrypt string
		server  tds.Encryption
		max     uint16
	}{
		{"disable", tds.EncryptOff, 0},
		{"false", tds.EncryptOff, 0},
		{"true", tds.EncryptOff, 0},
		{"true", tds.EncryptOn, tls.VersionTLS13},
		{"strict", tds.EncryptOff, 0},
	} {
		t.Run(tc.encrypt, func(t *testing.T) {
			chunks, live := captureSession(t, tc.encrypt, tc.server, tc.max)
			ref, refPhases := replay(chunks, 0)
			want := phases(live)
			want = want[1 : len(want)-1] // tcp.accept and closed come from the session
			if !slices.Equal(refPhases, want) {
				t.Fatalf("replay phases %v, live %v", refPhases, want)
			}
			for _, n := range []int{1, 2, 3, 5, 7, 8, 13, 100, 1000} {
				rec, got := replay(chunks, n)
				if !slices.Equal(got, refPhases) {
					t.Errorf("chunk size %d: phases %v, want %v", n, got, refPhases)
				}
				if len(rec.ParseIssues) != 0 {
					t.Errorf("chunk size %d: parse issues %+v", n, rec.ParseIssues)
				}
				if (rec.TLS == nil) != (ref.TLS == nil) || rec.TLS != nil && (rec.TLS.Version != ref.TLS.Version || rec.TLS.ClientHello.JA4 != ref.TLS.ClientHello.JA4) {
					t.Errorf("chunk size %d: TLS record differs", n)
				}
			}
		})
	}
}
