package configs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
)

// clearEnv hides any TDSPROXY_* variable of the developer's shell: viper
// ignores empty variables, so an empty value is as good as unset.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range EnvKeys() {
		t.Setenv(EnvVar(k), "")
	}
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tdsproxy.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func errorKeys(err error) []string {
	var keys []string
	for _, ke := range KeyErrors(err) {
		keys = append(keys, ke.Key)
	}
	return keys
}

// The example ships in the binary and the container image: it must load,
// validate, and match the embedded copy.
func TestExampleLoadsAndValidates(t *testing.T) {
	clearEnv(t)
	cfg, err := Load("tdsproxy.yaml")
	if err != nil {
		t.Fatalf("Load(example): %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate(example): %v", err)
	}
	onDisk, err := os.ReadFile("tdsproxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Example(), onDisk) {
		t.Error("Example() differs from tdsproxy.yaml")
	}
	if len(cfg.Proxies) != 1 || cfg.Proxies[0].Listen != "0.0.0.0:11433" {
		t.Errorf("example proxies = %+v, want one listening on 0.0.0.0:11433 (the container image uses this file)", cfg.Proxies)
	}
}

// The example says "Default: X" for every key and shows X: loading it must
// give what loading only the required keys gives.
func TestExampleShowsTheDefaults(t *testing.T) {
	clearEnv(t)
	example, err := Load("tdsproxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	minimal, err := Load(writeConfig(t, `
proxies:
  - name: default
    listen: 0.0.0.0:11433
    upstream: sqlserver.example.com:1433
`))
	if err != nil {
		t.Fatal(err)
	}
	// The example writes every key; the minimal file leaves them to their
	// defaults: the values must agree, not which keys were given.
	example.given, minimal.given = nil, nil
	if !reflect.DeepEqual(example, minimal) {
		t.Errorf("example = %+v\nminimal with defaults = %+v", example, minimal)
	}
}

// Every key must appear in the example with a comment above it, and every
// environment variable must be named there.
func TestExampleDocumentsEveryKey(t *testing.T) {
	text := string(Example())
	lines := strings.Split(text, "\n")
	keys := EnvKeys()
	for _, k := range leafKeys(reflect.TypeFor[rawProxy](), "") {
		keys = append(keys, "proxies[]."+k)
	}
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			leaf := key[strings.LastIndex(key, ".")+1:]
			re := regexp.MustCompile(`^\s*(- )?` + regexp.QuoteMeta(leaf) + `:`)
			i := slices.IndexFunc(lines, func(l string) bool { return re.MatchString(l) })
			if i < 0 {
				t.Fatalf("key %q not in tdsproxy.yaml", key)
			}
			if i == 0 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
				t.Errorf("key %q (line %d) has no comment line above it", key, i+1)
			}
			if !strings.HasPrefix(key, "proxies") && !strings.Contains(text, EnvVar(key)) {
				t.Errorf("tdsproxy.yaml does not name %s", EnvVar(key))
			}
		})
	}
}

func TestEnvVar(t *testing.T) {
	if got := EnvVar("shutdown.drain_timeout"); got != "TDSPROXY_SHUTDOWN_DRAIN_TIMEOUT" {
		t.Errorf("EnvVar = %q", got)
	}
	want := []string{"log.level", "log.format", "log.file", "admin.listen", "admin.token", "shutdown.drain_timeout", "shutdown.close", "diagnosis.slow_login"}
	if got := EnvKeys(); !slices.Equal(got, want) {
		t.Errorf("EnvKeys() = %q, want %q", got, want)
	}
}

func TestLoadEnvironment(t *testing.T) {
	t.Run("without a file", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("TDSPROXY_LOG_LEVEL", "debug")
		t.Setenv("TDSPROXY_SHUTDOWN_DRAIN_TIMEOUT", "5s")
		t.Setenv("TDSPROXY_ADMIN_TOKEN", "s3cret")
		cfg, err := Load("")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Log.Level != "debug" || cfg.Shutdown.DrainTimeout != 5*time.Second || cfg.Admin.Token != "s3cret" {
			t.Errorf("cfg = %+v, want env values", cfg)
		}
		if cfg.Log.Format != DefaultLogFormat || cfg.Shutdown.Close != DefaultShutdownClose || len(cfg.Proxies) != 0 {
			t.Errorf("cfg = %+v, want defaults elsewhere", cfg)
		}
	})
	t.Run("over a file", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("TDSPROXY_LOG_FORMAT", "console")
		cfg, err := Load(writeConfig(t, "log:\n  format: json\n  level: warn\n"))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Log.Format != "console" || cfg.Log.Level != "warn" {
			t.Errorf("log = %+v, want format from env, level from file", cfg.Log)
		}
	})
	t.Run("empty variable is ignored", func(t *testing.T) {
		clearEnv(t)
		cfg, err := Load(writeConfig(t, "log:\n  level: error\n"))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Log.Level != "error" {
			t.Errorf("log.level = %q, want error from the file", cfg.Log.Level)
		}
	})
	t.Run("bad duration names the key", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("TDSPROXY_SHUTDOWN_DRAIN_TIMEOUT", "soon")
		_, err := Load("")
		if got := errorKeys(err); !slices.Equal(got, []string{"shutdown.drain_timeout"}) {
			t.Errorf("error keys = %q (err %v)", got, err)
		}
	})
}

func TestLoadDurations(t *testing.T) {
	clearEnv(t)
	cfg, err := Load(writeConfig(t, `
shutdown:
  drain_timeout: 0s
proxies:
  - {name: a, listen: ":1", upstream: "h:1", dial_timeout: 1m30s}
  - {name: b, listen: ":2", upstream: "h:1"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Shutdown.DrainTimeout != 0 {
		t.Errorf("drain_timeout 0s = %v, want 0 (close at once), not the default", cfg.Shutdown.DrainTimeout)
	}
	if got := []time.Duration{cfg.Proxies[0].DialTimeout, cfg.Proxies[1].DialTimeout}; got[0] != 90*time.Second || got[1] != DefaultDialTimeout {
		t.Errorf("dial timeouts = %v, want [1m30s %v]", got, DefaultDialTimeout)
	}
}

func TestLoadFileErrors(t *testing.T) {
	clearEnv(t)
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope.yaml")
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("err = %v, want it to name %s", err, path)
		}
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v, want os.ErrNotExist inside", err)
		}
	})
	t.Run("not YAML", func(t *testing.T) {
		path := writeConfig(t, "log: [unclosed\n")
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("err = %v, want it to name %s", err, path)
		}
	})
}

