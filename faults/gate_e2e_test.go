package faults_test

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// A listener paused by a delayed-accept backlog rule resumes the moment the
// rule is deleted, and a rule whose match lets connections pass does not
// pause at all (issue 18).
func TestBacklogPauseFollowsItsRule(t *testing.T) {
	zero := 0.0
	rule := func(m faults.Match) faults.RuleSpec {
		return faults.RuleSpec{Name: "full", Scenario: faults.ScenarioDelayedAccept,
			Options: map[string]string{"accept_delay": "40s", "backlog": "4"}, Match: m}
	}
	start := func(t *testing.T, r faults.RuleSpec) (*faults.Engine, string) {
		t.Helper()
		e := faults.NewEngine(nil)
		if err := e.SetRules("p", []faults.RuleSpec{r}); err != nil {
			t.Fatal(err)
		}
		p := proxykit.Start(t, proxy.Config{Name: "p", Upstream: testkit.StartEcho(t)}, proxy.Options{Decider: e.Decider("p")})
		return e, p.Addr().String()
	}
	// echoWithin sends a byte and waits up to d for the echo.
	echoWithin := func(t *testing.T, c net.Conn, d time.Duration) error {
		t.Helper()
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(d))
		_, err := io.ReadFull(c, make([]byte, 1))
		return err
	}
	t.Run("deleted", func(t *testing.T) {
		e, addr := start(t, rule(faults.Match{}))
		c, err := net.Dial("tcp", addr) // queued by the kernel, not accepted
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := echoWithin(t, c, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("echo while the rule pauses accepts: %v, want none", err)
		}
		if err := e.DeleteRule("p", "full"); err != nil {
			t.Fatal(err)
		}
		if err := echoWithin(t, c, 3*time.Second); err != nil {
			t.Fatalf("no echo within 3s of deleting a 40s accept_delay rule: %v", err)
		}
	})
	t.Run("probability 0", func(t *testing.T) {
		_, addr := start(t, rule(faults.Match{Probability: &zero}))
		for i := range 3 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			err = echoWithin(t, c, 3*time.Second)
			c.Close()
			if err != nil {
				t.Fatalf("connection %d: %v; a rule with probability 0 paused accepts", i+1, err)
			}
		}
	})
}
