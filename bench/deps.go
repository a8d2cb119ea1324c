//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// toxiproxyModule is the Toxiproxy server the issue names, built with
// `go install` into its own versioned directory under bench/.bin.
const toxiproxyModule = "github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0"

// tools are the programs the selected paths need, resolved by ensureTools.
type tools struct {
	root     string // module root
	binDir   string // bench/.bin
	tdsproxy string
	// passthrough is the binary of the tdsproxy path: tdsproxy, unless
	// $BENCH_TDSPROXY_BIN names another (bench/profproxy, to profile).
	passthrough string
	haproxy     string
	socat       string
	toxiproxy   string
	versions    map[string]string
}

// moduleRoot walks up from the working directory to the go.mod of
// github.com/tdsproxy/tdsproxy.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 32 {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/tdsproxy/tdsproxy") {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			break
		}
		dir = up
	}
	return "", errors.New("cannot find the tdsproxy module root (go.mod) above the working directory")
}

// run runs a command with a time bound, returning its combined output.
func runCmd(ctx context.Context, timeout time.Duration, env []string, dir, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(string(out), 20))
	}
	return string(out), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ensureTools builds tdsproxy and installs what the selected paths need and
// is missing: haproxy and socat with apt-get, Toxiproxy with go install.
func ensureTools(ctx context.Context, sel selection) (*tools, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	t := &tools{root: root, binDir: filepath.Join(root, "bench", ".bin"), versions: map[string]string{}}
	if err := os.MkdirAll(t.binDir, 0o755); err != nil {
		return nil, err
	}
	t.versions["go"] = runtime.Version()

	if sel.path(pathTDSProxy) || sel.path(pathFaults) || sel.path(pathBridge) {
		if err := t.buildTDSProxy(ctx); err != nil {
			return nil, err
		}
	}
	if err := t.findRelays(ctx, sel); err != nil {
		return nil, err
	}
	if sel.path(pathToxiproxy) {
		if err := t.installToxiproxy(ctx); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// aptInstall installs Debian packages (with sudo when not root).
func aptInstall(ctx context.Context, pkgs []string) error {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%s missing and no apt-get: install %s, or leave those paths out with -only", strings.Join(pkgs, ", "), strings.Join(pkgs, " "))
	}
	pre := []string{}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("sudo"); err != nil {
			return fmt.Errorf("%s missing, not root and no sudo: install them first", strings.Join(pkgs, ", "))
		}
		pre = []string{"sudo", "-n"}
	}
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	install := append(append(append([]string{}, pre...), "apt-get", "install", "-y", "--no-install-recommends"), pkgs...)
	progress("install: apt-get install -y %s", strings.Join(pkgs, " "))
	if _, err := runCmd(ctx, 10*time.Minute, env, "", install[0], install[1:]...); err == nil {
		return nil
	}
	// A fresh machine may have no package lists yet.
	update := append(append([]string{}, pre...), "apt-get", "update")
	if _, err := runCmd(ctx, 10*time.Minute, env, "", update[0], update[1:]...); err != nil {
		return err
	}
	_, err := runCmd(ctx, 10*time.Minute, env, "", install[0], install[1:]...)
	return err
}

func gitDescribe(ctx context.Context, root string) string {
	out, err := runCmd(ctx, 10*time.Second, nil, root, "git", "describe", "--always", "--dirty")
	if err != nil {
		return "unknown commit"
	}
	return "commit " + strings.TrimSpace(out)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func rel(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil {
		return r
	}
	return p
}

// machine describes the host for the report.
type machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	MemTotal string `json:"mem_total"`
	Kernel   string `json:"kernel"`
	OS       string `json:"os"`
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if i := strings.IndexByte(l, ':'); i >= 0 {
					m.CPUModel = strings.TrimSpace(l[i+1:])
				}
				break
			}
		}
	}
	if kib, err := procFieldKiB("/proc/meminfo", "MemTotal"); err == nil {
		m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	return m
}

// buildTDSProxy builds tdsproxy like the release binary (Makefile
// GO_BUILD), so the figures are the ones users get; BENCH_TDSPROXY_BIN
// runs another binary on the tdsproxy path.
func (t *tools) buildTDSProxy(ctx context.Context) error {
	t.tdsproxy = filepath.Join(t.binDir, "tdsproxy")
	progress("build: go build -o %s ./cmd/tdsproxy", rel(t.root, t.tdsproxy))
	if _, err := runCmd(ctx, 5*time.Minute, []string{"CGO_ENABLED=0"}, t.root, "go", "build", "-trimpath", "-o", t.tdsproxy, "./cmd/tdsproxy"); err != nil {
		return err
	}
	t.versions["tdsproxy"] = gitDescribe(ctx, t.root)
	t.passthrough = t.tdsproxy
	if b := os.Getenv("BENCH_TDSPROXY_BIN"); b != "" {
		t.passthrough = b
		t.versions["tdsproxy"] += " (tdsproxy path: " + b + ")"
		progress("tdsproxy path runs %s ($BENCH_TDSPROXY_BIN)", b)
	}
	return nil
}

// findRelays finds HAProxy and socat for the selected paths, installing the
// missing ones with apt-get, and records their versions.
func (t *tools) findRelays(ctx context.Context, sel selection) error {
	var apt []string
	needHAProxy := sel.path(pathHAProxy) || sel.path(pathHAProxyTLS)
	if needHAProxy {
		if p, err := exec.LookPath("haproxy"); err == nil {
			t.haproxy = p
		} else {
			apt = append(apt, "haproxy")
		}
	}
	if sel.path(pathSocat) {
		if p, err := exec.LookPath("socat"); err == nil {
			t.socat = p
		} else {
			apt = append(apt, "socat")
		}
	}
	if len(apt) > 0 {
		var err error
		if err = aptInstall(ctx, apt); err != nil {
			return err
		}
		if needHAProxy {
			if t.haproxy, err = exec.LookPath("haproxy"); err != nil {
				return fmt.Errorf("haproxy still missing after apt-get install: %w", err)
			}
		}
		if sel.path(pathSocat) {
			if t.socat, err = exec.LookPath("socat"); err != nil {
				return fmt.Errorf("socat still missing after apt-get install: %w", err)
			}
		}
	}
	if t.haproxy != "" {
		out, _ := runCmd(ctx, 10*time.Second, nil, t.root, t.haproxy, "-v")
		t.versions["haproxy"] = firstLine(out)
	}
	if t.socat != "" {
		out, _ := runCmd(ctx, 10*time.Second, nil, t.root, t.socat, "-V")
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "socat version") {
				t.versions["socat"] = strings.TrimSpace(l)
				break
			}
		}
	}
	return nil
}

// installToxiproxy installs Toxiproxy's server with go install (once, into
// bench/.bin).
func (t *tools) installToxiproxy(ctx context.Context) error {
	dir := filepath.Join(t.binDir, "toxiproxy-v2.5.0")
	t.toxiproxy = filepath.Join(dir, "server")
	if _, err := os.Stat(t.toxiproxy); err != nil {
		progress("install: GOBIN=%s go install %s", rel(t.root, dir), toxiproxyModule)
		if _, err := runCmd(ctx, 10*time.Minute, []string{"GOBIN=" + dir, "CGO_ENABLED=0"}, t.root, "go", "install", toxiproxyModule); err != nil {
			return err
		}
	}
	t.versions["toxiproxy"] = "v2.5.0 (go install " + toxiproxyModule + ", built with the local Go)"
	return nil
}
