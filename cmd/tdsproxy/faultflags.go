package main

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/faults"
)

// scenarioFlags are run's one-liner fault flags: one scenario rule on the
// --listen/--upstream proxy. The scenarios' own option flags are declared
// from the faults table (optionFlags) and read back by name.
type scenarioFlags struct {
	scenario    string
	close       string
	probability float64
	seed        uint64
	clients     []string
}

// optionFlag is one scenario option flag: the option it sets and the
// scenarios that take it (several when they share it, as dhe-rate).
type optionFlag struct {
	flag      string
	typ       faults.OptionType
	scenarios []string
	options   []faults.Option // per scenario, same order
}

// optionFlags lists the scenarios' option flags in table order, one entry
// per flag, so a flag that does not fit the chosen scenario is an error
// rather than silently ignored.
func optionFlags() []optionFlag {
	var out []optionFlag
	for _, s := range faults.Scenarios() {
		for _, o := range s.Options {
			i := slices.IndexFunc(out, func(f optionFlag) bool { return f.flag == o.Flag })
			if i < 0 {
				out = append(out, optionFlag{flag: o.Flag, typ: o.Type})
				i = len(out) - 1
			}
			out[i].scenarios = append(out[i].scenarios, s.Name)
			out[i].options = append(out[i].options, o)
		}
	}
	return out
}

// usage is the flag's help: its scenarios, the option's help in flag
// words, and its default.
func (f optionFlag) usage() string {
	help := underscoreFlags(f.options[0].Help)
	var defs []string
	same := true
	for i, o := range f.options {
		if o.Default != "" {
			defs = append(defs, o.Default+" for "+f.scenarios[i])
		}
		same = same && o.Default == f.options[0].Default
	}
	switch {
	case same && f.options[0].Default != "":
		help += " (default " + f.options[0].Default + ")"
	case len(defs) > 0:
		help += " (default: " + strings.Join(defs, ", ") + ")"
	}
	return strings.Join(f.scenarios, "/") + ": " + help
}

// underscoreFlags replaces option keys with underscores in a help text
// with their flags (bare words such as "backlog" stay words there).
func underscoreFlags(help string) string {
	return underscoreWord.ReplaceAllStringFunc(help, func(w string) string {
		if f, ok := flagOfOption(w, ""); ok {
			return "--" + f
		}
		return w
	})
}

var underscoreWord = regexp.MustCompile(`\b[a-z]+(?:_[a-z]+)+\b`)

// flagOfOption is the flag of an option key: the chosen scenario's, or
// any scenario's when scenario is "".
func flagOfOption(option, scenario string) (string, bool) {
	for _, s := range faults.Scenarios() {
		if scenario != "" && !strings.EqualFold(s.Name, scenario) {
			continue
		}
		for _, o := range s.Options {
			if o.Name == option {
				return o.Flag, true
			}
		}
	}
	return "", false
}

// ruleFlags are the flags that shape any scenario's rule.
var ruleFlags = []string{"close", "probability", "seed", "clients"}

func bindScenarioFlags(cmd *cobra.Command, f *scenarioFlags) {
	fl := cmd.Flags()
	fl.StringVar(&f.scenario, "scenario", "", "inject a documented 10054 scenario on the --listen/--upstream proxy: "+strings.Join(faults.ScenarioNames(), ", "))
	for _, of := range optionFlags() {
		bindOptionFlag(fl, of)
	}
	fl.StringVar(&f.close, "close", "rst", "how an injected close looks: rst (the client sees 10054 / connection reset), fin, or alert:NAME")
	fl.Float64Var(&f.probability, "probability", 1, "chance 0..1 that a connection is hit")
	fl.Uint64Var(&f.seed, "seed", 0, "seed for --probability and --dhe-rate draws; the same seed and connection sequence give the same decisions (0: random, logged)")
	fl.StringSliceVar(&f.clients, "clients", nil, "hit only clients in these `CIDRs` (comma-separated or repeated)")
	bindTDSFlags(fl)
}

