package main

import (
	"context"
	"strings"
	"testing"
)

// tdsproxy lab --retry prints the retry section; flags of the 10054 lab
// do not go with it.
func TestLabRetry(t *testing.T) {
	clearEnv(t)
	_, err := execute(t, context.Background(), "lab", "--retry", "--scenario", "protocol-mismatch")
	wantUsageError(t, err, "--scenario: does not go with --retry")
	if testing.Short() {
		t.Skip("retry section: about 3 s")
	}
	out, err := execute(t, context.Background(), "lab", "--retry")
	if err != nil {
		t.Fatalf("lab --retry: %v\n%s", err, out)
	}
	for _, want := range []string{"RETRY:", "error 40613: ", "error 1205: ", "SELECT 1 = 1 after 3 attempts", "SELECT 1 = 1 after 2 attempts"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
