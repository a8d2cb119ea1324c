//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
)

// The paths to the upstream that every workload measures.
const (
	pathDirect    = "direct"
	pathTDSProxy  = "tdsproxy"
	pathFaults    = "tdsproxy-faults"
	pathHAProxy   = "haproxy"
	pathSocat     = "socat"
	pathToxiproxy = "toxiproxy"
)

var allPaths = []string{pathDirect, pathTDSProxy, pathFaults, pathHAProxy, pathSocat, pathToxiproxy, pathBridge, pathHAProxyTLS}

var pathDescriptions = map[string]string{
	pathDirect:    "no proxy: the client connects to the upstream itself",
	pathTDSProxy:  "tdsproxy run --listen --upstream --log-level warn, admin API on a free loopback port (separate process)",
	pathFaults:    "tdsproxy with two fault rules (a scenario and a latency toxic) matching only client 10.255.255.254/32",
	pathHAProxy:   "haproxy -db, mode tcp, default buffers, one listen section",
	pathSocat:     "socat TCP-LISTEN:P,fork,reuseaddr TCP:upstream (a process per connection)",
	pathToxiproxy: "Toxiproxy v2.5.0 server, one proxy created over its HTTP API, no toxics",
}

// startTimeout bounds the wait for a proxy to listen.
const startTimeout = 15 * time.Second

// instance is one running path in front of one upstream.
type instance struct {
	path string
	addr string // where clients connect
	proc *proc  // nil for direct
}

// stop ends the instance's process (no-op for direct).
func (in *instance) stop() {
	if in.proc != nil {
		in.proc.stop()
	}
}

// memKiB is the memory the proxy uses: VmRSS of its one process, or for
// socat the Pss summed over the listener and its forked children.
func (in *instance) memKiB() (kib int64, procs int, err error) {
	if in.proc == nil {
		return 0, 0, fmt.Errorf("%s has no process", in.path)
	}
	if in.path == pathSocat {
		return groupPssKiB(in.proc.pid())
	}
	v, err := rssKiB(in.proc.pid())
	return v, 1, err
}

// fds counts the open file descriptors of the proxy (for socat, of the
// listener and its children).
func (in *instance) fds() int {
	if in.proc == nil {
		return 0
	}
	pids := []int{in.proc.pid()}
	if in.path == pathSocat {
		pids = append(pids, descendants(in.proc.pid())...)
	}
	n := 0
	for _, p := range pids {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p))
		if err == nil {
			n += len(ents)
		}
	}
	return n
}

// launcher starts paths in front of upstreams.
type launcher struct {
	t       *tools
	workDir string // configs and logs
	seq     int
	// maxconn is HAProxy's global maxconn: as high as the file limit
	// allows (HAProxy refuses to start when 2×maxconn does not fit).
	maxconn int
	// cert is what the emulator and the bridge paths present.
	cert *benchCert
}

