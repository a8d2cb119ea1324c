package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/control"
)

func init() { subcommands = append(subcommands, newRunCmd) }

// runFlags are run's command-line flags; each overrides the key of the same
// meaning in the environment and the file, and only when given.
type runFlags struct {
	config       string
	name         string
	listen       string
	upstream     string
	dialTimeout  time.Duration
	logLevel     string
	logFormat    string
	logFile      string
	drainTimeout time.Duration
	admin        string
	bridge       bridgeFlags // bridgeflags.go
}

// flagKeys maps run's flags to the config keys they override.
var flagKeys = map[string]string{
	"log-level":     "log.level",
	"log-format":    "log.format",
	"log-file":      "log.file",
	"drain-timeout": "shutdown.drain_timeout",
	"admin":         "admin.listen",
}

// proxyFlagKeys maps the keys of the one proxy --listen/--upstream define to
// their flags.
var proxyFlagKeys = map[string]string{
	"name":         "name",
	"listen":       "listen",
	"upstream":     "upstream",
	"dial_timeout": "dial-timeout",
}

// runLong is run's help text; the scenario flags' help (scenarioHelp)
// follows it.
const runLong = `Run one or more proxies in front of SQL Server until SIGINT or SIGTERM.

Each proxy accepts clients on its listen address and relays every connection,
byte for byte, to its one upstream SQL Server, recording how the connection
negotiates (PRELOGIN, TLS, LOGIN7; never the password). Each connection ends
with one "connection closed" log line holding its whole record.

Give one proxy with --listen and --upstream, or any number in a YAML file with
--config (print an annotated one with "tdsproxy config example"). Flags
override TDSPROXY_* environment variables, which override the file;
--listen/--upstream replace the file's proxies with one.

The admin API (127.0.0.1:8475 unless --admin or admin.listen say otherwise;
"off" disables it; if the default is taken, by a second tdsproxy say, a free
loopback port, logged) lists proxies and open connections, adds and removes
proxies and fault rules while clients run, closes connections, serves the
records of finished connections and Prometheus metrics (/metrics). A
non-loopback address needs admin.token (TDSPROXY_ADMIN_TOKEN). Watch it with
"tdsproxy top".

With --config, tdsproxy re-reads the file when it changes and on SIGHUP:
proxies are added, removed or replaced and fault rules swapped, while open
connections keep flowing untouched. An invalid file is rejected with an
error naming the key, and the running configuration stays.

On SIGINT or SIGTERM tdsproxy stops accepting, waits up to the drain timeout
for open connections to end, then closes the rest (shutdown.close: fin or
rst), and exits 0. A second signal, a second or more after the first,
exits at once (one sent twice at once, as GNU timeout does, is one request).

Fault injection: --scenario NAME puts one documented 10054 scenario on the
--listen/--upstream proxy, shaped by the flags below; a --config proxy takes
any number of rules, scenarios and generic faults (latency, bandwidth,
slicer, timeout, reset, limit_data, slow_close) under its faults key (see
"tdsproxy config example --faults"). Each injection lands in the
connection's record and log line.

Platforms: on Linux the relay splices between sockets, an idle
connection holds no buffer, and a FIN drain that ends in an RST is
detected; on Windows and macOS the relay copies through a pooled buffer
and a FIN drain that runs out is recorded as "may have ended with an
RST". On Windows --backlog pauses accepts but cannot shrink the listen
queue (a warning says so).

`

func newRunCmd() *cobra.Command {
	var f runFlags
	var sf scenarioFlags
	cmd := &cobra.Command{
		Use:     "run",
		Short:   "Run proxies in front of SQL Server until SIGINT or SIGTERM",
		Long:    runLong + scenarioHelp(),
		Example: runExample(),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("run takes no arguments, got %q (a config file goes after --config)", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runCommand(cmd, &f, &sf) },
	}
	bindRunFlags(cmd, &f)
	bindScenarioFlags(cmd, &sf)
	return cmd
}

