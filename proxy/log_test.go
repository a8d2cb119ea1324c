package proxy

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// The log line's "fault" field names a rule only when it acted; a rule that
// let the connection pass stays in the record's list (issue 18 item 3).
func TestLogRecordFaultFieldNamesActingRule(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []FaultEvent
		want   string // "" means no "fault" field
	}{
		{"passed only", []FaultEvent{{Rule: "old-tls", Action: ActionPass}}, ""},
		{"skipped and armed", []FaultEvent{{Rule: "a", Action: ActionSkip}, {Rule: "dhe", Action: ActionArmed}}, ""},
		{"passed then acted", []FaultEvent{{Rule: "a", Action: ActionPass}, {Rule: "b", Action: "close:rst"}}, "b"},
		{"delay", []FaultEvent{{Rule: "slow", Action: "delay"}}, "slow"},
		{"generic fault", []FaultEvent{{Rule: "wan", Action: "latency"}}, "wan"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.InfoLevel)
			now := time.Now()
			logRecord(zap.New(core), &Record{ID: 1, Start: now, End: now, Faults: tc.events})
			if logs.Len() != 1 {
				t.Fatalf("%d log lines, want 1", logs.Len())
			}
			got, ok := logs.All()[0].ContextMap()["fault"]
			switch {
			case tc.want == "" && ok:
				t.Errorf(`"fault" = %v; no rule acted`, got)
			case tc.want != "" && got != tc.want:
				t.Errorf(`"fault" = %v, want %q`, got, tc.want)
			}
			rec := logs.All()[0].ContextMap()["record"].(*Record)
			if len(rec.Faults) != len(tc.events) {
				t.Errorf("record lists %d decisions, want %d", len(rec.Faults), len(tc.events))
			}
		})
	}
}
