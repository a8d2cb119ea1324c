package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The image must build the binary exactly as `make build` does, and start
// with the configuration it ships. No Docker here: check the text.
func TestDockerfileMatchesMakefile(t *testing.T) {
	root := filepath.Join("..", "..")
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Skipf("no Makefile: %v", err)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^GO_BUILD\s*:?=\s*(.+)$`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("Makefile has no GO_BUILD line")
	}
	want := "RUN " + strings.ReplaceAll(strings.TrimSpace(string(m[1])), "$(GO)", "go")
	if !strings.Contains(string(dockerfile), want+"\n") {
		t.Errorf("Dockerfile lacks the Makefile's build line:\n%s", want)
	}
	for _, line := range []string{
		"COPY configs/tdsproxy.yaml /etc/tdsproxy/tdsproxy.yaml",
		`CMD ["run", "--config", "/etc/tdsproxy/tdsproxy.yaml"]`,
		`ENTRYPOINT ["/tdsproxy"]`,
		"COPY --from=build /src/bin/tdsproxy /tdsproxy",
		"EXPOSE 11433",
	} {
		if !strings.Contains(string(dockerfile), line+"\n") {
			t.Errorf("Dockerfile lacks %q", line)
		}
	}
}
