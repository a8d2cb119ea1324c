// Package configs is tdsproxy's configuration: the schema, loading it from a
// YAML file and TDSPROXY_* environment variables (viper), defaults, and
// validation whose every error names the key at fault.
//
// The annotated example, tdsproxy.yaml beside this file, documents every key;
// [Example] returns it. It is loaded and validated by this package's tests,
// so it cannot drift from the schema.
//
// configs knows nothing of the proxy package: cmd/tdsproxy turns a Config
// into proxies (the arrows point cmd -> proxy, configs).
package configs

import (
	_ "embed"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
)

//go:embed tdsproxy.yaml
var example []byte

//go:embed faults-example.yaml
var faultsExample []byte

// FaultsExample returns an annotated configuration with fault rules: one per
// scenario and a few generic faults (faults-example.yaml).
func FaultsExample() []byte { return append([]byte(nil), faultsExample...) }

// ValidateFaults checks every proxy's fault rules with parse (usually
// faults.RuleSpecsFromMaps); each problem becomes a KeyError naming
// proxies[i].faults[j].key, from the faults.RuleError's Index and Key.
func (c *Config) ValidateFaults(parse func(rules []map[string]any) error) error {
	var errs []error
	for i, p := range c.Proxies {
		if len(p.Faults) == 0 {
			continue
		}
		if err := parse(p.Faults); err != nil {
			errs = append(errs, faultKeyError(i, err))
		}
	}
	return errors.Join(errs...)
}

// faultKeyError names a rule error by its whole path.
func faultKeyError(i int, err error) *KeyError {
	var re *faults.RuleError
	if !errors.As(err, &re) {
		return &KeyError{Key: fmt.Sprintf("proxies[%d].faults", i), Err: err}
	}
	key := fmt.Sprintf("proxies[%d].faults[%d]", i, re.Index)
	if re.Key != "" {
		key += "." + re.Key
	}
	return &KeyError{Key: key, Err: errors.New(re.Reason())}
}

// Example returns the annotated example configuration (tdsproxy.yaml), which
// documents every key with its default. The caller owns the returned slice.
func Example() []byte { return append([]byte(nil), example...) }

// EnvPrefix is the prefix of the environment variables that override the
// file: log.level is TDSPROXY_LOG_LEVEL.
const EnvPrefix = "TDSPROXY"

// Defaults, applied by [Load] (and by [Config.ApplyDefaults]) where a key is
// absent or empty.
const (
	DefaultLogLevel    = "info"
	DefaultLogFormat   = "auto"
	DefaultAdminListen = "127.0.0.1:8475"
	// The per-proxy defaults are package proxy's own constants: written
	// once. One meaning differs on purpose: proxy.Config's zero
	// NegotiationTimeout means the default and a negative one none, while
	// here an absent key means the default and "0s" none;
	// control.ProxyConfigFrom maps one to the other.
	DefaultDialTimeout          = proxy.DefaultDialTimeout
	DefaultMaxConnections       = proxy.DefaultMaxConnections
	DefaultNegotiationTimeout   = proxy.DefaultNegotiationTimeout
	DefaultMaxNegotiationBuffer = proxy.DefaultMaxNegotiationBuffer
	DefaultLimitClose           = "rst"
	DefaultDrainTimeout         = 30 * time.Second
	DefaultShutdownClose        = "fin"
)

// Config is the whole configuration of one tdsproxy process.
//
// Durations are time.Duration here; in YAML and in the environment they are
// Go duration strings ("10s", "1m30s"): a bare number is an error, not
// nanoseconds.
type Config struct {
	// Log is the "log" section: where and how tdsproxy writes its log.
	Log LogConfig
	// Admin is the "admin" section: the HTTP admin API (package control).
	Admin AdminConfig
	// Proxies is the "proxies" list: one listener and one upstream each.
	// A list has no environment variable; it comes from a file or from
	// `tdsproxy run --listen --upstream`.
	Proxies []ProxyConfig
	// Shutdown is the "shutdown" section: what SIGINT/SIGTERM does.
	Shutdown ShutdownConfig
	// Diagnosis is the "diagnosis" section: what each finished connection's
	// diagnosis calls slow (package diagnose).
	Diagnosis DiagnosisConfig

	// given holds the scalar keys the file or the environment set (as
	// opposed to defaults); see IsSet.
	given map[string]bool
}

// IsSet reports whether key (e.g. "admin.listen") was given by the file or
// an environment variable when [Load] read the configuration, or marked
// with [Config.MarkSet] (a command-line flag), rather than left to its
// default. An optional side service may start elsewhere when its default
// address is taken, but not when the user chose the address.
func (c *Config) IsSet(key string) bool { return c.given[key] }

