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
	ld := regexp.MustCompile(`(?m)^GO_LDFLAGS\s*:?=\s*(.+)$`).FindSubmatch(makefile)
	if ld == nil {
		t.Fatal("Makefile has no GO_LDFLAGS line")
	}
	// The image sets VERSION and COMMIT from build args (ARG), make from git.
	ldflags := strings.NewReplacer("$(VERSION)", "${VERSION}", "$(COMMIT)", "${COMMIT}").Replace(strings.TrimSpace(string(ld[1])))
	want := "RUN " + strings.NewReplacer("$(GO)", "go", "$(GO_LDFLAGS)", ldflags).Replace(strings.TrimSpace(string(m[1])))
	for _, arg := range []string{"ARG VERSION", "ARG COMMIT"} {
		if !strings.Contains(string(dockerfile), "\n"+arg) {
			t.Errorf("Dockerfile lacks %q: the version would not reach the binary", arg)
		}
	}
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
