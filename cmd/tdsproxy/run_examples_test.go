package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/tdsproxy/tdsproxy/faults"
)

// Every scenario has a run example in --help, built from the table, and
// each scenario example's flags make a valid rule.
func TestRunExamplesFromTable(t *testing.T) {
	ex := strings.ReplaceAll(runExample(), "\\\n", " ")
	seen := map[string]bool{}
	for _, line := range strings.Split(ex, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "tdsproxy" || fields[1] != "run" || !strings.Contains(line, "--scenario") {
			continue
		}
		cmd := &cobra.Command{Use: "run"}
		var sf scenarioFlags
		bindScenarioFlags(cmd, &sf)
		cmd.Flags().String("listen", "", "")
		cmd.Flags().String("upstream", "", "")
		if err := cmd.Flags().Parse(fields[2:]); err != nil {
			t.Errorf("%s: %v", line, err)
			continue
		}
		rule, err := scenarioRule(cmd, &sf)
		if rule == nil || err != nil {
			t.Errorf("%s: rule %v, error %v", line, rule, err)
			continue
		}
		seen[sf.scenario] = true
	}
	for _, s := range faults.Scenarios() {
		if !seen[s.Name] {
			t.Errorf("no run example for %s", s.Name)
		}
	}
}
