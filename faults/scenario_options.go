package faults

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// OptionType is the kind of value a scenario option takes; the CLI declares
// its flag with it.
type OptionType string

// Option types. A field whose type parses itself (encoding.TextUnmarshaler:
// TLS versions, suite names, a rate) is OptString on the command line.
const (
	OptString   OptionType = "string"
	OptDuration OptionType = "duration"
	OptInt      OptionType = "int"
	OptBool     OptionType = "bool"
)

// Option is one option of a scenario: the key under a rule's options, the
// `tdsproxy run` flag that sets it, its type, its default and its help.
type Option struct {
	// Name is the key under options (server_tls).
	Name string
	// Flag is the run flag without "--" (server-tls). Scenarios may share
	// a flag when the option means the same (dhe-rate).
	Flag string
	Type OptionType
	// Default is what an absent option means, in the option's syntax; ""
	// means none (the option is off or required).
	Default string
	// Help says what the option does. A word in backquotes names the
	// flag's value (pflag's convention); Usage drops the quotes.
	Help string
}

// Usage is Help without the flag-value backquotes.
func (o Option) Usage() string { return strings.ReplaceAll(o.Help, "`", "") }

// bind parses a rule's options into a fresh options struct of the
// scenario: each by name into its field (tag opt:"NAME"), then the
// scenario's own checks. Errors name the key (options.NAME).
func (s *scenario) bind(opts map[string]string) (scenarioRule, error) {
	sr := s.rule()
	names := make([]string, len(s.Options))
	for i, o := range s.Options {
		names[i] = o.Name
	}
	for k := range opts {
		if !slices.Contains(names, k) {
			return nil, &keyError{key: "options." + k, err: fmt.Errorf("unknown option (valid: %s)", strings.Join(names, ", "))}
		}
	}
	for _, o := range s.Options {
		raw, ok := opts[o.Name]
		if !ok {
			continue
		}
		if err := bindOption(sr, o, raw); err != nil {
			return nil, &keyError{key: "options." + o.Name, err: err}
		}
	}
	if err := sr.check(func(name string) bool { _, ok := opts[name]; return ok }); err != nil {
		return nil, prefixKey("options", err)
	}
	return sr, nil
}

// bindOption parses one raw value into its field.
func bindOption(dst scenarioRule, o Option, raw string) error {
	if handled, err := bindText(dst, o.Name, raw); handled {
		return err
	}
	f, err := optField(dst, o.Name)
	if err != nil {
		return err
	}
	s := strings.TrimSpace(raw)
	switch o.Type {
	case OptDuration:
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return fmt.Errorf("%q is not a duration like 5s", raw)
		}
		f.SetInt(int64(d))
	case OptBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", raw)
		}
		f.SetBool(b)
	case OptInt:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", raw)
		}
		f.SetInt(int64(n))
	default:
		f.SetString(s)
	}
	return nil
}

// tlsVersions is an option listing TLS versions ("1.2,1.3"); empty means
// none.
type tlsVersions []uint16

func (v *tlsVersions) UnmarshalText(b []byte) error {
	*v = nil
	for _, f := range splitList(string(b)) {
		ver, err := tlsbridge.ParseVersion(f)
		if err != nil {
			return fmt.Errorf("%q is not a TLS version (1.0, 1.1, 1.2, 1.3)", f)
		}
		*v = append(*v, ver)
	}
	return nil
}

// suiteList is an option listing cipher suites by IANA name.
type suiteList []uint16

func (l *suiteList) UnmarshalText(b []byte) error {
	*l = nil
	for _, n := range splitList(string(b)) {
		id, ok := tlsbridge.CipherSuiteByName(n)
		if !ok {
			return fmt.Errorf("%q is not an IANA cipher suite name", n)
		}
		*l = append(*l, id)
	}
	return nil
}

// keyed is an error about another option than the one being bound (a
// check across options).
func keyed(key string, format string, a ...any) error {
	return &keyError{key: key, err: fmt.Errorf(format, a...)}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func versionNames(vs []uint16) string {
	return strings.Join(mapNames(vs, tlsbridge.VersionName), ", ")
}

func suiteNames(vs []uint16) string {
	return strings.Join(mapNames(vs, tlsbridge.CipherSuiteName), ", ")
}

func mapNames(vs []uint16, f func(uint16) string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = f(v)
	}
	return out
}
