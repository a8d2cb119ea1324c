package faults

import (
	"context"
	"fmt"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// The failover rule (docs/tds-faults.md, "failover"): at the start of
// each failover the connections accepted under the rule are reset, and
// for its duration logins are refused with 40613 (or options.number) in
// the server's place, or reset at LOGIN7 where the session is encrypted.
// The admin API's POST /proxies/{name}/failover is the one-shot form for
// connections already open.

// window says whether t falls in a failover and when the next one after
// t starts (zero when none will).
func (o *tdsOptions) window(setAt, t time.Time) (in bool, next time.Time) {
	base := setAt.Add(o.After)
	if t.Before(base) {
		return false, base
	}
	if o.Every == 0 {
		return t.Before(base.Add(o.Duration)), time.Time{}
	}
	k := t.Sub(base) / o.Every
	start := base.Add(k * o.Every)
	return t.Before(start.Add(o.Duration)), start.Add(o.Every)
}

// decideFailover attaches the reset watch at accept and refuses logins
// during a failover.
func (c *connDecider) decideFailover(cr *connRule, ev *proxy.Event, rec *proxy.Record) proxy.Verdict {
	t := cr.r.tds
	o := t.opts
	now := c.d.e.clock.Now()
	switch ev.Phase {
	case proxy.PhaseAccept:
		if _, next := o.window(cr.r.setAt, now); next.IsZero() {
			return proxy.Verdict{}
		}
		w := &failoverWatch{o: o, setAt: cr.r.setAt, clock: c.d.e.clock}
		return proxy.Verdict{Action: proxy.ActionArmed, Detail: "failover: reset at the next failover",
			Stages: []proxy.DirectedStage{{Dir: proxy.ClientToServer, Stage: w}}}
	case proxy.PhaseLogin7:
		if in, _ := o.window(cr.r.setAt, now); !in {
			return proxy.Verdict{}
		}
		if ok, _ := plaintextAfterLogin(rec); !ok {
			// The login response cannot be replaced: refuse the way a
			// server that is going down does.
			return proxy.Verdict{Close: true, Style: proxy.StyleRST, Action: ActionClosePrefix + string(proxy.StyleRST), Detail: "failover: login reset (session encrypted)"}
		}
		m := o.known.message(loginField(rec, "user"), loginField(rec, "database"), loginField(rec, "server"))
		return proxy.Verdict{Action: TDSError, Detail: fmt.Sprintf("login answered with error %d (failover)", m.Number),
			Stages: []proxy.DirectedStage{{Dir: proxy.ServerToClient, Stage: &loginReplace{msg: m}}}}
	}
	return proxy.Verdict{}
}

func loginField(rec *proxy.Record, k string) string {
	if rec.Login == nil {
		return ""
	}
	switch k {
	case "user":
		return rec.Login.User
	case "database":
		return rec.Login.Database
	}
	return rec.Login.Server
}

// failoverWatch passes bytes on unchanged and resets the connection when
// the next failover starts.
type failoverWatch struct {
	o     *tdsOptions
	setAt time.Time
	clock Clock
}

var _ proxy.StageCloser = (*failoverWatch)(nil)

func (w *failoverWatch) Forward(_ context.Context, chunk []byte, emit func([]byte) error) (*proxy.Cut, error) {
	return nil, emit(chunk)
}

func (w *failoverWatch) BindClose(ctx context.Context, closeConn func(*proxy.Cut)) {
	_, next := w.o.window(w.setAt, w.clock.Now())
	if next.IsZero() {
		return
	}
	go func() {
		if w.clock.Sleep(ctx, next.Sub(w.clock.Now())) == nil {
			closeConn(&proxy.Cut{Style: proxy.StyleRST, Reason: "failover: instance failing over"})
		}
	}()
}