// runCommand is "tdsproxy run": the configuration (flags over environment over
// file, with a --scenario rule), the logger, the signal handling, reloads
// of --config (loaded and validated by the same loadRunConfigRule as the
// first load), then the proxies until shutdown.
func runCommand(cmd *cobra.Command, f *runFlags, sf *scenarioFlags) error {
	rule, err := scenarioRule(cmd, sf)
	if err != nil {
		return err
	}
	cfg, err := loadRunConfigRule(cmd, f, rule)
	if err != nil {
		return err
	}
	where := runKeySource(cmd, f)
	log, cleanup, err := newLogger(cfg.Log, isTerminal(os.Stderr))
	if err != nil {
		return configUsageError(err, where)
	}
	defer cleanup()
	ctx, stop := notifyShutdown(cmd.Context(), log, cleanup)
	defer stop()
	var rl *reloads
	if f.config != "" {
		rl = &reloads{load: func() (*configs.Config, error) { return loadRunConfigRule(cmd, f, rule) }, where: where}
	}
	watchReloads(ctx, rl, f.config, log)
	return runProxies(ctx, cfg, log, rl, where)
}

// bindRunFlags defines run's flags on cmd, storing into f. Flag defaults are
// the configs defaults, shown in --help; a flag overrides only when given.
func bindRunFlags(cmd *cobra.Command, f *runFlags) {
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", "", "YAML `file` with proxies, log and shutdown settings (see: tdsproxy config example)")
	fl.StringVar(&f.listen, "listen", "", "`host:port` clients connect to, e.g. 127.0.0.1:11433 (with --upstream: one proxy, replacing the file's)")
	fl.StringVar(&f.upstream, "upstream", "", "`host:port` of the SQL Server to relay to, e.g. sql01.example.com:1433")
	fl.StringVar(&f.name, "name", "default", "`name` of the --listen/--upstream proxy in logs and records")
	fl.DurationVar(&f.dialTimeout, "dial-timeout", configs.DefaultDialTimeout, "longest wait to connect to --upstream")
	fl.StringVar(&f.logLevel, "log-level", configs.DefaultLogLevel, "debug, info, warn or error (env TDSPROXY_LOG_LEVEL)")
	fl.StringVar(&f.logFormat, "log-format", configs.DefaultLogFormat, "json, console, or auto: console on a terminal, else json (env TDSPROXY_LOG_FORMAT)")
	fl.StringVar(&f.logFile, "log-file", "", "append the log to `path` instead of stderr (env TDSPROXY_LOG_FILE)")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", configs.DefaultDrainTimeout, "on SIGINT/SIGTERM, wait this long for open connections before closing them (env TDSPROXY_SHUTDOWN_DRAIN_TIMEOUT)")
	bindBridgeFlags(cmd, &f.bridge)
	fl.StringVar(&f.admin, "admin", configs.DefaultAdminListen, "`host:port` of the admin API (proxies, faults, connections, records, metrics), or off; a non-loopback address needs admin.token (env TDSPROXY_ADMIN_LISTEN; token: TDSPROXY_ADMIN_TOKEN)")
}

// loadRunConfig reads --config and the environment, applies the flags that
// were given, and validates the result with checkConfig. Every error is a
// usage error naming the flag, environment variable or file key at fault.
func loadRunConfig(cmd *cobra.Command, f *runFlags) (*configs.Config, error) {
	return loadRunConfigRule(cmd, f, nil)
}

