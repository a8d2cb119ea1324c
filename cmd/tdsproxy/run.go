package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
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
}

// flagKeys maps run's flags to the config keys they override.
var flagKeys = map[string]string{
	"log-level":     "log.level",
	"log-format":    "log.format",
	"log-file":      "log.file",
	"drain-timeout": "shutdown.drain_timeout",
}

// proxyFlagKeys maps the keys of the one proxy --listen/--upstream define to
// their flags.
var proxyFlagKeys = map[string]string{
	"name":         "name",
	"listen":       "listen",
	"upstream":     "upstream",
	"dial_timeout": "dial-timeout",
}

func newRunCmd() *cobra.Command {
	var f runFlags
	var sf scenarioFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run proxies in front of SQL Server until SIGINT or SIGTERM",
		Long: `Run one or more proxies in front of SQL Server until SIGINT or SIGTERM.

Each proxy accepts clients on its listen address and relays every connection,
byte for byte, to its one upstream SQL Server, recording how the connection
negotiates (PRELOGIN, TLS, LOGIN7; never the password). Each connection ends
with one "connection closed" log line holding its whole record.

Give one proxy with --listen and --upstream, or any number in a YAML file with
--config (print an annotated one with "tdsproxy config example"). Flags
override TDSPROXY_* environment variables, which override the file;
--listen/--upstream replace the file's proxies with one.

On SIGINT or SIGTERM tdsproxy stops accepting, waits up to the drain timeout
for open connections to end, then closes the rest (shutdown.close: fin or
rst). A second signal exits at once.

Fault injection: --scenario NAME puts one documented 10054 scenario on the
--listen/--upstream proxy, shaped by the flags below; a --config proxy takes
any number of rules, scenarios and generic faults (latency, bandwidth,
slicer, timeout, reset, limit_data, slow_close) under its faults key (see
"tdsproxy config example --faults"). Each injection lands in the
connection's record and log line.

` + scenarioHelp(),
		Example: `  # Front a real server; point the application's connection string at 127.0.0.1,11433
  tdsproxy run --listen 127.0.0.1:11433 --upstream sql01.example.com:1433

  # Readable log with a line per negotiation phase
  tdsproxy run --listen 127.0.0.1:11433 --upstream sql01.example.com:1433 \
      --log-level debug --log-format console

  # Several proxies from a file: write it, check it, run it
  tdsproxy config example > tdsproxy.yaml
  tdsproxy config check tdsproxy.yaml
  tdsproxy run --config tdsproxy.yaml

  # Reproduce scenario 1: clients offering only TLS 1.0/1.1 are reset at the
  # ClientHello, as a TLS 1.2-only SQL Server does
  tdsproxy run --listen 127.0.0.1:11433 --upstream sql01:1433 \
      --scenario protocol-mismatch --server-tls 1.2

  # Scenario 6: logins answered 20s late, for 30% of connections, replayable
  tdsproxy run --listen 127.0.0.1:11433 --upstream sql01:1433 \
      --scenario delayed-accept --login-delay 20s --probability 0.3 --seed 7

  # Environment variables override the file; flags override both
  TDSPROXY_LOG_FILE=/var/log/tdsproxy.log TDSPROXY_SHUTDOWN_DRAIN_TIMEOUT=2m \
      tdsproxy run --config tdsproxy.yaml --log-level warn`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("run takes no arguments, got %q (a config file goes after --config)", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			rule, err := scenarioRule(cmd, &sf)
			if err != nil {
				return err
			}
			cfg, err := loadRunConfig(cmd, &f)
			if err != nil {
				return err
			}
			if rule != nil {
				cfg.Proxies[0].Faults = append(cfg.Proxies[0].Faults, rule)
			}
			if err := validateFaults(cfg); err != nil {
				return configUsageError(err, runKeySource(cmd, &f))
			}
			log, cleanup, err := newLogger(cfg.Log, isTerminal(os.Stderr))
			if err != nil {
				return configUsageError(err, runKeySource(cmd, &f))
			}
			defer cleanup()
			ctx, stop := notifyShutdown(cmd.Context(), log, cleanup)
			defer stop()
			return runProxies(ctx, cfg, log)
		},
	}
	bindRunFlags(cmd, &f)
	bindScenarioFlags(cmd, &sf)
	return cmd
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
}

