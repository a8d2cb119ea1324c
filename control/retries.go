package control

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	wire "github.com/tdsproxy/tdsproxy/control/api"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/record"
)

// Retry analysis (docs/tds-faults.md, "Retry analysis"): each finished
// connection is linked to the earlier attempts of the same client
// identity, so that a chaos test shows what the application did after a
// fault: attempt 3, 1.02 s after attempt 2 ended with 40613 injected by
// rule R. A chain ends when an attempt succeeds ("connected") or when no
// new attempt comes within retryWindow of a failure ("gave up").

// retryWindow is how long after a failed attempt a new connection of the
// same identity still counts as its retry.
const retryWindow = 10 * time.Second

// maxChains bounds the chains kept for GET /retries (oldest dropped).
const maxChains = 512

// RetryChain and RetryAttempt are GET /retries's wire types.
type (
	RetryChain   = wire.RetryChain
	RetryAttempt = wire.RetryAttempt
)

// chain is a RetryChain with the tracker's own bookkeeping.
type chain struct {
	wire.RetryChain
	lastEnd  time.Time
	counted  bool // give-up counted in the metrics
	evicted  bool // dropped from chains (maxChains): no longer swept
	identity string
}

// retryTracker links attempts; it is fed by the instance's sink.
type retryTracker struct {
	mu     sync.Mutex
	open   map[string]*chain // identity → its latest chain
	chains []*chain          // newest last, at most maxChains
	// retrying holds the chains that may be "retrying" (and some that
	// no longer are), in the order they started retrying: the only ones
	// a sweep can change. A sweep of every chain per connection cost
	// more than the rest of observe (issue 17: CPU per login).
	retrying []*chain
	window   time.Duration
	now      func() time.Time

	retries, giveUps *prometheus.CounterVec
}

func newRetryTracker(reg prometheus.Registerer) *retryTracker {
	t := &retryTracker{open: map[string]*chain{}, window: retryWindow, now: time.Now,
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tdsproxy_retries_total",
			Help: "Connections that retried after a failed attempt of the same client, by the rule behind the failure (\"\" for none)."}, []string{"proxy", "rule"}),
		giveUps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tdsproxy_retry_giveups_total",
			Help: "Clients that did not come back within 10 s of a failed attempt, by the rule behind the failure."}, []string{"proxy", "rule"}),
	}
	if reg != nil {
		// A registry that already has them (a second instance on it)
		// keeps its own; this tracker's counters then go unexported.
		_ = reg.Register(t.retries)
		_ = reg.Register(t.giveUps)
	}
	return t
}

// identityOf is who the client is: its address without the port (each
// retry comes from a new port), and LOGIN7's host and app when visible.
func identityOf(rec *proxy.Record) string {
	host, _, err := net.SplitHostPort(rec.Client)
	if err != nil {
		host = rec.Client
	}
	id := host
	if l := rec.Login; l != nil && l.Visible {
		id += " host=" + l.Host + " app=" + l.App
	}
	return id
}

// endedOf words how a connection ended, with the rule that caused it.
func endedOf(rec *proxy.Record) (ended, rule string, ok bool) {
	if n, r, inj := faults.LoginErrorInjected(rec); inj {
		return fmt.Sprintf("error %d", n), r, false
	}
	if l := rec.Login; l != nil && l.Outcome == proxy.LoginFailed {
		return fmt.Sprintf("error %d", l.ErrorNumber), "", false
	}
	for _, f := range rec.Faults {
		switch f.Action {
		case "", proxy.ActionPass, proxy.ActionSkip, proxy.ActionArmed:
			continue
		}
		if f.Phase != proxy.PhaseEstablished || rec.Close != nil && rec.Close.By == proxy.SideProxy {
			rule = f.Rule
		}
		break
	}
	c := rec.Close
	if c == nil {
		return "open", rule, false
	}
	ended = string(c.Kind) + " by " + string(c.By) + " at " + string(c.Phase)
	established := rec.Reached(proxy.PhaseEstablished)
	// The client ending an established session is the normal end; the
	// proxy (a fault, a failover, the API) or a reset is not.
	ok = established && c.By == proxy.SideClient || established && c.By == proxy.SideServer && c.Kind == proxy.CloseFIN
	if ok {
		rule = ""
	}
	return ended, rule, ok
}

