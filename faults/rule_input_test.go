package faults

import (
	"errors"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// Option values may be strings, numbers or true/false in JSON as in YAML;
// both give the same rule (issue 18 item 11).
func TestOptionValueTypes(t *testing.T) {
	fromJSON, err := ParseRuleSpec([]byte(`{"name": "r", "scenario": "delayed-accept", "options": {"reject": true, "backlog": 4, "login_delay": "20s"}}`))
	if err != nil {
		t.Fatal(err)
	}
	fromYAML, err := RuleSpecFromMap(map[string]any{"name": "r", "scenario": "delayed-accept",
		"options": map[string]any{"reject": true, "backlog": 4, "login_delay": "20s"}})
	if err != nil {
		t.Fatal(err)
	}
	want := OptionValues{"reject": "true", "backlog": "4", "login_delay": "20s"}
	for name, got := range map[string]OptionValues{"JSON": fromJSON.Options, "YAML": fromYAML.Options} {
		if len(got) != len(want) || got["reject"] != "true" || got["backlog"] != "4" || got["login_delay"] != "20s" {
			t.Errorf("%s options = %v, want %v", name, got, want)
		}
	}
	tls, err := ParseRuleSpec([]byte(`{"name": "r", "scenario": "protocol-mismatch", "options": {"server_tls": 1.2}}`))
	if err != nil || tls.Options["server_tls"] != "1.2" {
		t.Errorf("server_tls: 1.2 = %v, %v", tls.Options, err)
	}
	if err := Compile([]RuleSpec{tls}); err != nil {
		t.Errorf("server_tls as a number: %v", err)
	}
}

// Every decoding error names the key by its path and says what kind of
// value it takes in JSON's words, never a Go type (issue 18 item 11 and the
// "errors that don't name the key" bullet).
func TestRuleSpecErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"name": "r", "scenario": "delayed-accept", "options": {"reject": [true]}}`, "options.reject: "},
		{`{"name": "r", "scenario": "delayed-accept", "options": {"reject": null}}`, "options.reject: "},
		{`{"name": "r", "scenario": "delayed-accept", "match": {"a": 1}}`, "match.a: unknown key"},
		{`{"name": "r", "scenario": "delayed-accept", "match": {"first": "x"}}`, "match.first: must be a whole number"},
		{`{"name": "r", "scenario": "delayed-accept", "match": {"window": {"every": "1e9h", "for": "1s"}}}`, "match.window.every: "},
		{`{"name": "r", "scenario": "delayed-accept", "match": {"window": {"every": 5}}}`, "match.window.every: must be a string"},
		{`{"name": "r", "scenario": "delayed-accept", "match": {"window": {"evry": "5m"}}}`, "match.window.evry: unknown key"},
		{`{"name": "r", "seed": "x"}`, "seed: must be a whole number"},
		{`{"name": "r", "scenario": "delayed-accept", "options": {"reject": true}} {"name": "s"}`, "more than one JSON value"},
	} {
		_, err := ParseRuleSpec([]byte(tc.in))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %q...", tc.in, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "uint64") || strings.Contains(err.Error(), "faults.")) {
			t.Errorf("%s: %v names a Go type", tc.in, err)
		}
	}
	// YAML's .nan cannot become JSON: name the key, not "json: unsupported value".
	_, err := RuleSpecFromMap(map[string]any{"name": "r", "scenario": "delayed-accept",
		"match": map[string]any{"probability": math.NaN()}})
	if err == nil || !strings.HasPrefix(err.Error(), "match.probability: ") {
		t.Errorf("probability .nan: %v", err)
	}
}

// Rule names follow the proxy names' rule: they reach URL paths, metric
// labels, log lines and terminals.
func TestRuleNames(t *testing.T) {
	base := RuleSpec{Scenario: ScenarioDelayedAccept, Options: OptionValues{"reject": "true"}}
	for _, name := range []string{"a/b", "..", ".hidden", "a b", "tab\there", "cr\rlf\n", "\x1b[31mred", strings.Repeat("x", 65), strings.Repeat("y", 900<<10), ""} {
		s := base
		s.Name = name
		err := Compile([]RuleSpec{s})
		if err == nil || !strings.Contains(err.Error(), "name: ") {
			t.Errorf("name %q: %v, want a name: error", name, err)
		}
		if err != nil && len(err.Error()) > 300 {
			t.Errorf("name of %d bytes: the error is %d bytes long", len(name), len(err.Error()))
		}
	}
	for _, name := range []string{"old-server", "wan", "r1.v2_x", strings.Repeat("z", 64)} {
		s := base
		s.Name = name
		if err := Compile([]RuleSpec{s}); err != nil {
			t.Errorf("name %q: %v", name, err)
		}
	}
}

// An IPv4-mapped client prefix matches the IPv4 client it stands for.
func TestMappedClientPrefix(t *testing.T) {
	for _, c := range []string{"::ffff:127.0.0.1", "::ffff:127.0.0.0/104"} {
		spec := RuleSpec{Name: "r", Scenario: ScenarioDelayedAccept, Options: OptionValues{"reject": "true"}, Match: Match{Clients: []string{c}}}
		r, err := compile(spec, time.Now())
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		ci := proxy.ConnInfo{Client: netip.MustParseAddrPort("127.0.0.1:50000"), At: time.Now()}
		if ok, why := r.staticMatch(ci, 1, 0); !ok {
			t.Errorf("clients [%s] does not match 127.0.0.1: %s", c, why)
		}
	}
	if _, err := parsePrefix("::ffff:0:0/90"); err == nil {
		t.Error("an IPv4-mapped prefix shorter than /96 was accepted")
	}
	var ke *keyError
	if err := CheckRuleName("a/b"); !errors.As(err, &ke) || ke.key != "name" {
		t.Errorf("CheckRuleName: %v", err)
	}
}