// Content errors found while loading name the key.
func TestLoadKeyErrors(t *testing.T) {
	clearEnv(t)
	const proxy = "proxies:\n  - {name: a, listen: \":1\", upstream: \"h:1\"}\n"
	tests := []struct {
		name string
		yaml string
		keys []string
	}{
		{"unknown section", "lgo:\n  level: info\n" + proxy, []string{"lgo"}},
		{"misspelt key", "log:\n  levle: info\n" + proxy, []string{"log.levle"}},
		{"unknown proxy key", "proxies:\n  - {name: a, listen: \":1\", upstream: \"h:1\"}\n  - {name: b, listen: \":2\", upstream: \"h:1\", fautls: []}\n", []string{"proxies[1].fautls"}},
		{"several unknown keys", "log:\n  colour: true\nadmin:\n  port: 1\n" + proxy, []string{"admin.port", "log.colour"}},
		{"bare number duration", "proxies:\n  - {name: a, listen: \":1\", upstream: \"h:1\", dial_timeout: 10}\n", []string{"proxies[0].dial_timeout"}},
		{"bad duration", "shutdown:\n  drain_timeout: abc\n" + proxy, []string{"shutdown.drain_timeout"}},
		{"list for a string", "proxies:\n  - {name: a, listen: [\":1\"], upstream: \"h:1\"}\n", []string{"proxies[0].listen"}},
		{"map for a string", "log:\n  level: {x: 1}\n" + proxy, []string{"log.level"}},
		{"number for a section", "log: 5\n" + proxy, []string{"log"}},
		{"string for the list", "proxies: db:1433\n", []string{"proxies[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tt.yaml))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if got := errorKeys(err); !slices.Equal(got, tt.keys) {
				t.Errorf("error keys = %q, want %q (err: %v)", got, tt.keys, err)
			}
		})
	}
}

