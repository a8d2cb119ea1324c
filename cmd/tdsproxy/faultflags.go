package main

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/faults"
)

// scenarioFlags are run's one-liner fault flags: one scenario rule on the
// --listen/--upstream proxy.
type scenarioFlags struct {
	scenario      string
	serverTLS     string
	clientTLS     string
	serverCiphers string
	certHash      string
	dheRate       string
	acceptDelay   time.Duration
	backlog       int
	reject        bool
	preloginDelay time.Duration
	loginDelay    time.Duration
	close         string
	probability   float64
	seed          uint64
	clients       []string
}

// scenarioOptionFlags maps each scenario option flag to its scenarios and
// option key, so a flag that does not fit the chosen scenario is an error
// rather than silently ignored.
var scenarioOptionFlags = map[string]struct {
	scenarios []string
	option    string
}{
	"server-tls":     {[]string{faults.ScenarioProtocolMismatch}, "server_tls"},
	"client-tls":     {[]string{faults.ScenarioProtocolMismatch}, "client_tls"},
	"server-ciphers": {[]string{faults.ScenarioCipherMismatch}, "server_ciphers"},
	"cert-hash":      {[]string{faults.ScenarioWeakCertHash}, "cert_hash"},
	"dhe-rate":       {[]string{faults.ScenarioDHEEnabled, faults.ScenarioDHELeadingZero}, "rate"},
	"accept-delay":   {[]string{faults.ScenarioDelayedAccept}, "accept_delay"},
	"backlog":        {[]string{faults.ScenarioDelayedAccept}, "backlog"},
	"reject":         {[]string{faults.ScenarioDelayedAccept}, "reject"},
	"prelogin-delay": {[]string{faults.ScenarioDelayedAccept}, "prelogin_delay"},
	"login-delay":    {[]string{faults.ScenarioDelayedAccept}, "login_delay"},
}

// ruleFlags are the flags that shape any scenario's rule.
var ruleFlags = []string{"close", "probability", "seed", "clients"}

func bindScenarioFlags(cmd *cobra.Command, f *scenarioFlags) {
	fl := cmd.Flags()
	fl.StringVar(&f.scenario, "scenario", "", "inject a documented 10054 scenario on the --listen/--upstream proxy: "+strings.Join(faults.ScenarioNames(), ", "))
	fl.StringVar(&f.serverTLS, "server-tls", "", "protocol-mismatch: TLS `versions` the emulated server allows, e.g. 1.2 or 1.2,1.3 (default 1.2)")
	fl.StringVar(&f.clientTLS, "client-tls", "", "protocol-mismatch: instead emulate an old client allowing only these `versions`, e.g. 1.0,1.1")
	fl.StringVar(&f.serverCiphers, "server-ciphers", "", "cipher-mismatch: IANA `names` of the suites the emulated server allows, comma-separated")
	fl.StringVar(&f.certHash, "cert-hash", "", "weak-cert-hash: the emulated certificate's signature `hash`: md5, sha1, sha224 or sha512 (default md5)")
	fl.StringVar(&f.dheRate, "dhe-rate", "", "dhe-enabled/dhe-leading-zero: natural (1/256), always, or a probability 0..1")
	fl.DurationVar(&f.acceptDelay, "accept-delay", 0, "delayed-accept: hold each accepted connection this long before the server sees it")
	fl.IntVar(&f.backlog, "backlog", 0, "delayed-accept: with --accept-delay, a listen backlog this small with accepts paused, so new SYNs go unanswered")
	fl.BoolVar(&f.reject, "reject", false, "delayed-accept: accept, then reset at once")
	fl.DurationVar(&f.preloginDelay, "prelogin-delay", 0, "delayed-accept: hold the server's PRELOGIN response this long")
	fl.DurationVar(&f.loginDelay, "login-delay", 0, "delayed-accept: hold the server's login response this long")
	fl.StringVar(&f.close, "close", "rst", "how an injected close looks: rst (the client sees 10054 / connection reset), fin, or alert:NAME")
	fl.Float64Var(&f.probability, "probability", 1, "chance 0..1 that a connection is hit")
	fl.Uint64Var(&f.seed, "seed", 0, "seed for --probability and --dhe-rate draws; the same seed and connection sequence give the same decisions (0: random, logged)")
	fl.StringSliceVar(&f.clients, "clients", nil, "hit only clients in these `CIDRs` (comma-separated or repeated)")
}

