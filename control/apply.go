package control

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/tdsproxy/tdsproxy/configs"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// ValidateConfig checks cfg as Apply does: configs' own validation (of a
// copy with the defaults applied, so a Config built in Go may leave keys
// empty), then every proxy's fault rules. Each problem is a
// *configs.KeyError naming its key (proxies[1].faults[0].options.server_tls);
// list them with configs.KeyErrors.
func ValidateConfig(cfg *configs.Config) error {
	c := *cfg // ApplyDefaults sets only the sections' string fields
	c.ApplyDefaults()
	return errors.Join(c.Validate(), c.ValidateFaults(func(ms []map[string]any) error {
		_, err := faults.RuleSpecsFromMaps(ms)
		return err
	}))
}

// Apply makes the running proxies what cfg.Proxies says, without
// disturbing a connection that is open (hot reload; the first Apply starts
// everything):
//
//   - cfg is validated first; an invalid one is an *InvalidError naming
//     every bad key (configs.KeyErrors lists them), and nothing changes.
//   - Every listen address needed is bound before anything is stopped; if
//     one cannot be bound, nothing changes either.
//   - A proxy that is new starts. A proxy that is gone stops accepting; its
//     open connections go on until they end (or until Shutdown/Close).
//   - A proxy whose upstream or dial timeout changed is replaced: the new
//     one takes over the same listening socket (no connection is refused
//     in between), the old one keeps relaying its open connections to the
//     old upstream. One whose listen address changed is replaced the same
//     way on its new address.
//   - A proxy's fault rules are swapped atomically when the proxy is new or
//     its rules in cfg differ from those the previous Apply installed;
//     otherwise the rules in force stay, including any changed through the
//     API since. Rule changes never touch open connections.
//
// cfg.Proxies is the whole set: a proxy added through the API and absent
// from cfg is removed. Log, admin and shutdown settings are the caller's
// (cmd/tdsproxy reads shutdown from the newest config; log and admin need
// a restart).
//
// Every call counts in tdsproxy_config_reloads_total (result ok or
// rejected); a configuration refused before it reached Apply (a file that
// does not parse) is counted with ReloadRejected.
func (in *Instance) Apply(cfg *configs.Config) error {
	if err := ValidateConfig(cfg); err != nil {
		in.metrics.reloaded(false)
		return invalid(err)
	}
	err := in.apply(cfg)
	in.metrics.reloaded(err == nil)
	return err
}

// ReloadRejected counts a configuration that was refused before it could
// be applied (a file that does not load or validate) in
// tdsproxy_config_reloads_total{result="rejected"}, as Apply counts the
// ones it refuses: an alert on rejected reloads must see every bad file.
func (in *Instance) ReloadRejected() { in.metrics.reloaded(false) }

// change is one proxy of the new configuration and what happens to it.
type change struct {
	index int
	cfg   proxy.Config
	rules []faults.RuleSpec
	old   *entry // the running proxy of that name, if any
	keep  bool   // same proxy.Config: keep it running as it is
	p     *proxy.Proxy
	ln    net.Listener
	from  string // "new address", "handed over from <name>"
}

// applyPlan is one Apply under way: the proxies running when it began, and
// what happens to each proxy of the new configuration. Apply runs in four
// phases under structMu: plan (nothing changes), prepare (build the new
// proxies, bind or take over their listeners), rules (under faultMu), then
// start the new proxies and retire the old ones. A failure before the last
// phase leaves everything running as it was (abandon).
type applyPlan struct {
	cur     map[string]*entry // running proxies by name (a copy)
	changes []*change
	kept    map[*entry]bool // running proxies kept as they are
	donated map[*entry]bool // running proxies whose socket a change took
	opened  []net.Listener  // listeners prepare bound or duplicated
}

func (in *Instance) apply(cfg *configs.Config) error {
	in.structMu.Lock()
	defer in.structMu.Unlock()
	cur, err := in.runningProxies()
	if err != nil {
		return err
	}
	pl, err := planApply(cfg, cur)
	if err != nil {
		return err
	}
	for _, c := range pl.changes {
		if err := in.prepare(pl, c); err != nil {
			return pl.abandon(err)
		}
	}
	if err := in.applyRules(pl); err != nil {
		return pl.abandon(err)
	}
	in.switchOver(pl)
	in.setSlowLogin(cfg.Diagnosis.SlowLogin)
	return nil
}

