package configs

import (
	"slices"
	"testing"
	"time"
)

// TestDiagnosisSlowLogin: diagnosis.slow_login defaults to 2s, takes a
// duration from the file or TDSPROXY_DIAGNOSIS_SLOW_LOGIN, 0s turns the
// finding off, and a negative or bare number is an error naming the key.
func TestDiagnosisSlowLogin(t *testing.T) {
	clearEnv(t)
	cfg, err := Load(writeConfig(t, "log:\n  level: info\n"))
	if err != nil || cfg.Diagnosis.SlowLogin != DefaultSlowLogin {
		t.Fatalf("default: %v %v", cfg, err)
	}
	cfg, err = Load(writeConfig(t, "diagnosis:\n  slow_login: 500ms\n"))
	if err != nil || cfg.Diagnosis.SlowLogin != 500*time.Millisecond || !cfg.IsSet("diagnosis.slow_login") {
		t.Fatalf("500ms: %+v %v", cfg.Diagnosis, err)
	}
	cfg, err = Load(writeConfig(t, "diagnosis:\n  slow_login: 0s\n"))
	if err != nil || cfg.Diagnosis.SlowLogin != 0 || slices.Contains(errorKeys(cfg.Validate()), "diagnosis.slow_login") {
		t.Fatalf("0s: %+v %v", cfg.Diagnosis, err)
	}
	t.Setenv(EnvVar("diagnosis.slow_login"), "3s")
	if cfg, err = Load(""); err != nil || cfg.Diagnosis.SlowLogin != 3*time.Second {
		t.Fatalf("env: %+v %v", cfg, err)
	}
	t.Setenv(EnvVar("diagnosis.slow_login"), "")

	if _, err := Load(writeConfig(t, "diagnosis:\n  slow_login: 10\n")); !slices.Contains(errorKeys(err), "diagnosis.slow_login") {
		t.Errorf("slow_login 10: %v", err)
	}
	cfg, err = Load(writeConfig(t, "diagnosis:\n  slow_login: -1s\n"))
	if err == nil {
		err = cfg.Validate()
	}
	if !slices.Contains(errorKeys(err), "diagnosis.slow_login") {
		t.Errorf("slow_login -1s: %v", err)
	}
}
