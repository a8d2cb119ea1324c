package soak_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/soak"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// FuzzRuleSpec decodes a fault rule as the admin API does (JSON), compiles
// it, installs it and drives it through every phase of a connection with
// real hellos. Nothing may panic; an invalid rule is a RuleError naming
// it; a valid rule survives a JSON round trip; a stage never blocks on the
// fake clock. It lives here because package faults' own tests are not
// ours to edit, and a test in package proxy cannot import faults.
func FuzzRuleSpec(f *testing.F) {
	for _, b := range ruleSeeds(f) {
		f.Add(b)
	}
	ch, sh := realHellos(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		spec, err := faults.ParseRuleSpec(b)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if err := faults.Compile([]faults.RuleSpec{spec}); err != nil {
			var re *faults.RuleError
			if !errors.As(err, &re) || re.Index != 0 || err.Error() == "" {
				t.Fatalf("Compile error %T %q is not a RuleError for rule 0", err, err)
			}
			return
		}
		j, err := json.Marshal(spec)
		if err != nil {
			t.Fatalf("a valid rule does not marshal: %v", err)
		}
		back, err := faults.ParseRuleSpec(j)
		if err != nil {
			t.Fatalf("round trip: %v\n%s", err, j)
		}
		if err := faults.Compile([]faults.RuleSpec{back}); err != nil {
			t.Fatalf("round trip no longer compiles: %v\n%s", err, j)
		}
		// The first marshal may drop what means nothing (an empty clients
		// list makes match non-zero but encodes as {}); from then on the
		// JSON is stable.
		j2, _ := json.Marshal(back)
		again, err := faults.ParseRuleSpec(j2)
		if err != nil {
			t.Fatalf("second round trip: %v\n%s", err, j2)
		}
		if j3, _ := json.Marshal(again); string(j3) != string(j2) {
			t.Fatalf("round trip changed the rule:\n%s\n%s", j2, j3)
		}

		clk := faults.NewFakeClock(time.Unix(1_700_000_000, 0))
		eng := faults.NewEngine(clk)
		if err := eng.SetRules("p", []faults.RuleSpec{spec}); err != nil {
			t.Fatalf("SetRules after Compile: %v", err)
		}
		d := eng.Decider("p")
		if g, ok := d.(proxy.AcceptGate); ok {
			g.BeforeAccept()
		}
		for seq := uint64(1); seq <= 3; seq++ {
			cd := d.Connect(proxy.ConnInfo{ID: seq, Proxy: "p", Client: netip.MustParseAddrPort("127.0.0.10:5000"), Seq: seq, At: clk.Now()})
			if cd == nil {
				continue
			}
			drive(t, cd, ch, sh)
		}
	})
}

