package interop

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// The pool of JDBC Runner JVMs: one JVM per connection-level setting
// (jvmKey), reused across cases and retired when idle (jvmIdle).

// jvm is one running Runner.
type jvm struct {
	key    string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // "@@result ..." lines
	done   chan struct{}
	stderr *lockedBuf
	dir    string // security properties and certificates
	// idle ends the JVM when it has waited jvmIdle in the pool; set and
	// stopped under JDBC.mu.
	idle *time.Timer
}

// jvmIdle is how long an idle JVM is kept for the next run with the same
// settings: long enough for a test package's runs, short enough that a
// long test binary does not keep a JVM per setting it ever used.
const jvmIdle = 30 * time.Second

// lockedBuf keeps the last stderr of a JVM, bounded.
type lockedBuf struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > 64<<10 {
		l.b = slices.Clone(l.b[len(l.b)-32<<10:])
	}
	return len(p), nil
}

func (l *lockedBuf) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := string(l.b)
	l.b = l.b[:0]
	return s
}

// jvmKey names the JVM-wide settings of a config.
func jvmKey(cfg JDBCConfig) string {
	keys := make([]string, 0, len(cfg.SecurityProps))
	for k := range cfg.SecurityProps {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "p=%s;c=%s", strings.Join(cfg.Protocols, ","), strings.Join(cfg.CipherSuites, ","))
	for _, k := range keys {
		fmt.Fprintf(&b, ";%s=%s", k, cfg.SecurityProps[k])
	}
	return b.String()
}

// start runs a new JVM for cfg's JVM-wide settings.
func (j *JDBC) start(cfg JDBCConfig) (*jvm, error) {
	dir, err := os.MkdirTemp("", "tdsproxy-jdbc-")
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	// Quick start-up: the runner is short-lived work, C1 is enough.
	args := []string{"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto", "-Xmx128m"}
	if len(cfg.Protocols) > 0 {
		args = append(args, "-Djdk.tls.client.protocols="+strings.Join(cfg.Protocols, ","))
	}
	if len(cfg.CipherSuites) > 0 {
		args = append(args, "-Djdk.tls.client.cipherSuites="+strings.Join(cfg.CipherSuites, ","))
	}
	if len(cfg.SecurityProps) > 0 {
		var b strings.Builder
		for k, v := range cfg.SecurityProps {
			if strings.ContainsAny(k+v, "\r\n") {
				os.RemoveAll(dir)
				return nil, fmt.Errorf("interop: security property %q has a newline", k)
			}
			fmt.Fprintf(&b, "%s=%s\n", k, v)
		}
		p := filepath.Join(dir, "java.security")
		if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("interop: %w", err)
		}
		// One "=": append to (override keys of) the JDK's java.security.
		args = append(args, "-Djava.security.properties="+p)
	}
	args = append(args, "-cp", j.Classpath, "Runner")
	cmd := exec.Command(j.Java, args...)
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("interop: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("interop: %w", err)
	}
	v := &jvm{key: jvmKey(cfg), cmd: cmd, stdin: stdin, lines: make(chan string, 1), done: make(chan struct{}), stderr: &lockedBuf{}, dir: dir}
	cmd.Stderr = v.stderr
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("interop: start %s: %w", j.Java, err)
	}
	go func() {
		defer close(v.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "@@result "); ok {
				v.lines <- line // one case in flight: Run reads it
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}()
	return v, nil
}

// kill ends a JVM and waits (bounded) for it to be reaped.
func (v *jvm) kill() {
	_ = v.stdin.Close()
	_ = v.cmd.Process.Kill()
	select {
	case <-v.done:
	case <-time.After(5 * time.Second):
	}
}

// get returns an idle JVM for cfg, or starts one.
func (j *JDBC) get(cfg JDBCConfig) (*jvm, error) {
	key := jvmKey(cfg)
	j.mu.Lock()
	for n := len(j.idle[key]); n > 0; n = len(j.idle[key]) {
		v := j.idle[key][n-1]
		j.idle[key] = j.idle[key][:n-1]
		if v.idle != nil {
			v.idle.Stop()
		}
		select {
		case <-v.done: // died while idle
			delete(j.all, v)
			continue
		default:
		}
		j.mu.Unlock()
		return v, nil
	}
	j.mu.Unlock()
	v, err := j.start(cfg)
	if err != nil {
		return nil, err
	}
	j.mu.Lock()
	j.all[v] = true
	j.mu.Unlock()
	return v, nil
}

// put returns a JVM to the idle pool, unless Close ended it meanwhile.
func (j *JDBC) put(v *jvm) {
	j.mu.Lock()
	if !j.all[v] {
		j.mu.Unlock()
		v.kill()
		return
	}
	j.idle[v.key] = append(j.idle[v.key], v)
	v.idle = time.AfterFunc(jvmIdle, func() { j.retire(v) })
	j.mu.Unlock()
}

// retire ends v if it is still idle.
func (j *JDBC) retire(v *jvm) {
	j.mu.Lock()
	list := j.idle[v.key]
	i := slices.Index(list, v)
	if i < 0 {
		j.mu.Unlock() // taken by a run meanwhile
		return
	}
	j.idle[v.key] = slices.Delete(list, i, i+1)
	delete(j.all, v)
	j.mu.Unlock()
	v.kill()
}

// drop forgets and ends a JVM.
func (j *JDBC) drop(v *jvm) {
	j.mu.Lock()
	delete(j.all, v)
	j.mu.Unlock()
	v.kill()
}

// Close ends every JVM; a run in progress fails. Later runs start new JVMs.
func (j *JDBC) Close() {
	j.mu.Lock()
	all := make([]*jvm, 0, len(j.all))
	for v := range j.all {
		all = append(all, v)
	}
	j.all, j.idle = map[*jvm]bool{}, map[string][]*jvm{}
	j.mu.Unlock()
	for _, v := range all {
		v.kill()
	}
}
