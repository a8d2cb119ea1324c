package client_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The client links only the API's wire types: not the relay (proxy), the
// fault engine (faults), the server (control) or the protocol packages
// under them. go list -deps is the linker's view of it.
func TestClientLinksNoRelay(t *testing.T) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const mod = "github.com/tdsproxy/tdsproxy/"
	var ours []string
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, mod) {
			ours = append(ours, strings.TrimPrefix(p, mod))
		}
	}
	slices.Sort(ours)
	want := []string{"control/api", "control/client", "record"}
	if !slices.Equal(ours, want) {
		t.Errorf("control/client links %v, want only %v", ours, want)
	}
	if len(ours) != len(strings.Fields(string(out))) {
		t.Errorf("control/client links packages outside the standard library and this module: %s", out)
	}
}