// runningProxies copies the set of running proxies, or fails with
// ErrClosed once the instance is closing.
func (in *Instance) runningProxies() (map[string]*entry, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closing {
		return nil, ErrClosed
	}
	cur := make(map[string]*entry, len(in.proxies))
	for n, e := range in.proxies {
		cur[n] = e
	}
	return cur, nil
}

// planApply pairs each proxy of cfg with the running proxy of its name and
// marks the ones whose proxy.Config is unchanged as kept.
func planApply(cfg *configs.Config, cur map[string]*entry) (*applyPlan, error) {
	pl := &applyPlan{cur: cur, changes: make([]*change, len(cfg.Proxies)), kept: map[*entry]bool{}, donated: map[*entry]bool{}}
	for i, pc := range cfg.Proxies {
		rules, err := faults.RuleSpecsFromMaps(pc.Faults)
		if err != nil { // validated by Apply; kept for safety
			return nil, invalid(fmt.Errorf("proxies[%d].%w", i, err))
		}
		c := &change{index: i, rules: rules, old: cur[pc.Name], cfg: ProxyConfigFrom(pc)}
		if c.old != nil && c.old.cfg == c.cfg {
			c.keep = true
			pl.kept[c.old] = true
		}
		pl.changes[i] = c
	}
	return pl, nil
}

// abandon undoes prepare (closes what it bound, releases the proxies it
// built, none of them started) and returns err.
func (pl *applyPlan) abandon(err error) error {
	for _, ln := range pl.opened {
		ln.Close()
	}
	for _, c := range pl.changes {
		if c.p != nil {
			_ = c.p.Close() // never started: releases its context
		}
	}
	return err
}

// prepare builds c's new proxy and gets its listener: the socket of a
// running proxy on the same address that is being replaced or removed
// (clients queued in the kernel's accept queue are not refused), else a
// fresh bind. Nothing running changes.
func (in *Instance) prepare(pl *applyPlan, c *change) error {
	if c.keep {
		return nil
	}
	p, err := in.newProxy(c.cfg)
	if err != nil {
		return invalid(&configs.KeyError{Key: fmt.Sprintf("proxies[%d]", c.index), Err: err})
	}
	c.p = p
	if donor := pl.donorFor(c); donor != nil {
		if ln, err := dupListener(donor.ln); err == nil {
			pl.donated[donor] = true
			c.ln, c.from = ln, "handed over from "+donor.cfg.Name
			pl.opened = append(pl.opened, ln)
		} else {
			in.log.Warn("cannot share the listening socket; binding anew", zap.String("proxy", c.cfg.Name), zap.Error(err))
		}
	}
	if c.ln == nil {
		ln, err := listen(c.cfg.Name, c.cfg.Listen)
		if err != nil {
			return &configs.KeyError{Key: fmt.Sprintf("proxies[%d].listen", c.index), Err: err}
		}
		c.ln, c.from = ln, "new address"
		pl.opened = append(pl.opened, ln)
	}
	// On the bound address, so port 0 and host names are resolved: a
	// proxy relaying to its own listener would never serve.
	if err := proxy.CheckSelfLoop(c.cfg.Upstream, c.ln.Addr()); err != nil {
		return invalid(&configs.KeyError{Key: fmt.Sprintf("proxies[%d].upstream", c.index), Err: err})
	}
	return nil
}

// donorFor is the running proxy whose socket c takes over, or nil: c's own
// predecessor when it keeps its address, else another running proxy on the
// same address that is not kept. With port 0 only the proxy itself keeps
// its port: another one on "127.0.0.1:0" asked for a fresh port.
func (pl *applyPlan) donorFor(c *change) *entry {
	if d := c.old; d != nil && d.cfg.Listen == c.cfg.Listen && !pl.donated[d] {
		return d
	}
	for _, e := range sortedEntries(pl.cur) {
		if !anyPort(c.cfg.Listen) && e.cfg.Listen == c.cfg.Listen && !pl.kept[e] && !pl.donated[e] {
			return e
		}
	}
	return nil
}