func validConfig() *Config {
	c := &Config{
		Proxies: []ProxyConfig{
			{Name: "a", Listen: "127.0.0.1:11433", Upstream: "sql1.example.com:1433", DialTimeout: DefaultDialTimeout},
			{Name: "b", Listen: "127.0.0.1:11434", Upstream: "[2001:db8::1]:1433", DialTimeout: DefaultDialTimeout},
		},
		Shutdown: ShutdownConfig{DrainTimeout: DefaultDrainTimeout},
	}
	c.ApplyDefaults()
	return c
}

func TestValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name   string
		modify func(c *Config)
		keys   []string
	}{
		{"log level", func(c *Config) { c.Log.Level = "loud" }, []string{"log.level"}},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, []string{"log.format"}},
		{"admin listen", func(c *Config) { c.Admin.Listen = "8475" }, []string{"admin.listen"}},
		{"admin off", func(c *Config) { c.Admin.Listen = AdminDisabled }, nil},
		{"negative drain", func(c *Config) { c.Shutdown.DrainTimeout = -time.Second }, []string{"shutdown.drain_timeout"}},
		{"zero drain", func(c *Config) { c.Shutdown.DrainTimeout = 0 }, nil},
		{"close style", func(c *Config) { c.Shutdown.Close = "abort" }, []string{"shutdown.close"}},
		{"no proxies", func(c *Config) { c.Proxies = nil }, []string{"proxies"}},
		{"empty name", func(c *Config) { c.Proxies[1].Name = "" }, []string{"proxies[1].name"}},
		{"name with a space", func(c *Config) { c.Proxies[0].Name = "my proxy" }, []string{"proxies[0].name"}},
		{"duplicate name", func(c *Config) { c.Proxies[1].Name = "a" }, []string{"proxies[1].name"}},
		{"listen without port", func(c *Config) { c.Proxies[0].Listen = "localhost" }, []string{"proxies[0].listen"}},
		{"listen port too big", func(c *Config) { c.Proxies[0].Listen = ":70000" }, []string{"proxies[0].listen"}},
		{"listen port 0 twice", func(c *Config) { c.Proxies[0].Listen, c.Proxies[1].Listen = "127.0.0.1:0", "127.0.0.1:0" }, nil},
		{"duplicate listen", func(c *Config) { c.Proxies[1].Listen = "127.0.0.1:11433" }, []string{"proxies[1].listen"}},
		{"wildcard overlaps", func(c *Config) { c.Proxies[1].Listen = ":11433" }, []string{"proxies[1].listen"}},
		{"overlaps admin", func(c *Config) { c.Proxies[0].Listen = "0.0.0.0:8475" }, []string{"proxies[0].listen"}},
		{"upstream port not a number", func(c *Config) { c.Proxies[1].Upstream = "db:abc" }, []string{"proxies[1].upstream"}},
		{"upstream without host", func(c *Config) { c.Proxies[0].Upstream = ":1433" }, []string{"proxies[0].upstream"}},
		{"upstream port 0", func(c *Config) { c.Proxies[0].Upstream = "db:0" }, []string{"proxies[0].upstream"}},
		{"upstream IPv6 without brackets", func(c *Config) { c.Proxies[0].Upstream = "2001:db8::1:1433" }, []string{"proxies[0].upstream"}},
		{"zero dial timeout", func(c *Config) { c.Proxies[0].DialTimeout = 0 }, []string{"proxies[0].dial_timeout"}},
		{"every problem reported", func(c *Config) {
			c.Log.Level = "loud"
			c.Proxies[0].Upstream = "nope"
			c.Proxies[1].DialTimeout = -1
		}, []string{"log.level", "proxies[0].upstream", "proxies[1].dial_timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.modify(c)
			err := c.Validate()
			if got := errorKeys(err); !slices.Equal(got, tt.keys) {
				t.Errorf("error keys = %q, want %q (err: %v)", got, tt.keys, err)
			}
			if len(tt.keys) == 0 && err != nil {
				t.Errorf("err = %v, want none", err)
			}
		})
	}
}

