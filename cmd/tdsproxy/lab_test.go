package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/testkit"
)

// lockedBuffer is a bytes.Buffer safe to read while a command writes it.
type lockedBuffer = testkit.LockedBuffer

// labExec runs "tdsproxy lab args..." in process.
func labExec(t *testing.T, ctx context.Context, out *lockedBuffer, args ...string) error {
	t.Helper()
	root := newRootCmd()
	root.SetOut(out)
	root.SetErr(out)
	root.SetArgs(append([]string{"lab"}, args...))
	return root.ExecuteContext(ctx)
}

func TestLabUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"extra"}, "takes no arguments"},
		{[]string{"--scenario", "nope"}, "not one of protocol-mismatch"},
		{[]string{"--hold"}, "--hold needs --scenario"},
		{[]string{"--listen", "127.0.0.1:1"}, "--listen is for --hold"},
		{[]string{"--hold", "--scenario", "cipher-mismatch", "--json"}, "--json"},
		{[]string{"--timeout", "0s"}, "--timeout"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--client", "sqlcmd"}, "unknown client"},
		{[]string{"--hold", "--scenario", "cipher-mismatch", "--client", "jdbc"}, "--client is for"},
		{[]string{"--handshakes", "-1"}, "--handshakes"},
		{[]string{"--hold", "--scenario", "dhe-leading-zero", "--handshakes", "9"}, "--handshakes is for"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out lockedBuffer
			err := labExec(t, context.Background(), &out, tc.args...)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error mentioning %q", err, tc.want)
			}
		})
	}
}

// One row end to end through the command: the table, then the JSON form.
func TestLabCommandOneScenario(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var out lockedBuffer
	if err := labExec(t, ctx, &out, "--scenario", "weak-cert-hash"); err != nil {
		t.Fatalf("lab --scenario weak-cert-hash: %v\n%s", err, out.String())
	}
	table := out.String()
	for _, want := range []string{"SCENARIO", "weak-cert-hash", "tls.client_hello", "rst by proxy", "connection reset by peer",
		"connected, SELECT 1 = 1", "1 scenarios: 1 as documented"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}

	var js lockedBuffer
	if err := labExec(t, ctx, &js, "--scenario", "cipher-mismatch", "--json"); err != nil {
		t.Fatalf("lab --json: %v", err)
	}
	var rep struct {
		Rows []struct {
			Scenario       string `json:"scenario"`
			Status         string `json:"status"`
			FaultAt        string `json:"fault_at"`
			FixedConnected bool   `json:"fixed_connected"`
		} `json:"rows"`
	}
	if err := json.Unmarshal([]byte(js.String()), &rep); err != nil {
		t.Fatalf("JSON: %v\n%s", err, js.String())
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Scenario != "cipher-mismatch" || rep.Rows[0].Status != "ok" ||
		rep.Rows[0].FaultAt != "tls.client_hello" || !rep.Rows[0].FixedConnected {
		t.Errorf("report = %+v", rep)
	}
}

// The leading-zero row through the command: --handshakes sets the natural
// count, and the JSON carries the counts (natural, forced, after the fix).
func TestLabCommandDHEHandshakes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var js lockedBuffer
	if err := labExec(t, ctx, &js, "--scenario", "dhe-leading-zero", "--handshakes", "30", "--json"); err != nil {
		t.Fatalf("lab --handshakes 30: %v\n%s", err, js.String())
	}
	type tally struct {
		Handshakes int `json:"handshakes"`
		Failures   int `json:"failures"`
	}
	var rep struct {
		Rows []struct {
			Status string `json:"status"`
			Close  string `json:"close"`
			DHE    struct {
				Natural     tally `json:"natural"`
				ForcedPad   tally `json:"forced_pad"`
				ForcedStrip tally `json:"forced_strip"`
				Fixed       tally `json:"fixed"`
			} `json:"dhe"`
		} `json:"rows"`
	}
	if err := json.Unmarshal([]byte(js.String()), &rep); err != nil || len(rep.Rows) != 1 {
		t.Fatalf("JSON: %v\n%s", err, js.String())
	}
	r := rep.Rows[0]
	if r.Status != "ok" || r.Close != "rst by server" || r.DHE.Natural.Handshakes != 30 || r.DHE.Fixed != (tally{30, 0}) ||
		r.DHE.ForcedPad != (tally{20, 20}) || r.DHE.ForcedStrip != (tally{20, 0}) {
		t.Errorf("row %+v", r)
	}
}

// --hold prints connection help and runs until its context ends.
func TestLabHold(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- labExec(t, ctx, &out, "--scenario", "delayed-accept", "--hold", "--listen", "127.0.0.1:0", "--log-level", "error")
	}()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(out.String(), "Ctrl-C stops") {
		select {
		case err := <-done:
			t.Fatalf("hold ended early: %v\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("no connection help within 20s:\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	help := out.String()
	for _, want := range []string{"scenario delayed-accept held", "accept_delay", "connection+timeout=1", `"connectTimeout":1000`, "tsql -S"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("hold: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hold did not stop within 10s of its context ending")
	}
}