// loadRunConfigRule is loadRunConfig that also adds rule (the --scenario
// one-liner; nil: none) to the one proxy of --listen/--upstream before
// validating, so the rule is checked with the rest.
func loadRunConfigRule(cmd *cobra.Command, f *runFlags, rule map[string]any) (*configs.Config, error) {
	fl := cmd.Flags()
	proxyFromFlags := fl.Changed("listen") || fl.Changed("upstream")
	switch {
	case proxyFromFlags && !(fl.Changed("listen") && fl.Changed("upstream")):
		return nil, usagef("--listen and --upstream go together: give both (one proxy), or neither and proxies in --config")
	case !proxyFromFlags && (fl.Changed("name") || fl.Changed("dial-timeout")):
		return nil, usagef("--name and --dial-timeout set the proxy of --listen and --upstream; for the proxies of --config set name and dial_timeout in the file")
	case !proxyFromFlags && f.config == "":
		return nil, usagef("nothing to run: give --listen and --upstream, or --config FILE (see tdsproxy run --help)")
	}

	where := runKeySource(cmd, f)
	cfg, err := configs.Load(f.config)
	if err != nil {
		if len(configs.KeyErrors(err)) == 0 {
			return nil, usagef("--config: %w", err)
		}
		return nil, configUsageError(err, where)
	}
	if fl.Changed("log-level") {
		cfg.Log.Level = f.logLevel
	}
	if fl.Changed("log-format") {
		cfg.Log.Format = f.logFormat
	}
	if fl.Changed("log-file") {
		cfg.Log.File = f.logFile
	}
	if fl.Changed("drain-timeout") {
		cfg.Shutdown.DrainTimeout = f.drainTimeout
	}
	if fl.Changed("admin") {
		cfg.Admin.Listen = f.admin
		cfg.MarkSet("admin.listen")
	}
	if proxyFromFlags {
		cfg.Proxies = []configs.ProxyConfig{{Name: f.name, Listen: f.listen, Upstream: f.upstream, DialTimeout: f.dialTimeout,
			NegotiationTimeout: configs.DefaultNegotiationTimeout}}
		cfg.ApplyDefaults()
		if rule != nil {
			cfg.Proxies[0].Faults = append(cfg.Proxies[0].Faults, rule)
		}
	}
	var flagProxy *configs.ProxyConfig
	if proxyFromFlags {
		flagProxy = &cfg.Proxies[0]
	}
	if err := f.bridge.apply(cmd, flagProxy); err != nil {
		return nil, err
	}
	if err := checkConfig(cfg); err != nil {
		return nil, configUsageError(err, where)
	}
	return cfg, nil
}

// checkConfig runs every check run --config makes before it starts
// anything, so that config check passes exactly the files run accepts:
// the keys (configs), the admin address against its token, and every
// proxy's fault rules.
func checkConfig(cfg *configs.Config) error {
	err := errors.Join(cfg.Validate(), validateFaults(cfg))
	if cfg.Admin.Listen != configs.AdminDisabled {
		if aerr := control.CheckAdminListen(cfg.Admin.Listen, cfg.Admin.Token); errors.Is(aerr, control.ErrTokenRequired) {
			err = errors.Join(err, &configs.KeyError{Key: "admin.listen", Err: aerr})
		}
	}
	return err
}

// runKeySource returns a function naming where a key's value came from: the
// flag that set it, else its environment variable if set, else the file.
func runKeySource(cmd *cobra.Command, f *runFlags) func(key string) string {
	fl := cmd.Flags()
	return func(key string) string {
		for flag, k := range flagKeys {
			if k == key && fl.Changed(flag) {
				return "--" + flag
			}
		}
		if rest, ok := strings.CutPrefix(key, "proxies[0]."); ok && fl.Changed("listen") {
			if flag, ok := proxyFlagKeys[rest]; ok {
				return "--" + flag
			}
		}
		return keySource(f.config)(key)
	}
}

// keySource names a key's origin when no flag set it: its environment
// variable when that is set, else the key in file.
func keySource(file string) func(key string) string {
	return func(key string) string {
		if ev := configs.EnvVar(key); !strings.HasPrefix(key, "proxies") && os.Getenv(ev) != "" {
			return ev
		}
		if file != "" {
			return file + ": " + key
		}
		return key
	}
}