// scenarioRule builds the one-liner rule from the flags, or returns nil when
// --scenario was not given. A flag that does not apply is a usage error.
func scenarioRule(cmd *cobra.Command, f *scenarioFlags) (map[string]any, error) {
	fl := cmd.Flags()
	if !fl.Changed("scenario") {
		for name := range scenarioOptionFlags {
			if fl.Changed(name) {
				return nil, usagef("--%s: needs --scenario", name)
			}
		}
		for _, name := range ruleFlags {
			if fl.Changed(name) {
				return nil, usagef("--%s: needs --scenario (for rules on a --config proxy, write them under its faults key)", name)
			}
		}
		return nil, nil
	}
	if !fl.Changed("listen") {
		return nil, usagef("--scenario: goes with --listen and --upstream (for --config proxies, write rules under their faults key)")
	}
	opts := map[string]any{}
	for name, of := range scenarioOptionFlags {
		if !fl.Changed(name) {
			continue
		}
		if !containsFold(of.scenarios, f.scenario) {
			return nil, usagef("--%s: applies to %s, not to --scenario %s", name, strings.Join(of.scenarios, " and "), f.scenario)
		}
		opts[of.option] = fl.Lookup(name).Value.String()
	}
	rule := map[string]any{"name": f.scenario, "scenario": f.scenario, "close": f.close}
	if len(opts) > 0 {
		rule["options"] = opts
	}
	match := map[string]any{}
	if fl.Changed("probability") {
		match["probability"] = f.probability
	}
	if len(f.clients) > 0 {
		cl := make([]any, len(f.clients))
		for i, c := range f.clients {
			cl[i] = c
		}
		match["clients"] = cl
	}
	if len(match) > 0 {
		rule["match"] = match
	}
	if f.seed != 0 {
		rule["seed"] = f.seed
	}
	// Validate here so the error names the flag, not a config key.
	if _, err := faults.RuleSpecsFromMaps([]map[string]any{rule}); err != nil {
		return nil, usagef("%s", flagForRuleError(err, f.scenario, fl.Changed))
	}
	return rule, nil
}

// flagForRuleError words a rule error in the flags the user typed:
// "faults[0]: options.server_tls: msg" becomes "--server-tls: msg", and
// option keys inside msg become their flags. An error about an option
// whose flag was not given (a required one) is put on --scenario NAME.
func flagForRuleError(err error, scenario string, given func(flag string) bool) string {
	msg := err.Error()
	_, rest, _ := strings.Cut(msg, ": ")
	key, what, ok := strings.Cut(rest, ": ")
	if !ok {
		return "--scenario " + scenario + ": " + optionsAsFlags(rest)
	}
	what = optionsAsFlags(what)
	flag := ""
	if opt, isOpt := strings.CutPrefix(key, "options."); isOpt {
		for name, of := range scenarioOptionFlags {
			if of.option == opt {
				flag = name
			}
		}
	}
	switch {
	case key == "scenario":
		return "--scenario: " + what
	case key == "close":
		flag = "close"
	case key == "match.probability":
		flag = "probability"
	case strings.HasPrefix(key, "match.clients"):
		flag = "clients"
	case key == "seed":
		flag = "seed"
	}
	switch {
	case flag != "" && given(flag):
		return "--" + flag + ": " + what
	case flag != "" && strings.Contains(what, "--"+flag):
		// "set one of --accept-delay, --backlog, ...": the flag is named.
		return "--scenario " + scenario + ": " + what
	case flag != "":
		return "--scenario " + scenario + ": --" + flag + ": " + what
	}
	return "--scenario " + scenario + ": " + optionsAsFlags(rest)
}

// optionWord matches an option key as a whole word ("login_delay", not
// inside "prelogin_delay").
var optionWord = regexp.MustCompile(`\b[a-z]+(?:_[a-z]+)+\b|\b(?:backlog|reject|rate)\b`)

// optionsAsFlags replaces the option keys a message names with their flags.
func optionsAsFlags(msg string) string {
	return optionWord.ReplaceAllStringFunc(msg, func(w string) string {
		for name, of := range scenarioOptionFlags {
			if of.option == w {
				return "--" + name
			}
		}
		return w
	})
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// validateFaults checks every proxy's rules, naming proxies[i].faults[j].key.
func validateFaults(cfg *configs.Config) error {
	return cfg.ValidateFaults(func(ms []map[string]any) error {
		_, err := faults.RuleSpecsFromMaps(ms)
		return err
	})
}

// scenarioHelp is the part of run's help that lists the scenarios.
func scenarioHelp() string {
	var b strings.Builder
	b.WriteString("Scenarios (--scenario NAME):\n")
	for _, s := range faults.Scenarios() {
		fmt.Fprintf(&b, "  %-18s %s\n  %-18s closes: %s\n", s.Name, s.Summary, "", s.Where)
	}
	return b.String()
}
