package control

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	wire "github.com/tdsproxy/tdsproxy/control/api"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// A failover (docs/tds-faults.md, "failover"): an instance failing over
// resets every open connection at once, then refuses logins with 40613
// ("database not currently available") until the new primary is up. The
// refusal is a tds_error rule named FailoverRule, removed when the
// duration ends; so it answers in the server's place where the proxy sees
// TDS in plaintext (NOT_SUP and login-only sessions).

// FailoverRule is the name of the rule a failover installs.
const FailoverRule = "failover"

// MaxFailover bounds a failover's duration.
const MaxFailover = time.Hour

// FailoverInfo is POST /proxies/{name}/failover's answer.
type FailoverInfo = wire.FailoverInfo

// failoverTimers holds each instance's pending rule removals, per proxy.
var failoverTimers sync.Map // *Instance → *failovers

type failovers struct {
	mu     sync.Mutex
	timers map[string]*time.Timer
}

// Failover resets every open connection of proxyName (RST), then makes
// logins fail with error number (0: 40613) for duration. A failover
// already under way on that proxy is extended to end duration from now.
func (in *Instance) Failover(proxyName string, duration time.Duration, number int32) (FailoverInfo, error) {
	if duration <= 0 || duration > MaxFailover {
		return FailoverInfo{}, invalidf("duration: %v is not between 0 and %v", duration, MaxFailover)
	}
	if number == 0 {
		number = 40613
	}
	rule := faults.RuleSpec{Name: FailoverRule, Action: faults.TDSError,
		Options: faults.OptionValues{"at": "login", "number": strconv.Itoa(int(number))}}
	if _, err := in.AddFault(proxyName, rule); errors.Is(err, faults.ErrRuleExists) {
		_, err = in.ReplaceFault(proxyName, FailoverRule, rule)
		if err != nil {
			return FailoverInfo{}, err
		}
	} else if err != nil {
		return FailoverInfo{}, err
	}
	v, _ := failoverTimers.LoadOrStore(in, &failovers{timers: map[string]*time.Timer{}})
	fo := v.(*failovers)
	fo.mu.Lock()
	if t := fo.timers[proxyName]; t != nil {
		t.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(duration, func() {
		fo.mu.Lock()
		mine := fo.timers[proxyName] == t
		if mine {
			delete(fo.timers, proxyName)
		}
		fo.mu.Unlock()
		if mine {
			if err := in.DeleteFault(proxyName, FailoverRule); err != nil && !errors.Is(err, faults.ErrNoRule) {
				in.log.Warn("failover: removing the rule", zap.String("proxy", proxyName), zap.Error(err))
			}
		}
	})
	fo.timers[proxyName] = t
	fo.mu.Unlock()

	n := 0
	for _, p := range in.allProxies() {
		for _, r := range p.Connections() {
			if r.Proxy == proxyName && p.CloseConnection(r.ID, proxy.StyleRST, fmt.Sprintf("failover (%v)", duration)) {
				n++
			}
		}
	}
	in.log.Info("failover", zap.String("proxy", proxyName), zap.Int("reset", n), zap.Duration("duration", duration), zap.Int32("number", number))
	return FailoverInfo{Proxy: proxyName, Rule: FailoverRule, Number: number, Reset: n, Duration: duration.String(), Until: time.Now().Add(duration)}, nil
}

// failover serves POST /proxies/{name}/failover?duration=30s[&number=N].
func (a *api) failover(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := 30 * time.Second
	if s := q.Get("duration"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			fail(w, invalidf("duration: %q is not a duration such as 30s", s))
			return
		}
	}
	var number int32
	if s := q.Get("number"); s != "" {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			fail(w, invalidf("number: %q is not an error number", s))
			return
		}
		number = int32(n)
	}
	info, err := a.in.Failover(r.PathValue("name"), d, number)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}