// loadRunConfig reads --config and the environment, applies the flags that
// were given, and validates the result. Every error is a usage error naming
// the flag, environment variable or file key at fault.
func loadRunConfig(cmd *cobra.Command, f *runFlags) (*configs.Config, error) {
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
	if proxyFromFlags {
		cfg.Proxies = []configs.ProxyConfig{{Name: f.name, Listen: f.listen, Upstream: f.upstream, DialTimeout: f.dialTimeout}}
	}
	if err := cfg.Validate(); err != nil {
		return nil, configUsageError(err, where)
	}
	return cfg, nil
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

// notifyShutdown returns a context cancelled by the first SIGINT or SIGTERM;
// a second one flushes the log and exits at once, without draining. stop
// releases the signals.
func notifyShutdown(parent context.Context, log *zap.Logger, flush func()) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			log.Info("signal received: shutting down; send it again to exit at once", zap.Stringer("signal", s))
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-sigs:
			log.Warn("second signal: exiting without draining", zap.Stringer("signal", s))
			flush()
			os.Exit(1)
		case <-done:
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

// runProxies starts every proxy of cfg and serves until ctx is done; it then
// stops accepting, drains open connections for shutdown.drain_timeout and
// closes the rest as shutdown.close says. An error means a proxy could not
// start; the others are closed before it returns.
func runProxies(ctx context.Context, cfg *configs.Config, log *zap.Logger) error {
	ids := new(atomic.Uint64) // connection ids unique across the proxies
	engine := faults.NewEngine(nil)
	var started []*proxy.Proxy
	for _, pc := range cfg.Proxies {
		opts := proxy.Options{Logger: log, IDs: ids}
		if len(pc.Faults) > 0 {
			specs, err := faults.RuleSpecsFromMaps(pc.Faults)
			if err == nil {
				err = engine.SetRules(pc.Name, specs)
			}
			if err != nil {
				for _, s := range started {
					_ = s.Close()
				}
				return fmt.Errorf("proxy %q: %w", pc.Name, err)
			}
			for _, r := range engine.Rules(pc.Name) {
				log.Info("fault rule armed", zap.String("proxy", pc.Name), zap.String("rule", r.Name),
					zap.String("scenario", r.Scenario), zap.String("action", r.Action), zap.Uint64("seed", r.Seed))
			}
			opts.Decider = engine.Decider(pc.Name)
		}
		p, err := proxy.New(proxy.Config{
			Name:        pc.Name,
			Listen:      pc.Listen,
			Upstream:    pc.Upstream,
			DialTimeout: pc.DialTimeout,
		}, opts)
		if err == nil {
			err = p.Start() // logs "proxy listening" with the bound address
		}
		if err != nil {
			for _, s := range started {
				_ = s.Close()
			}
			return err
		}
		started = append(started, p)
	}
	log.Info("tdsproxy running", zap.Int("proxies", len(started)))

	<-ctx.Done()

	drain := cfg.Shutdown.DrainTimeout
	log.Info("shutting down: no new connections, draining open ones",
		zap.Duration("drain_timeout", drain), zap.String("then_close", cfg.Shutdown.Close))
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range started {
		wg.Go(func() {
			open := len(p.Connections())
			if err := p.Shutdown(dctx, cfg.Shutdown.ResetOnClose()); err != nil && open > 0 {
				log.Warn("drain timeout: closed the connections still open",
					zap.String("proxy", p.Config().Name), zap.String("close", cfg.Shutdown.Close))
			}
		})
	}
	wg.Wait()
	log.Info("tdsproxy stopped")
	return nil
}
