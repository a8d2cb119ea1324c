package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/tdsproxy/tdsproxy/configs"
)

func TestNewLoggerJSONFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tdsproxy.log")
	if err := os.WriteFile(path, []byte("earlier line\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	// auto with a file is json even when stderr is a terminal.
	log, cleanup, err := newLogger(configs.LogConfig{Level: "info", Format: "auto", File: path}, true)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("not written")
	log.Info("connection closed", zap.String("proxy", "default"))
	cleanup()

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || lines[0] != "earlier line" {
		t.Fatalf("log file = %q, want the earlier line then one JSON line (appended, debug filtered)", b)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil {
		t.Fatalf("line %q is not JSON: %v", lines[1], err)
	}
	if m["msg"] != "connection closed" || m["proxy"] != "default" || m["level"] != "info" {
		t.Errorf("line = %v", m)
	}
	iso8601 := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-Z]`)
	if ts, _ := m["ts"].(string); !iso8601.MatchString(ts) {
		t.Errorf("ts = %v, want ISO 8601", m["ts"])
	}
}

func TestNewLoggerConsoleFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.log")
	log, cleanup, err := newLogger(configs.LogConfig{Level: "debug", Format: "console", File: path}, false)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("phase", zap.String("proxy", "default"))
	cleanup()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line := string(b)
	if json.Valid(b) || !strings.Contains(line, "\tDEBUG\t") || !strings.Contains(line, "phase") {
		t.Errorf("console line = %q, want tab-separated text with DEBUG", line)
	}
	if strings.Contains(line, "\x1b[") {
		t.Errorf("console line to a file has colour codes: %q", line)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^0o640 != 0 {
		t.Errorf("new log file mode = %v, want at most 0640", perm)
	}
}

func TestNewLoggerErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  configs.LogConfig
		key  string
	}{
		{"level", configs.LogConfig{Level: "panic", Format: "json"}, "log.level"},
		{"format", configs.LogConfig{Level: "info", Format: "logfmt"}, "log.format"},
		{"file in a missing directory", configs.LogConfig{Level: "info", Format: "json", File: filepath.Join(t.TempDir(), "missing", "x.log")}, "log.file"},
		{"file is a directory", configs.LogConfig{Level: "info", Format: "json", File: t.TempDir()}, "log.file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := newLogger(tt.cfg, false)
			var ke *configs.KeyError
			if !errors.As(err, &ke) || ke.Key != tt.key {
				t.Errorf("err = %v, want a KeyError for %s", err, tt.key)
			}
		})
	}
}
