package main

import (
	"context"
	"encoding/json"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// The version comes from -ldflags first, then from what the toolchain
// stamped (a module version, the VCS revision), and is never "(devel)".
func TestResolveBuild(t *testing.T) {
	rev := "0123456789abcdef0123456789abcdef01234567"
	vcs := func(main string, settings ...debug.BuildSetting) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Version: main}, Settings: settings}
	}
	clean := []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}
	dirty := []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}
	for _, tc := range []struct {
		name                    string
		ldVersion, ldCommit     string
		bi                      *debug.BuildInfo
		wantVersion, wantCommit string
	}{
		{"ldflags win", "v1.2.3", rev, vcs("(devel)", dirty...), "v1.2.3", rev},
		{"go install @version", "", "", vcs("v1.2.3"), "v1.2.3", "unknown"},
		{"checkout, ldflags absent", "", "", vcs("(devel)", clean...), "dev+0123456789ab", rev},
		{"modified checkout", "", "", vcs("", dirty...), "dev+0123456789ab", rev + "-dirty"},
		{"pseudo-version from the toolchain", "", "", vcs("v0.0.0-20261203163859-f2d81c044877", clean...), "v0.0.0-20261203163859-f2d81c044877", rev},
		{"nothing known", "", "", nil, "dev", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := resolveBuild(tc.ldVersion, tc.ldCommit, tc.bi)
			if b.Version != tc.wantVersion || b.Commit != tc.wantCommit {
				t.Errorf("version %q commit %q, want %q %q", b.Version, b.Commit, tc.wantVersion, tc.wantCommit)
			}
			if b.Go != runtime.Version() {
				t.Errorf("go %q, want %q", b.Go, runtime.Version())
			}
		})
	}
}

// `tdsproxy version` and `tdsproxy --version` print the same three lines.
func TestVersionCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want := currentBuild().String()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := execute(t, ctx, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if out != want {
			t.Errorf("%v printed %q, want %q", args, out, want)
		}
		for _, field := range []string{"tdsproxy ", "\ncommit ", " " + runtime.Version()} {
			if !strings.Contains(out, field) {
				t.Errorf("%v: %q lacks %q", args, out, field)
			}
		}
		if strings.Contains(out, "(devel)") {
			t.Errorf("%v: %q says (devel)", args, out)
		}
	}
}

// The Makefile's -ldflags reach the variables they name: a binary linked
// with GO_LDFLAGS prints the VERSION and COMMIT it was given (a renamed
// variable would make -X a silent no-op).
func TestMakefileLdflagsSetVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	makefile, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Skipf("no Makefile: %v", err)
	}
	m := regexp.MustCompile(`(?m)^GO_LDFLAGS\s*:?=\s*(.+)$`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("Makefile has no GO_LDFLAGS line")
	}
	const wantVersion, wantCommit = "v9.8.7-readme", "feedfacefeedfacefeedfacefeedfacefeedface"
	ldflags := strings.NewReplacer("$(VERSION)", wantVersion, "$(COMMIT)", wantCommit).Replace(strings.TrimSpace(string(m[1])))
	bin := filepath.Join(t.TempDir(), "tdsproxy")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-ldflags", ldflags, "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags %q: %v\n%s", ldflags, err, out)
	}
	out, err := exec.CommandContext(ctx, bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("tdsproxy version: %v\n%s", err, out)
	}
	want := buildInfo{Version: wantVersion, Commit: wantCommit, Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}.String()
	if string(out) != want {
		t.Errorf("tdsproxy version printed %q, want %q", out, want)
	}
}

// make dist builds the four platforms issue 10 names.
func TestMakefileDistPlatforms(t *testing.T) {
	makefile, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Skipf("no Makefile: %v", err)
	}
	m := regexp.MustCompile(`(?m)^DIST_PLATFORMS\s*\??=\s*(.+)$`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("Makefile has no DIST_PLATFORMS line")
	}
	got := strings.Fields(string(m[1]))
	want := []string{"linux/amd64", "linux/arm64", "windows/amd64", "darwin/arm64"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("DIST_PLATFORMS = %v, want %v", got, want)
	}
	if !regexp.MustCompile(`(?m)^dist:`).Match(makefile) {
		t.Error("Makefile has no dist target")
	}
}

// tdsproxy run's admin API answers GET /version with the same version the
// command prints (and tdsproxy_build_info carries it).
func TestRunServesVersion(t *testing.T) {
	clearEnv(t)
	logFile, runErr, _ := startRun(t, "run", "--listen", "127.0.0.1:0", "--upstream", testkit.StartEcho(t), "--admin", "127.0.0.1:0")
	admin, _ := waitForLog(t, logFile, "admin API listening", "", runErr)["listen"].(string)
	httpc := &http.Client{Timeout: 10 * time.Second}
	_, body := readmeRequest(t, httpc, "GET", "http://"+admin+"/version", "")
	var v struct{ Version, Go string }
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Version != currentBuild().Version || v.Go != runtime.Version() {
		t.Errorf("GET /version = %s, want version %q and go %q", body, currentBuild().Version, runtime.Version())
	}
	_, metrics := readmeRequest(t, httpc, "GET", "http://"+admin+"/metrics", "")
	if want := `tdsproxy_build_info{go_version="` + runtime.Version() + `",version="` + currentBuild().Version + `"} 1`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}
