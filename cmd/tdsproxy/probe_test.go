package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// probeExec runs `tdsproxy probe args...` in-process; stdout and stderr
// apart.
func probeExec(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(append([]string{"probe"}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

func TestProbeBadArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "one HOST:PORT"},
		{[]string{"a:1", "b:2"}, "one HOST:PORT"},
		{[]string{"sql01"}, "not HOST:PORT"},
		{[]string{"127.0.0.1:1", "--timeout", "0s"}, "--timeout"},
		{[]string{"127.0.0.1:1", "--concurrency", "0"}, "--concurrency"},
		{[]string{"127.0.0.1:1", "--client-profile", "nosuch"}, "nosuch"},
		{[]string{"127.0.0.1:1", "--bogus"}, "bogus"},
	} {
		_, _, err := probeExec(t, tc.args...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("probe %q: %v, want a usage error (exit 2) naming %q", tc.args, err, tc.want)
		}
	}
}

// An unreachable target is exit 1 (not a usage error) with one line, fast.
func TestProbeUnreachableExit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	_, _, err = probeExec(t, addr, "--timeout", "500ms")
	var ue usageError
	if err == nil || errors.As(err, &ue) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("probe of a closed port: %v, want a one-line 'connection refused' error (exit 1)", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

// --json has exactly the keys; progress goes to stderr; and
// --client-profile selects the profiles reported.
func TestProbeJSONSchema(t *testing.T) {
	cert, _, _, err := tlsbridge.GenerateCertificate(tlsbridge.CertOptions{Hash: "md5", KeyBits: 1024, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	emu, err := emulator.New(emulator.Config{TLSMin: tls.VersionTLS12, TLSMax: tls.VersionTLS12, Certificate: &cert})
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })

	stdout, stderr, err := probeExec(t, emu.Addr(), "--json", "--timeout", "2s", "--concurrency", "4",
		"--client-profile", "netfx-tls10", "--client-profile", "go-mssqldb")
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "probe: ") {
		t.Errorf("no progress lines on stderr: %q", stderr)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &top); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
	}
	for _, k := range []string{"target", "prelogin", "strict", "versions", "cipher_suites", "dhe", "certificates", "profiles", "verdicts"} {
		if _, ok := top[k]; !ok {
			t.Errorf("JSON has no %q", k)
		}
	}
	var r struct {
		Target string `json:"target"`
		Strict struct {
			Supported *bool    `json:"supported"`
			Versions  []string `json:"versions"`
		} `json:"strict"`
		Versions     []string            `json:"versions"`
		CipherSuites map[string][]string `json:"cipher_suites"`
		DHE          map[string]any      `json:"dhe"`
		Certificates []map[string]any    `json:"certificates"`
		Profiles     []map[string]any    `json:"profiles"`
		Verdicts     []map[string]any    `json:"verdicts"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if r.Target != emu.Addr() || r.Strict.Supported == nil || !*r.Strict.Supported || !slices.Equal(r.Versions, []string{"TLS 1.2"}) || len(r.CipherSuites["TLS 1.2"]) == 0 {
		t.Errorf("target %q strict %+v versions %v suites %v", r.Target, r.Strict, r.Versions, r.CipherSuites)
	}
	if r.DHE["leading_zero"] != "n/a" || r.DHE["groups_bits"] == nil {
		t.Errorf("dhe %v", r.DHE)
	}
	need := func(what string, m map[string]any, keys ...string) {
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s has no %q: %v", what, k, m)
			}
		}
	}
	if len(r.Certificates) != 1 {
		t.Fatalf("certificates %v", r.Certificates)
	}
	need("certificate", r.Certificates[0], "signature_algorithm", "thumbprint_sha1", "not_after")
	if r.Certificates[0]["signature_algorithm"] != "MD5-RSA" {
		t.Errorf("signature_algorithm %v", r.Certificates[0]["signature_algorithm"])
	}
	var names []string
	for _, p := range r.Profiles {
		need("profile", p, "name", "connects", "version", "cipher_suite", "scenario")
		names = append(names, p["name"].(string))
	}
	if !slices.Equal(names, []string{"netfx-tls10", "go-mssqldb"}) {
		t.Errorf("profiles %v, want the two asked for", names)
	}
	status := map[string]string{}
	for _, v := range r.Verdicts {
		need("verdict", v, "scenario", "status", "why", "fix")
		status[v["scenario"].(string)], _ = v["status"].(string)
	}
	if status["weak-cert-hash"] != "risk" || status["protocol-mismatch"] != "risk" || status["dhe-enabled"] != "ok" {
		t.Errorf("verdict statuses %v", status)
	}

	// The readable report names the verdicts and the fix.
	text, _, err := probeExec(t, emu.Addr(), "--timeout", "2s")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Verdicts", "weak-cert-hash: risk", "Fix: ", "MD5-RSA"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
}