// start puts path in front of upstream (host:port on loopback). label names
// the log file.
func (l *launcher) start(ctx context.Context, path, upstream, label string) (*instance, error) {
	if path == pathDirect {
		return &instance{path: path, addr: upstream}, nil
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	l.seq++
	name := fmt.Sprintf("%s-%s-%d", path, label, l.seq)
	listen := "127.0.0.1:" + strconv.Itoa(port)
	var p *proc
	switch path {
	case pathTDSProxy, pathFaults, pathBridge:
		// The admin API stays on, as by default, but on a port of its own
		// so that two tdsproxy processes can run side by side.
		adminPort, err := freePort()
		if err != nil {
			return nil, err
		}
		args := []string{"run", "--admin", "127.0.0.1:" + strconv.Itoa(adminPort),
			"--log-level", "warn", "--log-format", "json", "--drain-timeout", "0s"}
		bin := l.t.passthrough
		switch path {
		case pathTDSProxy:
			args = append(args, "--listen", listen, "--upstream", upstream, "--name", "bench")
		case pathBridge:
			if l.cert == nil {
				return nil, errNoCert
			}
			args = append(args, "--listen", listen, "--upstream", upstream, "--name", "bench")
			args = append(args, bridgeArgs(l.cert)...)
			bin = l.t.tdsproxy
		default:
			cfg := filepath.Join(l.workDir, name+".yaml")
			if err := os.WriteFile(cfg, []byte(faultsConfig(listen, upstream)), 0o644); err != nil {
				return nil, err
			}
			args = append(args, "--config", cfg)
			bin = l.t.tdsproxy
		}
		p, err = startProc(name, l.workDir, nil, bin, args...)
		if err != nil {
			return nil, err
		}
	case pathHAProxy:
		cfg := filepath.Join(l.workDir, name+".cfg")
		if err := os.WriteFile(cfg, []byte(haproxyConfig(listen, upstream, l.maxconn)), 0o644); err != nil {
			return nil, err
		}
		// -db: stay in the foreground, one process (no master-worker).
		p, err = startProc(name, l.workDir, nil, l.t.haproxy, "-db", "-f", cfg)
	case pathHAProxyTLS:
		if l.cert == nil {
			return nil, errNoCert
		}
		cfg := filepath.Join(l.workDir, name+".cfg")
		if err := os.WriteFile(cfg, []byte(haproxyTLSConfig(listen, upstream, l.maxconn, l.cert.bundle)), 0o644); err != nil {
			return nil, err
		}
		p, err = startProc(name, l.workDir, nil, l.t.haproxy, "-db", "-f", cfg)
	case pathSocat:
		p, err = startProc(name, l.workDir, nil, l.t.socat,
			fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,backlog=4096", port),
			"TCP:"+upstream)
	case pathToxiproxy:
		return l.startToxiproxy(ctx, name, listen, upstream)
	default:
		return nil, fmt.Errorf("unknown path %q", path)
	}
	if err != nil {
		return nil, err
	}
	if err := waitListening(ctx, p, listen, startTimeout); err != nil {
		p.stop()
		return nil, err
	}
	return &instance{path: path, addr: listen, proc: p}, nil
}

// startToxiproxy starts a Toxiproxy server with its API on a free port and
// creates one proxy, without toxics, over the API.
func (l *launcher) startToxiproxy(ctx context.Context, name, listen, upstream string) (*instance, error) {
	apiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	api := "127.0.0.1:" + strconv.Itoa(apiPort)
	// LOG_LEVEL=warn: Toxiproxy logs every connection at info; tdsproxy
	// runs at warn too.
	p, err := startProc(name, l.workDir, []string{"LOG_LEVEL=warn"}, l.t.toxiproxy,
		"-host", "127.0.0.1", "-port", strconv.Itoa(apiPort))
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*instance, error) {
		p.stop()
		return nil, err
	}
	if err := waitListening(ctx, p, api, startTimeout); err != nil {
		return fail(err)
	}
	body, _ := json.Marshal(map[string]any{"name": "bench", "listen": listen, "upstream": upstream, "enabled": true})
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, "http://"+api+"/proxies", bytes.NewReader(body))
	if err != nil {
		return fail(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fail(fmt.Errorf("toxiproxy: POST /proxies: %w", err))
	}
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fail(fmt.Errorf("toxiproxy: POST /proxies: %s: %s", resp.Status, strings.TrimSpace(string(rb))))
	}
	if err := waitListening(ctx, p, listen, startTimeout); err != nil {
		return fail(err)
	}
	return &instance{path: pathToxiproxy, addr: listen, proc: p}, nil
}

// haproxyConfig is a minimal TCP proxy: what an operator writes to put
// HAProxy in front of SQL Server. Buffers and threads are left at their
// defaults (tune.bufsize 16 KiB, one thread per CPU).
func haproxyConfig(listen, upstream string, maxconn int) string {
	return fmt.Sprintf(`# written by the tdsproxy benchmark harness
global
    maxconn %d

defaults
    mode tcp
    timeout connect 10s
    timeout client 1h
    timeout server 1h

listen bench
    bind %s
    server upstream %s
`, maxconn, listen, upstream)
}

// faultsClient is a client address no benchmark connection ever has: the
// armed rules below match it only, so they are evaluated but never fire.
const faultsClient = "10.255.255.254/32"

// faultsConfig is a tdsproxy config with fault rules armed that match no
// connection: one documented scenario (the table's first, with the
// options the lab arms it with) and one generic latency fault.
func faultsConfig(listen, upstream string) string {
	sc := faults.Scenarios()[0]
	opts, _ := json.Marshal(sc.Lab.Options) // a YAML flow mapping
	return fmt.Sprintf(`# written by the tdsproxy benchmark harness
log:
  level: warn
  format: json
shutdown:
  drain_timeout: 0s
admin:
  listen: off
proxies:
  - name: bench
    listen: %s
    upstream: %s
    faults:
      - name: never-%s
        scenario: %s
        options: %s
        match:
          clients: ["%s"]
      - name: never-latency
        action: latency
        options:
          delay: 50ms
        match:
          clients: ["%s"]
`, listen, upstream, sc.Name, sc.Name, opts, faultsClient, faultsClient)
}

// checkFaultsConfig asks the built tdsproxy whether it accepts the faults
// config; an error means the path cannot run with this build.
func checkFaultsConfig(ctx context.Context, t *tools, dir string) error {
	cfg := filepath.Join(dir, "faults-check.yaml")
	if err := os.WriteFile(cfg, []byte(faultsConfig("127.0.0.1:1", "127.0.0.1:2")), 0o644); err != nil {
		return err
	}
	_, err := runCmd(ctx, 30*time.Second, nil, t.root, t.tdsproxy, "config", "check", cfg)
	return err
}