// observe links a finished record to its chain and fills rec.Retry.
func (t *retryTracker) observe(rec *proxy.Record) {
	if rec.Protocol == "" && rec.BytesClientToServer == 0 {
		return // a port probe, not an attempt
	}
	identity := identityOf(rec)
	ident := rec.Proxy + "|" + identity
	ended, rule, ok := endedOf(rec)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked()
	end := rec.End
	if end.IsZero() {
		end = t.now()
	}
	att := RetryAttempt{ID: rec.ID, Start: rec.Start, Ended: ended, Rule: rule, OK: ok}
	info := &record.RetryInfo{Identity: identity, Ended: ended, OK: ok}
	ch := t.open[ident]
	prevOK := true
	if ch != nil {
		prevOK = ch.Attempts[len(ch.Attempts)-1].OK
	}
	if ch == nil || prevOK || ch.Outcome == "gave up" || rec.Start.Sub(ch.lastEnd) > t.window {
		ch = &chain{RetryChain: wire.RetryChain{Proxy: rec.Proxy, Identity: identity}, identity: ident}
		t.open[ident] = ch
		t.chains = append(t.chains, ch)
		if len(t.chains) > maxChains {
			old := t.chains[0]
			old.evicted = true
			t.chains = t.chains[1:]
			if t.open[old.identity] == old {
				delete(t.open, old.identity)
			}
		}
	} else {
		prev := ch.Attempts[len(ch.Attempts)-1]
		gap := max(rec.Start.Sub(ch.lastEnd), 0)
		att.AfterPreviousMS = float64(gap) / float64(time.Millisecond)
		info.Previous, info.AfterPrevious, info.PreviousEnded, info.PreviousRule = prev.ID, gap, prev.Ended, prev.Rule
		t.retries.WithLabelValues(rec.Proxy, prev.Rule).Inc()
	}
	ch.Attempts = append(ch.Attempts, att)
	if ch.Rule == "" && rule != "" {
		ch.Rule = rule
	}
	ch.lastEnd = end
	if ok {
		ch.Outcome = "connected"
	} else {
		if ch.Outcome != "retrying" {
			t.retrying = append(t.retrying, ch)
		}
		ch.Outcome = "retrying"
	}
	info.Chain, info.Attempt = ch.Attempts[0].ID, len(ch.Attempts)
	rec.Retry = info
}

// sweepLocked marks chains whose last failure is older than the window
// as given up, counting each once.
func (t *retryTracker) sweepLocked() {
	if len(t.retrying) == 0 {
		return
	}
	now := t.now()
	keep := t.retrying[:0]
	for _, ch := range t.retrying {
		if ch.evicted || ch.Outcome != "retrying" {
			continue // connected since, or no longer listed
		}
		if now.Sub(ch.lastEnd) <= t.window {
			keep = append(keep, ch)
			continue
		}
		ch.Outcome = "gave up"
		if !ch.counted {
			ch.counted = true
			t.giveUps.WithLabelValues(ch.Proxy, ch.Attempts[len(ch.Attempts)-1].Rule).Inc()
		}
	}
	clear(t.retrying[len(keep):])
	t.retrying = keep
}

// list returns copies of the chains, newest first; proxyName "" is all,
// and minAttempts filters out single attempts when 2.
func (t *retryTracker) list(proxyName string, minAttempts int) []RetryChain {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked()
	out := []RetryChain{}
	for _, ch := range slices.Backward(t.chains) {
		if proxyName != "" && ch.Proxy != proxyName || len(ch.Attempts) < minAttempts {
			continue
		}
		c := ch.RetryChain
		c.Attempts = slices.Clone(ch.Attempts)
		out = append(out, c)
	}
	return out
}

// Retries lists the retry chains, newest first (GET /retries): every
// chain of proxyName ("" for all), or only those with a retry when
// retriedOnly.
func (in *Instance) Retries(proxyName string, retriedOnly bool) []RetryChain {
	minAttempts := 1
	if retriedOnly {
		minAttempts = 2
	}
	return in.retries.list(proxyName, minAttempts)
}

// listRetries serves GET /retries[?proxy=NAME][&retried=true].
func (a *api) listRetries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	retried := q.Get("retried") == "true" || q.Get("retried") == "1"
	writeJSON(w, http.StatusOK, a.in.Retries(q.Get("proxy"), retried))
}