// applyRules installs each proxy's file rules before any new proxy starts,
// so its first connection sees them. A proxy added through the API has no
// file rules yet (nil): its API rules stay unless the file now gives it
// some.
func (in *Instance) applyRules(pl *applyPlan) error {
	in.faultMu.Lock()
	defer in.faultMu.Unlock()
	for _, c := range pl.changes {
		if prev := in.applied[c.cfg.Name]; c.old != nil && sameRules(prev, c.rules) {
			in.applied[c.cfg.Name] = c.rules
			continue
		}
		if err := in.engine.SetRules(c.cfg.Name, c.rules); err != nil { // validated
			return invalid(err)
		}
		in.applied[c.cfg.Name] = c.rules
		in.metrics.forgetRulesExcept(c.cfg.Name, in.engine.Rules(c.cfg.Name))
		for _, r := range in.engine.Rules(c.cfg.Name) {
			in.logRule("fault rule armed", c.cfg.Name, r)
		}
	}
	return nil
}

// switchOver starts the new proxies, retires the ones they replace and
// removes the running proxies the configuration no longer names; it
// cannot fail.
func (in *Instance) switchOver(pl *applyPlan) {
	wanted := map[string]bool{}
	var added, replaced, removed []string
	for _, c := range pl.changes {
		wanted[c.cfg.Name] = true
		if c.keep {
			continue
		}
		in.mu.Lock()
		in.proxies[c.cfg.Name] = &entry{cfg: c.cfg, p: c.p, ln: c.ln}
		in.mu.Unlock()
		in.serve(c.p, c.ln)
		if c.old != nil {
			replaced = append(replaced, c.cfg.Name)
			in.log.Info("proxy replaced", zap.String("proxy", c.cfg.Name), zap.String("listen", c.cfg.Listen),
				zap.String("upstream", c.cfg.Upstream), zap.String("socket", c.from),
				zap.Int("open_connections_kept", c.old.p.ActiveCount()))
		} else {
			added = append(added, c.cfg.Name)
		}
	}
	for _, c := range pl.changes {
		if c.old != nil && !c.keep {
			in.retire(c.old)
		}
	}
	for _, e := range sortedEntries(pl.cur) {
		if !wanted[e.cfg.Name] {
			in.removeEntry(e)
			removed = append(removed, e.cfg.Name)
		}
	}
	in.log.Info("configuration applied", zap.Int("proxies", len(pl.changes)),
		zap.Strings("added", added), zap.Strings("replaced", replaced), zap.Strings("removed", removed))
}

// removeEntry stops a running proxy the configuration no longer names: its
// rules go, its open connections drain (retire).
func (in *Instance) removeEntry(e *entry) {
	in.mu.Lock()
	delete(in.proxies, e.cfg.Name)
	delete(in.applied, e.cfg.Name)
	in.mu.Unlock()
	in.faultMu.Lock()
	_ = in.engine.SetRules(e.cfg.Name, nil)
	in.faultMu.Unlock()
	in.retire(e)
	in.log.Info("proxy removed", zap.String("proxy", e.cfg.Name),
		zap.Int("open_connections_kept", e.p.ActiveCount()))
}

// anyPort reports whether addr asks for a free port (port 0).
func anyPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && (port == "0" || port == "")
}

// sameRules compares two rule lists from configuration files; nil and empty
// are the same.
func sameRules(a, b []faults.RuleSpec) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func sortedEntries(m map[string]*entry) []*entry {
	out := make([]*entry, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *entry) int { return strings.Compare(a.cfg.Name, b.cfg.Name) })
	return out
}

// dupListener returns a second listener on ln's socket (a dup of its file
// descriptor): closing ln then leaves the socket, and the connections
// waiting in its accept queue, to the new one.
func dupListener(ln net.Listener) (net.Listener, error) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, fmt.Errorf("%T is not a TCP listener", ln)
	}
	f, err := tl.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return net.FileListener(f)
}

// ProxyConfigFrom maps a config file's proxy entry to proxy.Config,
// limits included. A negotiation_timeout of 0s in the file disables the
// deadline (proxy.Config spells that as a negative duration).
func ProxyConfigFrom(pc configs.ProxyConfig) proxy.Config {
	c := proxy.Config{
		Name: pc.Name, Listen: pc.Listen, Upstream: pc.Upstream, DialTimeout: pc.DialTimeout,
		MaxConnections:       pc.MaxConnections,
		NegotiationTimeout:   pc.NegotiationTimeout,
		MaxNegotiationBuffer: pc.MaxNegotiationBuffer,
		LimitStyle:           proxy.CloseStyle(pc.LimitClose),
		Bridge:               bridgeConfigFrom(pc.Bridge),
	}
	if c.NegotiationTimeout == 0 {
		c.NegotiationTimeout = -1
	}
	return c
}