// drive feeds every phase to a connection decider and runs what it attaches.
func drive(t *testing.T, cd proxy.ConnDecider, ch *tlsbridge.ClientHello, sh *tlsbridge.ServerHello) {
	t.Helper()
	rec := &proxy.Record{Protocol: "tds7", Prelogin: &proxy.PreloginInfo{Client: &proxy.PreloginSide{Instance: "MSSQLSERVER"}},
		TLS: &proxy.TLSInfo{Wrapped: true, CipherSuite: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", ClientHello: &proxy.ClientHelloInfo{SNI: "db.example.com"}}}
	phases := []proxy.Phase{proxy.PhaseAccept, proxy.PhasePreloginRequest, proxy.PhasePreloginResponse, proxy.PhaseTLSClientHello,
		proxy.PhaseTLSServerHello, proxy.PhaseTLSClientFinished, proxy.PhaseTLSServerFinished, proxy.PhaseLogin7,
		proxy.PhaseLoginResponse, proxy.PhaseEstablished}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for i, p := range phases {
		ev := &proxy.Event{Phase: p, Dir: proxy.Direction(i % 2)}
		if i >= 3 {
			ev.ClientHello = ch
		}
		if i >= 4 {
			ev.ServerHello = sh
		}
		v := cd.Decide(ev, rec)
		if v.Close {
			switch v.Style {
			case proxy.StyleRST, proxy.StyleFIN, proxy.StyleAlert:
			default:
				t.Fatalf("close with style %q", v.Style)
			}
			return
		}
		if v.Delay < 0 {
			t.Fatalf("negative delay %v", v.Delay)
		}
		for _, ds := range v.Stages {
			emitted := 0
			_, err := ds.Stage.Forward(ctx, make([]byte, 1500), func(b []byte) error { emitted += len(b); return nil })
			if err != nil && ctx.Err() != nil {
				t.Fatalf("stage %T blocked on the fake clock", ds.Stage)
			}
			if emitted > 1500 {
				t.Fatalf("stage %T emitted %d bytes of 1500", ds.Stage, emitted)
			}
		}
	}
}

// ruleSeeds: every rule of faults-example.yaml and of the soak, as JSON.
func ruleSeeds(f *testing.F) [][]byte {
	f.Helper()
	path := filepath.Join(f.TempDir(), "faults.yaml")
	if err := os.WriteFile(path, configs.FaultsExample(), 0o600); err != nil {
		f.Fatal(err)
	}
	for _, k := range configs.EnvKeys() {
		f.Setenv(configs.EnvVar(k), "")
	}
	cfg, err := configs.Load(path)
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, p := range cfg.Proxies {
		specs, err := faults.RuleSpecsFromMaps(p.Faults)
		if err != nil {
			f.Fatal(err)
		}
		for _, s := range specs {
			b, err := json.Marshal(s)
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, b)
		}
	}
	for _, sc := range soak.Scenarios() {
		r := sc.Rule
		r.Name = sc.Name
		r.Match.Clients = []string{sc.Addr.String()}
		b, err := json.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	if len(out) < 5 {
		f.Fatalf("only %d seed rules", len(out))
	}
	out = append(out,
		[]byte(`{"name":"w","action":"latency","options":{"delay":"1h"},"match":{"window":{"every":"1s","for":"2s"}}}`),
		[]byte(`{"name":"x","scenario":"dhe-leading-zero","options":{"rate":"0.5"},"match":{"probability":0.5,"every":2}}`),
		[]byte(`{"name":"y","action":"bandwidth","options":{"rate":"1B/s"},"direction":"downstream","phase":"login7"}`),
		[]byte(`{"name":"z","action":"slicer","options":{"average_size":"1","delay":"1ns"},"close":"alert:99"}`),
		[]byte(`{"name":"u","unknown":1}`),
	)
	return out
}

// realHellos parses the ClientHello of Go 1.26 and the ServerHello of an
// OpenSSL DHE handshake from tlsbridge's captures.
func realHellos(f *testing.F) (*tlsbridge.ClientHello, *tlsbridge.ServerHello) {
	f.Helper()
	first := func(name string, dir tlsbridge.Direction, typ tlsbridge.HandshakeType) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "tlsbridge", "testdata", "handshakes", name))
		if err != nil {
			f.Fatal(err)
		}
		evs, _ := tlsbridge.NewStream(dir).Feed(b)
		for _, ev := range evs {
			if ev.Kind == tlsbridge.EventHandshake && ev.Handshake.Type == typ {
				return ev.Handshake.Raw
			}
		}
		f.Fatalf("%s: no %v", name, typ)
		return nil
	}
	ch, err := tlsbridge.ParseClientHello(first("clienthello-go126.bin", tlsbridge.ClientToServer, tlsbridge.HandshakeClientHello))
	if err != nil {
		f.Fatal(err)
	}
	sh, err := tlsbridge.ParseServerHello(first("tls12-dhe-openssl30-s2c.bin", tlsbridge.ServerToClient, tlsbridge.HandshakeServerHello))
	if err != nil {
		f.Fatal(err)
	}
	return ch, sh
}
