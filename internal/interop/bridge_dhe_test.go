package interop

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// The DHE scenarios in bridge mode, real form: the client leg is the DHE
// engine as the failing Windows server (prefers DHE, pads the shared
// secret), the upstream leg the emulator over ECDHE. With rate=always (the
// lz2049 group) tedious and FreeTDS, which strip the secret, fail at their
// Finished every time, in their own words, for each close style; the record
// shows the DHE suite, the group and the failure at tls.client_finished.
func TestDHEThroughBridgeRealClients(t *testing.T) {
	type tc struct {
		client string
		run    clientRun
		style  string
		words  []string // in the client's error, cause or TDSDUMP
	}
	cases := []tc{
		{ClientTedious, tediousRun(TediousConfig{Encrypt: true}), "rst", []string{"read ECONNRESET"}},
		{ClientTedious, tediousRun(TediousConfig{Encrypt: true}), "alert:bad_record_mac", []string{"sslv3 alert bad record mac"}},
		{ClientTedious, tediousRun(TediousConfig{Encrypt: true}), "fin", []string{"socket hang up"}},
		{ClientTSQL, tsqlRun(TSQLConfig{Encryption: "require", Dump: true}), "rst", []string{"Adaptive Server connection failed"}},
	}
	for _, c := range cases {
		t.Run(c.client+"/"+c.style, func(t *testing.T) {
			rule := scenarioRule(faults.ScenarioDHEEnabled, nil) // rate=always: lz2049
			rule.Close = c.style
			r := newBridgeRig(t, emuConfig(), rule)
			ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
			defer cancel()
			res, err := c.run(ctx, t, r)
			if err != nil {
				t.Fatal(err)
			}
			all := res.Error + "\n" + res.Cause + "\n" + res.Dump
			if res.OK {
				t.Fatalf("%s connected through the failing DHE server", c.client)
			}
			for _, w := range c.words {
				if !strings.Contains(all, w) {
					t.Errorf("the client's error lacks %q: error %q cause %q\ndump: %s", w, res.Error, res.Cause, lastLines(res.Dump, 10))
				}
			}
			rec := r.next(t)
			tl := rec.TLS
			if tl == nil || !strings.HasPrefix(tl.CipherSuite, "TLS_DHE_RSA_") || tl.KeyExchange == nil || tl.KeyExchange.DHGroup != "lz2049" {
				t.Fatalf("record tls %+v, want DHE in lz2049", tl)
			}
			if rec.Bridge == nil || rec.Bridge.Scenario != faults.ScenarioDHEEnabled || !strings.Contains(rec.Bridge.DecidedBy, "DHE engine") ||
				rec.Close == nil || rec.Close.By != proxy.SideProxy || rec.Close.Phase != proxy.PhaseTLSClientFinished {
				t.Errorf("record bridge %+v close %+v", rec.Bridge, rec.Close)
			}
			if c.style == "rst" && rec.Close.Kind != proxy.CloseRST {
				t.Errorf("close %+v, want rst", rec.Close)
			}
			t.Logf("%s/%s: error %q cause %q; record close %+v", c.client, c.style, res.Error, res.Cause, rec.Close)
		})
	}
}

// TestDHEThroughBridgeNatural: with rate=natural the DHE engine plays the
// failing server in ffdhe2048, so a stripping client fails only when the
// shared secret starts with a zero byte (1 in 256): tedious connects and
// runs SELECT 1 over DHE on the client leg and ECDHE upstream, and the
// record shows both legs.
func TestDHEThroughBridgeNatural(t *testing.T) {
	rule := scenarioRule(faults.ScenarioDHELeadingZero, map[string]string{"rate": "natural"})
	r := newBridgeRig(t, emuConfig(), rule)
	ok := 0
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
		res, err := r.tedious(ctx, t, TediousConfig{Encrypt: true})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		rec := r.next(t)
		if tl := rec.TLS; tl == nil || tl.KeyExchange == nil || tl.KeyExchange.DHGroup != "ffdhe2048" || !strings.HasPrefix(tl.CipherSuite, "TLS_DHE_RSA_") {
			t.Fatalf("record tls %+v, want DHE in ffdhe2048", rec.TLS)
		}
		if !res.OK {
			// The 1 in 256: it must be the leading-zero failure.
			if rec.Close == nil || rec.Close.Phase != proxy.PhaseTLSClientFinished {
				t.Errorf("tedious failed (%q) but not at its Finished: %+v", res.Error, rec.Close)
			}
			continue
		}
		ok++
		if rec.Bridge == nil || rec.Bridge.UpstreamTLS == nil || !strings.HasPrefix(rec.Bridge.UpstreamTLS.CipherSuite, "TLS_ECDHE_") || rec.Login == nil {
			t.Errorf("record bridge %+v login %+v, want ECDHE upstream and the login seen", rec.Bridge, rec.Login)
		}
	}
	if ok == 0 {
		t.Errorf("3 of 3 handshakes failed: at 1 in 256 that is not the natural rate")
	}
	// go-mssqldb offers no DHE: the bridge replays its ClientHello to
	// crypto/tls, and it connects over ECDHE on both legs.
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	res, err := RunMSSQL(ctx, MSSQLConfig{Port: r.port, User: emuUser, Password: emuPassword, Encrypt: "true", Query: "SELECT 1", Timeout: time.Minute})
	if err != nil || !res.OK {
		t.Fatalf("go-mssqldb through the DHE bridge: %v %+v", err, res)
	}
	if rec := r.next(t); rec.TLS == nil || !strings.HasPrefix(rec.TLS.CipherSuite, "TLS_ECDHE_") || rec.TLS.KeyExchange != nil && rec.TLS.KeyExchange.Kind == "DHE" {
		t.Errorf("go-mssqldb record tls %+v, want ECDHE", rec.TLS)
	}
}