// configUsageError turns errors of configs.Load/Validate/newLogger into one
// usage error (exit 2), a line per problem, each naming its source.
func configUsageError(err error, where func(key string) string) error {
	kes := configs.KeyErrors(err)
	if len(kes) == 0 {
		return usageError{err}
	}
	lines := make([]string, len(kes))
	for i, ke := range kes {
		lines[i] = where(ke.Key) + ": " + ke.Err.Error()
	}
	return usageError{errors.New(strings.Join(lines, "\n"))}
}

// forceGrace is how long after the first SIGINT/SIGTERM a second one is
// taken as a repeat of the first rather than a request to exit at once:
// GNU timeout, for one, sends SIGTERM to the process and again to its
// group, so a single "stop" arrives twice within microseconds.
const forceGrace = time.Second

// notifyShutdown returns a context cancelled by the first SIGINT or SIGTERM;
// a second one, more than forceGrace later, flushes the log and exits at
// once, without draining. stop releases the signals.
func notifyShutdown(parent context.Context, log *zap.Logger, flush func()) (ctx context.Context, stop func()) {
	return notifyShutdownWith(parent, log, forceGrace, func() {
		flush()
		os.Exit(1)
	})
}

// notifyShutdownWith is notifyShutdown with the grace and the forced exit
// as parameters (tests).
func notifyShutdownWith(parent context.Context, log *zap.Logger, grace time.Duration, force func()) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		var first time.Time
		select {
		case s := <-sigs:
			first = time.Now()
			log.Info("signal received: shutting down; send it again to exit at once", zap.Stringer("signal", s))
			cancel()
		case <-done:
			return
		}
		for {
			select {
			case s := <-sigs:
				if time.Since(first) < grace {
					log.Info("signal repeated at once: taken as the same request; still draining",
						zap.Stringer("signal", s), zap.Duration("force_after", grace))
					continue
				}
				log.Warn("second signal: exiting without draining", zap.Stringer("signal", s))
				force()
				return
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(sigs)
			close(done)
			cancel()
		})
	}
}

// reloads is how run re-reads its configuration (only with --config): on
// SIGHUP and when the file changes, load reads it again and runProxies
// applies it.
type reloads struct {
	load func() (*configs.Config, error)
	// where names a key's origin in error messages.
	where func(key string) string
	// trigger receives what asked for a reload ("SIGHUP", "file changed");
	// several requests while one is pending become one.
	trigger chan string
}

// request asks for a reload without blocking.
func (rl *reloads) request(why string) {
	select {
	case rl.trigger <- why:
	default:
	}
}

// watchReloads turns SIGHUP and changes of file into reload requests of rl
// until ctx is done. Without a config file (rl nil) SIGHUP is only logged:
// it must not kill a running proxy.
func watchReloads(ctx context.Context, rl *reloads, file string, log *zap.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	if rl != nil && rl.trigger == nil {
		rl.trigger = make(chan string, 1)
	}
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if rl == nil {
					log.Warn("SIGHUP: nothing to reload (no --config)")
					continue
				}
				rl.request("SIGHUP")
			}
		}
	}()
	if rl == nil {
		return
	}
	if err := control.WatchFile(ctx, file, func() { rl.request("file changed") }); err != nil {
		log.Warn("cannot watch the config file; reload it with SIGHUP", zap.String("file", file), zap.Error(err))
	}
}