// MarkSet records that key was given by the user (a command-line flag).
func (c *Config) MarkSet(key string) {
	if c.given == nil {
		c.given = map[string]bool{}
	}
	c.given[key] = true
}

// LogConfig is the "log" section.
type LogConfig struct {
	// Level (log.level) is the least severity written: debug, info, warn
	// or error. Empty means info.
	Level string
	// Format (log.format) is json, console or auto. Empty means auto:
	// console when the log goes to a terminal, json otherwise.
	Format string
	// File (log.file) is a path to append the log to. Empty means stderr.
	File string
}

// AdminConfig is the "admin" section: where the admin HTTP API (package
// control) listens and the bearer token it requires.
type AdminConfig struct {
	// Listen (admin.listen) is the admin API's host:port. Empty means
	// 127.0.0.1:8475; "off" disables the API.
	Listen string
	// Token (admin.token) is the bearer token the admin API requires.
	// It is a secret: set it with TDSPROXY_ADMIN_TOKEN rather than in a
	// file, and never log it.
	Token string
}

// AdminDisabled is the admin.listen value that switches the admin API off.
const AdminDisabled = "off"

// ProxyConfig is one entry of the "proxies" list.
//
// Fault rules (a "faults" list per proxy) are kept raw and checked by
// ValidateFaults with package faults' parser; see faults-example.yaml
// rather than a setting silently ignored.
type ProxyConfig struct {
	// Name (proxies[i].name) identifies the proxy in logs, records and the
	// admin API: letters, digits, '.', '_' and '-', unique.
	Name string
	// Listen (proxies[i].listen) is the host:port clients connect to. An
	// empty host means every interface; port 0 picks a free port.
	Listen string
	// Upstream (proxies[i].upstream) is the SQL Server to relay to,
	// host:port. The proxy never connects anywhere a client asks for.
	Upstream string
	// DialTimeout (proxies[i].dial_timeout) bounds each upstream dial.
	// Absent means DefaultDialTimeout (10s).
	DialTimeout time.Duration
	// Faults (proxies[i].faults) are the proxy's fault rules, kept as the
	// generic maps the file holds: package faults owns their schema, and
	// ValidateFaults checks them with its parser (configs does not import
	// faults).
	Faults []map[string]any
	// MaxConnections (proxies[i].max_connections) caps the connections
	// open at once; -1 means no cap. Absent or 0 means 10000.
	MaxConnections int
	// NegotiationTimeout (proxies[i].negotiation_timeout) bounds accept to
	// login answered; "0s" disables it. Absent means
	// DefaultNegotiationTimeout (60s).
	NegotiationTimeout time.Duration
	// MaxNegotiationBuffer (proxies[i].max_negotiation_buffer) caps what is
	// buffered per direction to parse one negotiation message, in bytes.
	// Absent means 262144.
	MaxNegotiationBuffer int
	// LimitClose (proxies[i].limit_close) is how a limit closes a
	// connection: rst or fin. Absent means rst.
	LimitClose string
	// Bridge (proxies[i].bridge), when present, makes the proxy terminate
	// TLS on both legs (bridge.go, docs/bridge.md). Absent: passthrough.
	Bridge *BridgeConfig
}

// ShutdownConfig is the "shutdown" section.
type ShutdownConfig struct {
	// DrainTimeout (shutdown.drain_timeout) is how long, after SIGINT or
	// SIGTERM, tdsproxy waits for open connections to end by themselves
	// before it closes them. Absent means 30s; 0s closes them at once.
	DrainTimeout time.Duration
	// Close (shutdown.close) is how connections still open after the drain
	// are closed: "fin" (an orderly TCP close) or "rst" (a TCP reset, which
	// a Windows client reports as error 10054). Empty means fin.
	Close string
}

// DiagnosisConfig is the "diagnosis" section.
type DiagnosisConfig struct {
	// SlowLogin (diagnosis.slow_login) is the login time above which a
	// finished connection gets a slow-login finding naming its slowest
	// step. Absent means 2s; 0s turns the finding off.
	SlowLogin time.Duration
}

// DefaultSlowLogin is diagnosis.slow_login when absent (diagnose's default).
const DefaultSlowLogin = 2 * time.Second

// ResetOnClose reports whether connections left after the drain are closed
// with a TCP reset (shutdown.close: rst).
func (s ShutdownConfig) ResetOnClose() bool { return s.Close == "rst" }

// KeyError is a problem with one configuration key. Every error of [Load]
// and [Config.Validate] about the configuration's content is (or joins)
// KeyErrors, so a caller can say where a value came from (file, env, flag).
type KeyError struct {
	// Key is the key's path, e.g. "log.level" or "proxies[1].upstream".
	Key string
	// Err says what is wrong with it.
	Err error
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Err.Error() }

