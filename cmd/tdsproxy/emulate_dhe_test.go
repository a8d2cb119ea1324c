package main

import (
	"strings"
	"testing"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// TestEmulateDHEFlags: --dhe, --dhe-group, --dhe-z, --dhe-y and --dhe-fail
// reach the emulator's Config, and a bad value names its flag.
func TestEmulateDHEFlags(t *testing.T) {
	cmd := newEmulateCmd()
	if err := cmd.ParseFlags([]string{"--dhe", "prefer", "--dhe-group", "rfc5114-2048-256", "--dhe-z", "pad", "--dhe-y", "padded", "--dhe-fail", "rst"}); err != nil {
		t.Fatal(err)
	}
	f := emulateFlags{listen: "127.0.0.1:0", encrypt: "on", tlsMin: "1.2", largeRows: 1, largeRowBytes: 1, logLevel: "info"}
	get := func(name string) string { return cmd.Flags().Lookup(name).Value.String() }
	f.dhe, f.dheGroup, f.dheZ, f.dheY, f.dheFail = get("dhe"), get("dhe-group"), get("dhe-z"), get("dhe-y"), get("dhe-fail")
	cfg, err := f.emulatorConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DHE != emulator.DHEPrefer || cfg.DHEGroup != "rfc5114-2048-256" || cfg.DHEZ != dhe.ZPad || cfg.DHEY != dhe.YPadded || cfg.DHEFail != dhe.FailRST {
		t.Errorf("config %+v", cfg)
	}
	// Defaults: DHE off, strip, minimal, alert.
	d := newEmulateCmd()
	def := emulateFlags{listen: "127.0.0.1:0", encrypt: "on", tlsMin: "1.2", largeRows: 1, largeRowBytes: 1, logLevel: "info",
		dhe: d.Flags().Lookup("dhe").DefValue, dheGroup: d.Flags().Lookup("dhe-group").DefValue, dheZ: d.Flags().Lookup("dhe-z").DefValue,
		dheY: d.Flags().Lookup("dhe-y").DefValue, dheFail: d.Flags().Lookup("dhe-fail").DefValue}
	if cfg, err := def.emulatorConfig(); err != nil || cfg.DHE != emulator.DHEOff || cfg.DHEZ != dhe.ZStrip || cfg.DHEFail != dhe.FailAlert {
		t.Errorf("defaults: %+v, %v", cfg, err)
	}
	for flag, set := range map[string]func(*emulateFlags){
		"--dhe":       func(f *emulateFlags) { f.dhe = "always" },
		"--dhe-group": func(f *emulateFlags) { f.dheGroup = "ffdhe1536" },
		"--dhe-z":     func(f *emulateFlags) { f.dheZ = "zero" },
		"--dhe-y":     func(f *emulateFlags) { f.dheY = "short" },
		"--dhe-fail":  func(f *emulateFlags) { f.dheFail = "drop" },
		"--tls-min":   func(f *emulateFlags) { f.tlsMin = "1.3" },
	} {
		bad := def
		bad.dhe = "only"
		set(&bad)
		if _, err := bad.emulatorConfig(); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s: error %v does not name the flag", flag, err)
		}
	}
}