// bindOptionFlag declares one option flag with its type; its value is read
// back by name (scenarioRule), only when the user set it.
func bindOptionFlag(fl *pflag.FlagSet, of optionFlag) {
	switch of.typ {
	case faults.OptDuration:
		fl.Duration(of.flag, 0, of.usage())
	case faults.OptInt:
		fl.Int(of.flag, 0, of.usage())
	case faults.OptBool:
		fl.Bool(of.flag, false, of.usage())
	default:
		fl.String(of.flag, "", of.usage())
	}
}

// scenarioRule builds the one-liner rule from the flags, or returns nil when
// --scenario was not given. A flag that does not apply is a usage error.
func scenarioRule(cmd *cobra.Command, f *scenarioFlags) (map[string]any, error) {
	fl := cmd.Flags()
	flags := optionFlags()
	if rule, err := tdsFlagRule(cmd, f); rule != nil || err != nil {
		return rule, err
	}
	if !fl.Changed("scenario") {
		for _, of := range flags {
			if fl.Changed(of.flag) {
				return nil, usagef("--%s: needs --scenario", of.flag)
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
	for _, of := range flags {
		if !fl.Changed(of.flag) {
			continue
		}
		i := slices.IndexFunc(of.scenarios, func(s string) bool { return strings.EqualFold(s, f.scenario) })
		if i < 0 {
			return nil, usagef("--%s: applies to %s, not to --scenario %s", of.flag, strings.Join(of.scenarios, " and "), f.scenario)
		}
		opts[of.options[i].Name] = fl.Lookup(of.flag).Value.String()
	}
	rule := map[string]any{"name": f.scenario, "scenario": f.scenario, "close": f.close}
	if len(opts) > 0 {
		rule["options"] = opts
	}
	f.addMatch(rule, fl.Changed("probability"))
	// Validate here so the error names the flag, not a config key.
	if _, err := faults.RuleSpecsFromMaps([]map[string]any{rule}); err != nil {
		return nil, usagef("%s", flagForRuleError(err, f.scenario, fl.Changed))
	}
	return rule, nil
}

// ruleKeyFlags are the rule keys the run flags set, beside the options.
var ruleKeyFlags = map[string]string{"close": "close", "match.probability": "probability", "seed": "seed"}

// flagForRuleError words a rule error in the flags the user typed: the
// key options.server_tls becomes --server-tls, and option keys inside the
// message become their flags. An error about an option whose flag was not
// given (a required one) is put on --scenario NAME.
func flagForRuleError(err error, scenario string, given func(flag string) bool) string {
	var re *faults.RuleError
	if !errors.As(err, &re) || re.Key == "" {
		return "--scenario " + scenario + ": " + optionsAsFlags(err.Error(), scenario)
	}
	key, what := re.Key, optionsAsFlags(re.Reason(), scenario)
	if key == "scenario" {
		return "--scenario: " + what
	}
	flag := ruleKeyFlags[key]
	if strings.HasPrefix(key, "match.clients") {
		flag = "clients"
	}
	if opt, isOpt := strings.CutPrefix(key, "options."); isOpt {
		flag, _ = flagOfOption(opt, scenario)
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
	return "--scenario " + scenario + ": " + key + ": " + what
}

// optionWord matches an option key as a whole word ("login_delay", not
// inside "prelogin_delay").
var optionWord = regexp.MustCompile(`\b[a-z]+(?:_[a-z]+)*\b`)

// optionsAsFlags replaces the scenario's option keys a message names with
// their flags.
func optionsAsFlags(msg, scenario string) string {
	return optionWord.ReplaceAllStringFunc(msg, func(w string) string {
		if f, ok := flagOfOption(w, scenario); ok {
			return "--" + f
		}
		return w
	})
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

// addMatch adds what the --probability, --client and --seed flags chose to
// a rule map built from flags (as a config file would write it).
func (f *scenarioFlags) addMatch(rule map[string]any, probabilitySet bool) {
	match := map[string]any{}
	if probabilitySet {
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
}
