package proxy

import (
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/tds"
)

// BenchmarkWatcherLogin feeds the chunks of one real go-mssqldb login, as
// a proxy session saw them, through a fresh watcher per iteration: the
// watcher's allocations per login (issue 17). The session's part (observe,
// the decider, the record's copy at the end) is BenchmarkSessionLogin. Run
// with: go test -run '^$' -bench 'WatcherLogin|SessionLogin' ./proxy/
func BenchmarkWatcherLogin(b *testing.B) {
	for _, mode := range []string{"true", "strict"} {
		chunks := captureLogin(b, mode)
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := &Record{Start: time.Unix(0, 0), Watching: true}
				w := newWatcher(rec, benchNow, DefaultMaxNegotiationBuffer)
				for _, c := range chunks {
					w.feed(c.dir, c.b)
				}
				if !w.done {
					b.Fatal("the login did not end the watcher")
				}
			}
		})
	}
}

// BenchmarkSessionLogin is BenchmarkWatcherLogin through session.observe,
// with a decider that has no rule for the connection (a proxy with faults
// configured), and the record's copy that finish hands on.
func BenchmarkSessionLogin(b *testing.B) {
	p, err := New(Config{Name: "bench", Listen: "127.0.0.1:0", Upstream: "127.0.0.1:1"}, Options{Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for _, mode := range []string{"true", "strict"} {
		chunks := captureLogin(b, mode)
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s := &session{p: p, id: 1, cd: noRuleDecider{}}
				s.rec = Record{ID: 1, Proxy: "bench", Start: time.Unix(0, 0), Watching: true, Phase: PhaseAccept}
				s.rec.Phases = []PhaseMark{{Phase: PhaseAccept}}
				s.w = newWatcher(&s.rec, benchNow, DefaultMaxNegotiationBuffer)
				s.watching.Store(true)
				for _, c := range chunks {
					s.observe(c.dir, c.b)
				}
				if s.watching.Load() {
					b.Fatal("the login did not end the watcher")
				}
				_ = s.rec.Clone()
			}
		})
	}
}

func benchNow() time.Time { return time.Unix(1, 0) }

// noRuleDecider answers every event with no verdict.
type noRuleDecider struct{}

func (noRuleDecider) Decide(*Event, *Record) Verdict { return Verdict{} }

// captureLogin runs one go-mssqldb login (encrypt=true: TDS 7.x with TLS
// inside PRELOGIN; strict: TDS 8.0) through a proxy in front of the
// emulator and returns the chunks the session's watcher saw, in order.
func captureLogin(tb testing.TB, encrypt string) []chunk {
	tb.Helper()
	emu := testkit.StartEmulator(tb, emulator.Config{Encrypt: tds.EncryptOff})
	p, err := New(Config{Name: "capture", Listen: "127.0.0.1:0", Upstream: emu.Addr()}, Options{Logger: zap.NewNop()})
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	var chunks []chunk
	p.chunkHook = func(dir Direction, b []byte) {
		mu.Lock()
		chunks = append(chunks, chunk{dir, append([]byte(nil), b...)})
		mu.Unlock()
	}
	if err := p.Start(); err != nil {
		tb.Fatal(err)
	}
	defer p.Close()
	var extra url.Values
	if encrypt == "strict" {
		f := filepath.Join(tb.TempDir(), "ca.pem")
		if err := os.WriteFile(f, emu.CertificatePEM(), 0o600); err != nil {
			tb.Fatal(err)
		}
		extra = url.Values{"certificate": {f}, "hostNameInCertificate": {"localhost"}}
	}
	if _, err := testkit.SelectOne(tb, testkit.GoDSN(p.Addr().String(), encrypt, extra), testkit.Query{}); err != nil {
		tb.Fatal(err)
	}
	// The watcher stops at the login response; the query after it is not
	// shown to it, so the chunks are complete once the query returned.
	mu.Lock()
	defer mu.Unlock()
	return chunks
}