// Unwrap returns the underlying problem.
func (e *KeyError) Unwrap() error { return e.Err }

func keyErrorf(key, format string, a ...any) *KeyError {
	return &KeyError{Key: key, Err: fmt.Errorf(format, a...)}
}

// KeyErrors returns every KeyError in err (which may join several), in order.
func KeyErrors(err error) []*KeyError {
	var out []*KeyError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if ke, ok := e.(*KeyError); ok {
			out = append(out, ke)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// rawConfig is the configuration as written: durations stay strings so that a
// bad one is reported with its key, and "10" is an error rather than 10ns.
type rawConfig struct {
	Log       rawLog       `mapstructure:"log"`
	Admin     rawAdmin     `mapstructure:"admin"`
	Proxies   []rawProxy   `mapstructure:"proxies"`
	Shutdown  rawShutdown  `mapstructure:"shutdown"`
	Diagnosis rawDiagnosis `mapstructure:"diagnosis"`
}

type rawDiagnosis struct {
	SlowLogin string `mapstructure:"slow_login"`
}

type rawLog struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
	File   string `mapstructure:"file"`
}

type rawAdmin struct {
	Listen string `mapstructure:"listen"`
	Token  string `mapstructure:"token"`
}

type rawProxy struct {
	Name                 string           `mapstructure:"name"`
	Listen               string           `mapstructure:"listen"`
	Upstream             string           `mapstructure:"upstream"`
	DialTimeout          string           `mapstructure:"dial_timeout"`
	Faults               []map[string]any `mapstructure:"faults"`
	MaxConnections       *int             `mapstructure:"max_connections"`
	NegotiationTimeout   string           `mapstructure:"negotiation_timeout"`
	MaxNegotiationBuffer *int             `mapstructure:"max_negotiation_buffer"`
	LimitClose           string           `mapstructure:"limit_close"`
	Bridge               *rawBridge       `mapstructure:"bridge"`
}

type rawShutdown struct {
	DrainTimeout string `mapstructure:"drain_timeout"`
	Close        string `mapstructure:"close"`
}

// EnvKeys returns the keys that an environment variable can set, e.g.
// "log.level"; [EnvVar] names the variable. Lists (proxies) have none.
func EnvKeys() []string { return leafKeys(reflect.TypeFor[rawConfig](), "") }

// leafKeys lists the scalar keys of a raw struct by their mapstructure tags,
// so the list of environment variables cannot drift from the schema.
func leafKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for f := range t.Fields() {
		key := prefix + f.Tag.Get("mapstructure")
		switch f.Type.Kind() {
		case reflect.Struct:
			keys = append(keys, leafKeys(f.Type, key+".")...)
		case reflect.String:
			keys = append(keys, key)
		}
	}
	return keys
}

// EnvVar names the environment variable that overrides key:
// "shutdown.drain_timeout" -> "TDSPROXY_SHUTDOWN_DRAIN_TIMEOUT".
func EnvVar(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Load reads the YAML file at path (none when path is empty), applies the
// TDSPROXY_* environment variables over it and then the defaults, and returns
// the result. Unknown keys, values of the wrong type and bad durations are
// KeyErrors naming the key; a file that cannot be read or parsed is an error
// naming the file.
//
// An environment variable set to the empty string is ignored (viper's
// default), so it cannot reset a key the file sets.
//
// Load does not validate: callers apply their command-line overrides and then
// call [Config.Validate].
func Load(path string) (*Config, error) {
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	// AutomaticEnv alone answers Get for keys viper already knows; binding
	// every leaf makes Unmarshal see the environment even without a file.
	for _, k := range EnvKeys() {
		if err := v.BindEnv(k); err != nil {
			return nil, fmt.Errorf("bind %s: %w", EnvVar(k), err)
		}
	}
	if path != "" {
		v.SetConfigFile(path)
		// The file is YAML whatever its extension (tdsproxy.conf, ...).
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
	}

	given := map[string]bool{}
	for _, k := range EnvKeys() {
		if v.IsSet(k) {
			given[k] = true
		}
	}
	var raw rawConfig
	var md mapstructure.Metadata
	if err := v.Unmarshal(&raw, func(dc *mapstructure.DecoderConfig) { dc.Metadata = &md }); err != nil {
		return nil, decodeErrors(err)
	}
	// Reported after a successful decode: mapstructure records unused keys
	// only then. A misspelt key must not be silently ignored.
	if len(md.Unused) > 0 {
		sort.Strings(md.Unused)
		errs := make([]error, 0, len(md.Unused))
		for _, k := range md.Unused {
			if k == "" || strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".") || strings.Contains(k, "..") {
				// viper splits keys on '.', so a key like ".x" or "a..b"
				// leaves an empty part: name the key as written.
				errs = append(errs, keyErrorf(fmt.Sprintf("%q", k), "unknown key: a key is empty or has an empty part between dots"))
				continue
			}
			errs = append(errs, keyErrorf(k, "unknown key (see `tdsproxy config example`)"))
		}
		return nil, errors.Join(errs...)
	}
	c, err := raw.resolve()
	if err != nil {
		return nil, err
	}
	c.given = given
	return c, nil
}

