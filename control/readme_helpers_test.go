package control_test

import (
	"testing"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
)

// sqlServer starts tdsproxy's SQL Server emulator on loopback until the test
// ends and returns its address: the README's embedding example
// (readme_embed_test.go) uses it as "the suite's SQL Server".
func sqlServer(t *testing.T) string {
	t.Helper()
	s, err := emulator.New(emulator.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr()
}
