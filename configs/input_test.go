package configs_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/faults"
)

func loadFile(t *testing.T, yaml string) (*configs.Config, error) {
	t.Helper()
	for _, k := range configs.EnvKeys() {
		t.Setenv(configs.EnvVar(k), "")
	}
	path := filepath.Join(t.TempDir(), "tdsproxy.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return configs.Load(path)
}

func keysOf(err error) []string {
	var keys []string
	for _, ke := range configs.KeyErrors(err) {
		keys = append(keys, ke.Key)
	}
	return keys
}

// An upstream that is, on its face, the proxy's own listen address is
// refused by Validate, so `config check` sees it too (issue 18 item 8).
func TestValidateSelfLoop(t *testing.T) {
	for _, tc := range []struct {
		listen, upstream string
		loop             bool
	}{
		{"127.0.0.1:11433", "127.0.0.1:11433", true},
		{"0.0.0.0:11433", "127.0.0.1:11433", true},
		{":11433", "localhost:11433", true},
		{"127.0.0.1:11433", "localhost:11433", true},
		{"127.0.0.1:11433", "127.0.0.1:1433", false},
		{"127.0.0.1:11433", "127.0.0.2:11433", false},
		{"127.0.0.1:11433", "sql01:11433", false},
		{"127.0.0.1:0", "127.0.0.1:1433", false},
	} {
		c := &configs.Config{Proxies: []configs.ProxyConfig{{Name: "p", Listen: tc.listen, Upstream: tc.upstream, DialTimeout: configs.DefaultDialTimeout}}}
		c.ApplyDefaults()
		c.Admin.Listen = configs.AdminDisabled
		err := c.Validate()
		got := slices.Contains(keysOf(err), "proxies[0].upstream")
		if got != tc.loop {
			t.Errorf("listen %s upstream %s: %v, want loop=%v", tc.listen, tc.upstream, err, tc.loop)
		}
	}
}

// IsSet tells a key the user gave (file, environment, flag) from a default
// (issue 10 §6: the admin API's default address may move, a chosen one not).
func TestIsSet(t *testing.T) {
	const proxy = "proxies:\n  - {name: a, listen: \":1\", upstream: \"h:1\"}\n"
	c, err := loadFile(t, proxy)
	if err != nil {
		t.Fatal(err)
	}
	if c.IsSet("admin.listen") || c.Admin.Listen != configs.DefaultAdminListen {
		t.Errorf("admin.listen defaulted: IsSet=%v listen=%q", c.IsSet("admin.listen"), c.Admin.Listen)
	}
	c.MarkSet("admin.listen")
	if !c.IsSet("admin.listen") {
		t.Error("MarkSet did not mark")
	}
	c, err = loadFile(t, "admin:\n  listen: 127.0.0.1:8475\n"+proxy)
	if err != nil {
		t.Fatal(err)
	}
	if !c.IsSet("admin.listen") {
		t.Error("admin.listen from the file: IsSet false")
	}
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(path, []byte(proxy), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TDSPROXY_ADMIN_LISTEN", "127.0.0.1:9999")
	c, err = configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !c.IsSet("admin.listen") {
		t.Error("admin.listen from the environment: IsSet false")
	}
}

// YAML option values of any scalar kind load as the API takes them, and a
// .nan probability is reported against its key (issue 18 item 11).
func TestYAMLFaultValues(t *testing.T) {
	validate := func(c *configs.Config) error {
		return c.ValidateFaults(func(ms []map[string]any) error {
			_, err := faults.RuleSpecsFromMaps(ms)
			return err
		})
	}
	c, err := loadFile(t, `proxies:
  - name: a
    listen: ":1"
    upstream: "h:1"
    faults:
      - {name: r, scenario: delayed-accept, options: {reject: true}}
      - {name: t, scenario: protocol-mismatch, options: {server_tls: 1.2}}
`)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(c); err != nil {
		t.Errorf("scalar option values: %v", err)
	}
	c, err = loadFile(t, `proxies:
  - name: a
    listen: ":1"
    upstream: "h:1"
    faults:
      - {name: r, scenario: delayed-accept, options: {reject: true}, match: {probability: .nan}}
`)
	if err != nil {
		t.Fatal(err)
	}
	err = validate(c)
	if keys := keysOf(err); !slices.Equal(keys, []string{"proxies[0].faults[0].match.probability"}) {
		t.Errorf("probability .nan: keys %q (%v)", keys, err)
	}
}