// The messages people read: the key first, then the value, then why.
func TestValidateMessages(t *testing.T) {
	tests := []struct {
		modify func(c *Config)
		want   string
	}{
		{func(c *Config) { c.Proxies[1].Upstream = "db:abc" }, `proxies[1].upstream: "db:abc" is not host:port: port "abc" is not a number from 1 to 65535`},
		{func(c *Config) { c.Log.Level = "loud" }, `log.level: "loud" is not one of debug, info, warn, error`},
		{func(c *Config) { c.Proxies[0].Listen = "localhost" }, `proxies[0].listen: "localhost" is not host:port: missing port in address`},
		{func(c *Config) { c.Proxies[1].Name = "a" }, `proxies[1].name: "a" is already the name of proxies[0]`},
	}
	for _, tt := range tests {
		c := validConfig()
		tt.modify(c)
		if err := c.Validate(); err == nil || err.Error() != tt.want {
			t.Errorf("err = %v\nwant  %s", err, tt.want)
		}
	}
}

func TestShutdownResetOnClose(t *testing.T) {
	if (ShutdownConfig{Close: "fin"}).ResetOnClose() || !(ShutdownConfig{Close: "rst"}).ResetOnClose() {
		t.Error("ResetOnClose wrong")
	}
}

// The fault-rules example loads and validates (its rules are checked with
// package faults' parser in cmd/tdsproxy's tests).
func TestFaultsExampleLoads(t *testing.T) {
	f := filepath.Join(t.TempDir(), "faults.yaml")
	if err := os.WriteFile(f, FaultsExample(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Proxies) != 1 || len(cfg.Proxies[0].Faults) != 6 {
		t.Fatalf("proxies = %+v", cfg.Proxies)
	}
	// The key comes from the faults.RuleError as data (errors.As), not
	// from its text.
	err = cfg.ValidateFaults(func([]map[string]any) error {
		return fmt.Errorf("wrapped: %w", &faults.RuleError{Index: 2, Key: "options.rate", Err: errors.New("bad")})
	})
	kes := KeyErrors(err)
	if len(kes) != 1 || kes[0].Key != "proxies[0].faults[2].options.rate" || kes[0].Err.Error() != "bad" {
		t.Errorf("ValidateFaults error = %v", err)
	}
	// A real rule error from the parser, its key and reason apart.
	err = cfg.ValidateFaults(func(ms []map[string]any) error {
		return faults.Compile([]faults.RuleSpec{{Name: "a", Scenario: "protocol-mismatch"}, {Name: "b", Scenario: "weak-cert-hash", Options: map[string]string{"cert_hash": "sha3"}}})
	})
	kes = KeyErrors(err)
	if len(kes) != 1 || kes[0].Key != "proxies[0].faults[1].options.cert_hash" || !strings.HasPrefix(kes[0].Err.Error(), `"sha3" is not md5`) {
		t.Errorf("ValidateFaults error = %v", err)
	}
	// Text that merely looks like a rule error is not parsed.
	err = cfg.ValidateFaults(func([]map[string]any) error { return errors.New("faults[2]: options.rate: bad") })
	if kes = KeyErrors(err); len(kes) != 1 || kes[0].Key != "proxies[0].faults" {
		t.Errorf("ValidateFaults error = %v", err)
	}
}
