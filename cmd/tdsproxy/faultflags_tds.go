package main

import (
	"errors"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tdsproxy/tdsproxy/faults"
)

// The TDS-fault section of run's one-liner flags (docs/tds-faults.md):
//
//	tdsproxy run ... --tds-error 40613 --at login --times 2
//	tdsproxy run ... --tds-error 1205 --at query --query-match '(?i)^update'
//
// They build one tds_error rule on the --listen/--upstream proxy; the rule
// flags (--close, --probability, --seed, --clients) apply to it as to a
// --scenario rule. Other TDS faults are written under a proxy's faults key
// or posted to the admin API.

// tdsFlag maps a flag to the tds_error option it sets.
type tdsFlag struct {
	flag, option, help string
}

var tdsFlags = []tdsFlag{
	{"at", "at", "with --tds-error: login (replace the login response) or query (replace the reply to a batch or RPC matching --query-match)"},
	{"times", "times", "with --tds-error: inject on the first N matches only, then pass (0: always)"},
	{"query-match", "query", "with --tds-error --at query: regular `expression` on the SQL batch text or RPC procedure name (default: every request)"},
	{"tds-message", "message", "with --tds-error: the error `text` (required for a number tdsproxy does not know)"},
}

// bindTDSFlags declares the TDS-fault flags.
func bindTDSFlags(fl *pflag.FlagSet) {
	nums := make([]string, 0, len(faults.KnownErrorNumbers()))
	for _, n := range faults.KnownErrorNumbers() {
		nums = append(nums, strconv.Itoa(int(n)))
	}
	fl.String("tds-error", "", "answer in the server's place with SQL Server error `number` (ERROR + DONE), plaintext TDS only (NOT_SUP or login-only sessions); known numbers get the real message, class and state: "+strings.Join(nums, ", "))
	for _, f := range tdsFlags {
		if f.flag == "times" {
			fl.Int(f.flag, 0, f.help)
			continue
		}
		fl.String(f.flag, "", f.help)
	}
}

// tdsFlagRule builds the one-liner tds_error rule, or returns nil when
// --tds-error was not given.
func tdsFlagRule(cmd *cobra.Command, f *scenarioFlags) (map[string]any, error) {
	fl := cmd.Flags()
	if !fl.Changed("tds-error") {
		for _, tf := range tdsFlags {
			if fl.Changed(tf.flag) {
				return nil, usagef("--%s: needs --tds-error", tf.flag)
			}
		}
		return nil, nil
	}
	if fl.Changed("scenario") {
		return nil, usagef("--tds-error: one one-liner rule at a time; drop --scenario (or write both under a proxy's faults key)")
	}
	if !fl.Changed("listen") {
		return nil, usagef("--tds-error: goes with --listen and --upstream (for --config proxies, write rules under their faults key)")
	}
	num := fl.Lookup("tds-error").Value.String()
	opts := map[string]any{"number": num}
	for _, tf := range tdsFlags {
		if fl.Changed(tf.flag) {
			opts[tf.option] = fl.Lookup(tf.flag).Value.String()
		}
	}
	rule := map[string]any{"name": "tds-error-" + strings.TrimPrefix(num, "-"), "action": faults.TDSError, "options": opts}
	if fl.Changed("close") {
		rule["close"] = f.close
	}
	f.addMatch(rule, fl.Changed("probability"))
	if _, err := faults.RuleSpecsFromMaps([]map[string]any{rule}); err != nil {
		return nil, usagef("%s", tdsFlagError(err))
	}
	return rule, nil
}

// tdsFlagError words a rule error with the flag the user typed.
func tdsFlagError(err error) string {
	var re *faults.RuleError
	if !errors.As(err, &re) || re.Key == "" {
		return "--tds-error: " + err.Error()
	}
	opt, _ := strings.CutPrefix(re.Key, "options.")
	if opt == "number" {
		return "--tds-error: " + re.Reason()
	}
	for _, tf := range tdsFlags {
		if tf.option == opt {
			return "--" + tf.flag + ": " + re.Reason()
		}
	}
	return "--tds-error: " + re.Key + ": " + re.Reason()
}
