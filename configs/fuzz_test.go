package configs_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/faults"
)

// FuzzConfig feeds arbitrary bytes to configs.Load as a YAML file, then
// validates what loads, fault rules included (as `tdsproxy run` does). It
// must never panic, and every error must be either the file's own
// ("config file PATH: ...": unreadable or not YAML) or name keys
// (KeyErrors).
func FuzzConfig(f *testing.F) {
	// viper ignores empty variables: hide the developer's TDSPROXY_*.
	for _, k := range configs.EnvKeys() {
		f.Setenv(configs.EnvVar(k), "")
	}
	seeds := map[string]string{
		"example":          string(configs.Example()),
		"faults example":   string(configs.FaultsExample()),
		"empty":            "",
		"null":             "~",
		"scalar root":      "5",
		"list root":        "- a\n- b",
		"wrong types":      "log: [1, 2]\nproxies: {a: b}\nshutdown: 3",
		"bad duration":     "proxies:\n- name: a\n  listen: :1\n  upstream: b:1\n  dial_timeout: 10\n  negotiation_timeout: 1e400s",
		"unknown keys":     "lgo:\n  level: debug\nproxies:\n- nmae: x",
		"faults not list":  "proxies:\n- name: a\n  listen: :1\n  upstream: b:1\n  faults: {scenario: x}",
		"fault bad option": "proxies:\n- name: a\n  listen: :1\n  upstream: b:1\n  faults:\n  - name: r\n    scenario: delayed-accept\n    options: {backlog: -1, reject: maybe}\n    match: {probability: .nan}",
		"fault nested":     "proxies:\n- name: a\n  listen: :1\n  upstream: b:1\n  faults:\n  - name: {x: [1, {y: 2}]}\n    options: [1]",
		"anchors":          "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]",
		"int overflow":     "proxies:\n- name: a\n  listen: :1\n  upstream: b:1\n  max_connections: 99999999999999999999999",
		"tabs and bom":     "\ufeff\tlog:\n\t\tlevel: info",
		"binary":           "\x00\xff\xfe\x01",
		"duplicate keys":   "log:\n  level: info\n  level: debug",
		"mixed case keys":  "LOG:\n  Level: DEBUG\nProxies:\n- NAME: a",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, yaml []byte) {
		path := filepath.Join(t.TempDir(), "tdsproxy.yaml")
		if err := os.WriteFile(path, yaml, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := configs.Load(path)
		if err != nil {
			checkConfigError(t, "Load", err, path)
			return
		}
		if cfg == nil {
			t.Fatal("Load returned neither a config nor an error")
		}
		if err := cfg.Validate(); err != nil {
			checkConfigError(t, "Validate", err, "")
		}
		err = cfg.ValidateFaults(func(ms []map[string]any) error {
			_, err := faults.RuleSpecsFromMaps(ms)
			return err
		})
		if err != nil {
			checkConfigError(t, "ValidateFaults", err, "")
		}
	})
}

// checkConfigError: a file error names the file; any other error is made of
// KeyErrors only, each with a key and a message.
func checkConfigError(t *testing.T, op string, err error, path string) {
	t.Helper()
	msg := err.Error()
	if msg == "" {
		t.Fatalf("%s: empty error", op)
	}
	if path != "" && strings.HasPrefix(msg, "config file "+path+": ") {
		return
	}
	kes := configs.KeyErrors(err)
	if len(kes) == 0 {
		t.Fatalf("%s: error names no key: %v", op, err)
	}
	for _, ke := range kes {
		if ke.Key == "" || ke.Err == nil || ke.Err.Error() == "" {
			t.Fatalf("%s: KeyError without key or message: %#v", op, ke)
		}
	}
	// Every leaf of a joined error is a KeyError.
	var leaves func(error) int
	leaves = func(e error) int {
		var ke *configs.KeyError
		if errors.As(e, &ke) && e == error(ke) {
			return 1
		}
		if u, ok := e.(interface{ Unwrap() []error }); ok {
			n := 0
			for _, x := range u.Unwrap() {
				n += leaves(x)
			}
			return n
		}
		t.Fatalf("%s: %T is not a KeyError: %v", op, e, e)
		return 0
	}
	leaves(err)
}