// runProxies starts the admin API and every proxy of cfg, and serves until
// ctx is done, applying each configuration rl reloads (nil: none). It then
// stops accepting, drains open connections for shutdown.drain_timeout and
// closes the rest as shutdown.close says, and returns nil. An error means
// a proxy or the admin API could not start; nothing is left running. where
// names a key's origin (flag, environment variable, file key) in errors;
// nil means the keys' own names.
func runProxies(ctx context.Context, cfg *configs.Config, log *zap.Logger, rl *reloads, where func(key string) string) error {
	if where == nil {
		where = keySource("")
	}
	in, err := control.New(control.Options{Logger: log, Version: currentBuild().Version})
	if err != nil {
		return err
	}
	// The admin API first: a busy address the user chose stops the start
	// before any proxy runs or "configuration applied" is logged.
	if err := serveAdmin(in, cfg, log); err != nil {
		_ = in.Close()
		return configUsageError(err, where)
	}
	// The first Apply starts everything: every listener is bound before
	// any proxy starts, so a busy port starts nothing.
	if err := in.Apply(cfg); err != nil {
		_ = in.Close()
		return configUsageError(err, where)
	}
	log.Info("tdsproxy running", zap.Int("proxies", len(cfg.Proxies)))

	shutdown := cfg.Shutdown
	var trigger <-chan string
	if rl != nil {
		trigger = rl.trigger
	}
serve:
	for {
		select {
		case <-ctx.Done():
			break serve
		case why := <-trigger:
			next, err := rl.load()
			if err != nil {
				in.ReloadRejected() // Apply counts the ones it refuses
			} else if err = in.Apply(next); err != nil {
				err = configUsageError(err, rl.where)
			}
			if err != nil {
				// One line: every problem, no stack trace (a bad file is
				// the user's, not the program's).
				log.WithOptions(zap.AddStacktrace(zapcore.FatalLevel)).Error("configuration reload rejected; the running configuration stays",
					zap.String("trigger", why), zap.String("error", errorLine(err)))
				continue
			}
			if next.Log != cfg.Log || next.Admin != cfg.Admin {
				log.Warn("log and admin settings changed: they take effect at the next start", zap.String("trigger", why))
			}
			shutdown = next.Shutdown
			log.Info("configuration reloaded", zap.String("trigger", why), zap.Int("proxies", len(next.Proxies)))
		}
	}

	drain := shutdown.DrainTimeout
	log.Info("shutting down: no new connections, draining open ones",
		zap.Duration("drain_timeout", drain), zap.String("then_close", shutdown.Close))
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := in.Shutdown(dctx, shutdown.ResetOnClose()); err != nil {
		log.Warn("drain timeout: closed the connections still open", zap.String("close", shutdown.Close), zap.Error(err))
	}
	log.Info("tdsproxy stopped")
	return nil
}

// errorLine joins a multi-line error (one line per key) with "; ".
func errorLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// serveAdmin starts the admin API as cfg.Admin says. When the address is
// the default one (not chosen by the user) and is taken, say by a second
// tdsproxy on the machine, the API moves to a free loopback port and one
// log line says where and how to choose: an optional side service must not
// stop the proxies. An address the user chose that cannot be served is a
// KeyError for admin.listen.
func serveAdmin(in *control.Instance, cfg *configs.Config, log *zap.Logger) error {
	admin := cfg.Admin.Listen
	if admin == "" {
		admin = configs.DefaultAdminListen
	}
	if admin == configs.AdminDisabled {
		return nil
	}
	_, err := in.ServeAdmin(admin, cfg.Admin.Token)
	if err == nil {
		return nil
	}
	chosen := cfg.IsSet("admin.listen") || admin != configs.DefaultAdminListen
	if chosen || !errors.Is(err, syscall.EADDRINUSE) {
		return &configs.KeyError{Key: "admin.listen", Err: err}
	}
	free := "127.0.0.1:0"
	addr, ferr := in.ServeAdmin(free, cfg.Admin.Token)
	if ferr != nil {
		log.Warn("admin API not started: its default address is in use; choose one with --admin host:port or admin.listen (TDSPROXY_ADMIN_LISTEN), or off",
			zap.String("default", admin), zap.String("error", ferr.Error()))
		return nil
	}
	log.Warn("admin API moved to a free port: its default address is in use (another tdsproxy?); choose one with --admin host:port or admin.listen (TDSPROXY_ADMIN_LISTEN), or off",
		zap.String("default", admin), zap.Stringer("listen", addr))
	return nil
}
