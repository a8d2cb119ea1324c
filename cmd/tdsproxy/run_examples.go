package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tdsproxy/tdsproxy/faults"
)

// runExample is run's --help examples; those for scenarios come from the
// scenario table (scenarioExamples).
func runExample() string {
	return runExampleHead + scenarioExamples() + "\n" + runExampleTail
}

const runExampleHead = `  # Front a real server; point the application's connection string at 127.0.0.1,11433
  tdsproxy run --listen 127.0.0.1:11433 --upstream sql01.example.com:1433

  # Readable log with a line per negotiation phase
  tdsproxy run --listen 127.0.0.1:11433 --upstream sql01.example.com:1433 \
      --log-level debug --log-format console

  # Several proxies from a file: write it, check it, run it
  tdsproxy config example > tdsproxy.yaml
  tdsproxy config check tdsproxy.yaml
  tdsproxy run --config tdsproxy.yaml

`

const runExampleTail = `  # Environment variables override the file; flags override both
  TDSPROXY_LOG_FILE=/var/log/tdsproxy.log TDSPROXY_SHUTDOWN_DRAIN_TIMEOUT=2m \
      tdsproxy run --config tdsproxy.yaml --log-level warn`

// scenarioExamples is one run line per scenario of the table, with the
// options the lab arms it with, then the admin API call arming the first.
func scenarioExamples() string {
	var b strings.Builder
	all := faults.Scenarios()
	for _, sc := range all {
		fmt.Fprintf(&b, "  # Reproduce %s: %s\n", sc.Name, sc.Summary)
		fmt.Fprintf(&b, "  tdsproxy run --listen 127.0.0.1:11433 --upstream sql01:1433 \\\n      --scenario %s", sc.Name)
		for _, o := range sc.Options {
			if v, ok := sc.Lab.Options[o.Name]; ok {
				fmt.Fprintf(&b, " --%s %s", o.Flag, v)
			}
		}
		b.WriteString("\n\n")
	}
	if len(all) == 0 {
		return ""
	}
	fmt.Fprintf(&b, "  # Any of them for 30%% of connections, replayable\n")
	fmt.Fprintf(&b, "  tdsproxy run --listen 127.0.0.1:11433 --upstream sql01:1433 \\\n      --scenario %s --probability 0.3 --seed 7\n\n", all[0].Name)
	body, _ := json.Marshal(map[string]any{"name": "lab", "scenario": all[0].Name, "options": all[0].Lab.Options})
	b.WriteString("  # Flip faults while the application runs, through the admin API\n")
	fmt.Fprintf(&b, "  curl -X POST localhost:8475/proxies/default/faults -d '%s'\n", body)
	b.WriteString("  curl -X DELETE localhost:8475/proxies/default/faults/lab\n")
	return b.String()
}