// decodeErrors turns mapstructure's errors into KeyErrors.
func decodeErrors(err error) error {
	var errs []error
	var walk func(error)
	walk = func(e error) {
		var de *mapstructure.DecodeError
		switch {
		case errors.As(e, &de) && de.Name() != "":
			inner := de.Unwrap()
			var ue *mapstructure.UnconvertibleTypeError
			if errors.As(inner, &ue) {
				inner = fmt.Errorf("must be %s, not %s", kindName(ue.Expected.Type()), kindName(reflect.TypeOf(ue.Value)))
			}
			errs = append(errs, &KeyError{Key: de.Name(), Err: inner})
		default:
			if u, ok := e.(interface{ Unwrap() []error }); ok {
				for _, x := range u.Unwrap() {
					walk(x)
				}
				return
			}
			errs = append(errs, e)
		}
	}
	walk(err)
	return errors.Join(errs...)
}

// kindName says what a YAML value of type t is, in YAML's words.
func kindName(t reflect.Type) string {
	if t == nil {
		return "null"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping (key: value)"
	case reflect.Bool:
		return "true/false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// resolve parses durations and applies defaults.
func (r *rawConfig) resolve() (*Config, error) {
	var errs []error
	dur := func(key, s string, def time.Duration) time.Duration {
		if s == "" {
			return def
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			errs = append(errs, keyErrorf(key, "%q is not a duration (write e.g. 500ms, 10s, 1m30s)", s))
			return 0
		}
		return d
	}
	c := &Config{
		Log:   LogConfig(r.Log),
		Admin: AdminConfig(r.Admin),
		Shutdown: ShutdownConfig{
			DrainTimeout: dur("shutdown.drain_timeout", r.Shutdown.DrainTimeout, DefaultDrainTimeout),
			Close:        r.Shutdown.Close,
		},
		Diagnosis: DiagnosisConfig{SlowLogin: dur("diagnosis.slow_login", r.Diagnosis.SlowLogin, DefaultSlowLogin)},
	}
	for i, p := range r.Proxies {
		c.Proxies = append(c.Proxies, ProxyConfig{
			Name:     p.Name,
			Listen:   p.Listen,
			Upstream: p.Upstream,
			// A missing dial_timeout resolves to the default; "0s" stays 0
			// and Validate rejects it.
			DialTimeout:          dur(fmt.Sprintf("proxies[%d].dial_timeout", i), p.DialTimeout, DefaultDialTimeout),
			Faults:               p.Faults,
			NegotiationTimeout:   dur(fmt.Sprintf("proxies[%d].negotiation_timeout", i), p.NegotiationTimeout, DefaultNegotiationTimeout),
			MaxConnections:       intOr(p.MaxConnections, DefaultMaxConnections),
			MaxNegotiationBuffer: intOr(p.MaxNegotiationBuffer, DefaultMaxNegotiationBuffer),
			LimitClose:           p.LimitClose,
			Bridge:               p.Bridge.resolve(),
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.ApplyDefaults()
	return c, nil
}

func intOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// ApplyDefaults fills the empty string keys with their defaults. Durations
// are defaulted by Load, where "absent" and "0s" can be told apart.
func (c *Config) ApplyDefaults() {
	if c.Log.Level == "" {
		c.Log.Level = DefaultLogLevel
	}
	if c.Log.Format == "" {
		c.Log.Format = DefaultLogFormat
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = DefaultAdminListen
	}
	if c.Shutdown.Close == "" {
		c.Shutdown.Close = DefaultShutdownClose
	}
	for i := range c.Proxies {
		pc := &c.Proxies[i]
		if pc.LimitClose == "" {
			pc.LimitClose = DefaultLimitClose
		}
		if pc.MaxConnections == 0 {
			pc.MaxConnections = DefaultMaxConnections
		}
		if pc.MaxNegotiationBuffer == 0 {
			pc.MaxNegotiationBuffer = DefaultMaxNegotiationBuffer
		}
	}
}
