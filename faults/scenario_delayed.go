package faults

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// delayedAccept is scenario 6: accept/IOCP worker starvation.
var delayedAccept = &scenario{
	Name:    ScenarioDelayedAccept,
	Probe:   ProbeTiming,
	Summary: "accept/IOCP worker starvation: accepts come late, SYNs go unanswered, logins time out",
	Where:   "TCP connect, or PRELOGIN/login never answered in time",
	Phase:   proxy.PhaseAccept,
	Fix:     "add capacity (SQL Server 2019+ has a login dispatcher pool); give clients longer connect/login timeouts and retries",
	Options: []Option{
		{Name: "accept_delay", Flag: "accept-delay", Type: OptDuration,
			Help: "hold each accepted connection this long before talking to the server, e.g. 5s"},
		{Name: "backlog", Flag: "backlog", Type: OptInt,
			Help: "with accept_delay: a listen backlog this small, with accepts paused for accept_delay each, so new SYNs go unanswered (Linux; elsewhere accepts pause but the queue keeps its size). match.probability, first, every and window decide each pause; match.clients, instance, sni and protocol cannot apply before accept and are refused"},
		{Name: "reject", Flag: "reject", Type: OptBool, Help: "accept, then reset at once"},
		{Name: "prelogin_delay", Flag: "prelogin-delay", Type: OptDuration, Help: "hold the server's PRELOGIN response this long"},
		{Name: "login_delay", Flag: "login-delay", Type: OptDuration, Help: "hold the server's login response this long"},
	},
	rule: func() scenarioRule { return &delayRule{} },
	recognise: func(r *proxy.Record) (string, bool) {
		if r.Close == nil || r.Close.By != proxy.SideClient || r.Close.Awaiting != proxy.SideServer {
			return "", false
		}
		switch r.Close.Phase {
		case proxy.PhaseAccept, proxy.PhasePreloginRequest, proxy.PhaseLogin7:
			return fmt.Sprintf("the client gave up after the server was silent for %v in %s", r.Close.Silence.Round(time.Millisecond), r.Close.Phase), true
		}
		return "", false
	},
	Lab: LabSetup{
		Options: map[string]string{"accept_delay": labAcceptDelay.String()},
		Server:  LabServer{Desc: "emulator; rule accept_delay=" + labAcceptDelay.String()},
		Before:  LabClient{Timeout: labBeforeTimeout},
		After:   LabClient{Timeout: labAfterTimeout},
		// The delay holds each connection in its own goroutine, so the
		// fixed client does not wait behind the first.
		OneProxy: true,
		Expect:   LabExpect{By: proxy.SideClient, Errors: timeoutErrors, AfterDelayed: true},
		Note: fmt.Sprintf("The proxy accepts, then holds each connection for %v before talking to the server, as a "+
			"starved SQL Server does. The client before the fix waits %ds for the PRELOGIN response and gives up; after the "+
			"fix (a %ds timeout; retries also help) it waits out the delay and logs in. Other forms: backlog (SYNs unanswered), "+
			"reject, prelogin_delay, login_delay.", labAcceptDelay, labBeforeTimeout, labAfterTimeout),
		ExtNote: fmt.Sprintf("The proxy holds each accepted connection for %v. The client before the fix gives up after %ds; after the fix (%ds) it waits out the delay.",
			labAcceptDelay, labBeforeTimeout, labAfterTimeout),
		HoldNote: fmt.Sprintf("The proxy holds every accepted connection for %v before talking to the server: "+
			"a client whose timeout is shorter gives up.", labAcceptDelay),
		// Measured with tsql 1.3.17: it waits out the delay whatever these
		// say.
		Cannot: map[string]string{LabTSQL: "cannot be made to give up here: tsql 1.3 applies neither `connect timeout` nor `timeout` " +
			"to the wait for the PRELOGIN response (it waits out the delay and connects)"},
	},
	Soak: []SoakCase{
		{Name: "delayed-accept-reject", Encrypt: "disable", Options: map[string]string{"reject": "true"},
			WantErr: []string{"connection reset by peer", "broken pipe", "EOF"}},
		{Name: "delayed-login", Encrypt: "disable", Client: LabClient{Timeout: 1}, Options: map[string]string{"login_delay": "3s"},
			WantErr: []string{"i/o timeout"}},
	},
}

// delayRule holds or rejects connections at accept, or holds the server's
// PRELOGIN or login response.
type delayRule struct {
	AcceptDelay   time.Duration `opt:"accept_delay"`
	Backlog       backlog       `opt:"backlog"`
	Reject        bool          `opt:"reject"`
	PreloginDelay time.Duration `opt:"prelogin_delay"`
	LoginDelay    time.Duration `opt:"login_delay"`
}

func (p *delayRule) check(func(string) bool) error {
	if p.Backlog > 0 && p.AcceptDelay == 0 {
		return keyed("backlog", "needs accept_delay (how long accepts pause)")
	}
	if !p.Reject && p.AcceptDelay == 0 && p.PreloginDelay == 0 && p.LoginDelay == 0 {
		return keyed("accept_delay", "set one of accept_delay, backlog, reject, prelogin_delay, login_delay")
	}
	return nil
}

func (p *delayRule) conn(float64) scenarioConn { return p }

// actsAtAccept: a reject, or an accept hold alone, acts before any byte is
// read.
func (p *delayRule) actsAtAccept() bool {
	return p.Reject || p.AcceptDelay > 0 && p.PreloginDelay == 0 && p.LoginDelay == 0
}

// acceptGate: with backlog, the listener itself pauses (the full-backlog
// form), before any connection is accepted.
func (p *delayRule) acceptGate() (time.Duration, int) { return p.AcceptDelay, int(p.Backlog) }

func (p *delayRule) decide(st *connRule, ev *proxy.Event, _ *proxy.Record) proxy.Verdict {
	switch ev.Phase {
	case proxy.PhaseAccept:
		if p.Reject {
			return st.close("accepted, then reset at once")
		}
		if p.AcceptDelay > 0 && p.Backlog == 0 {
			return st.delay(p.AcceptDelay, "accept held for "+p.AcceptDelay.String())
		}
	case proxy.PhasePreloginResponse:
		if p.PreloginDelay > 0 {
			return st.delay(p.PreloginDelay, "PRELOGIN response held for "+p.PreloginDelay.String())
		}
	case proxy.PhaseLoginResponse:
		if p.LoginDelay > 0 {
			return st.delay(p.LoginDelay, "login response held for "+p.LoginDelay.String())
		}
	}
	return proxy.Verdict{}
}

// backlog is a listen backlog, 1 to 65535.
type backlog int

func (b *backlog) UnmarshalText(t []byte) error {
	n, err := strconv.Atoi(strings.TrimSpace(string(t)))
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q is not a count from 1 to 65535", string(t))
	}
	*b = backlog(n)
	return nil
}
