package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// The admin API's endpoints, one handler each (routes in Handler,
// admin.go): proxies, their fault rules, connections, records, health and
// version.

func (a *api) listProxies(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.in.Proxies())
}

func (a *api) getProxy(w http.ResponseWriter, r *http.Request) {
	pi, err := a.in.Proxy(r.PathValue("name"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, pi)
}

func (a *api) addProxy(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(r)
	if err != nil {
		fail(w, err)
		return
	}
	// The wire form takes dial_timeout as a string so a bad one is
	// reported with its key (a TextUnmarshaler's error is not), and each
	// rule raw, so an error in one names faults[i].key.
	var req struct {
		ProxyRequest
		DialTimeout string            `json:"dial_timeout"`
		Faults      []json.RawMessage `json:"faults"`
	}
	if err := decodeStrict(b, &req); err != nil {
		fail(w, err)
		return
	}
	cfg := proxy.Config{Name: req.Name, Listen: req.Listen, Upstream: req.Upstream, Bridge: bridgeFromWire(req.Bridge)}
	if req.DialTimeout != "" {
		d, err := time.ParseDuration(req.DialTimeout)
		if err != nil || d <= 0 {
			fail(w, invalidf("dial_timeout: %q is not a positive duration like 5s", req.DialTimeout))
			return
		}
		cfg.DialTimeout = d
	}
	rules, err := parseRules(req.Faults)
	if err != nil {
		fail(w, err)
		return
	}
	if err := a.in.AddProxy(cfg, rules); err != nil {
		fail(w, err)
		return
	}
	pi, err := a.in.Proxy(req.Name)
	if err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Location", "/proxies/"+url.PathEscape(req.Name))
	writeJSON(w, http.StatusCreated, pi)
}

// parseRules decodes a list of rules; an error names faults[i].key.
func parseRules(raw []json.RawMessage) ([]faults.RuleSpec, error) {
	specs := make([]faults.RuleSpec, len(raw))
	for i, m := range raw {
		var err error
		if specs[i], err = faults.ParseRuleSpec(m); err != nil {
			return nil, invalid(indexedKey(i, err))
		}
	}
	return specs, nil
}

// indexedKey puts faults[i] in front of the key err names:
// "match.a: unknown key" becomes "faults[2].match.a: unknown key".
func indexedKey(i int, err error) error {
	msg := err.Error()
	if k, rest, ok := strings.Cut(msg, ": "); ok && k != "" && !strings.ContainsAny(k, " \"") {
		return fmt.Errorf("faults[%d].%s: %s", i, k, rest)
	}
	return fmt.Errorf("faults[%d]: %s", i, msg)
}

// ruleSetError words a rule set's error (faults.RuleError, "faults[2]:
// key: what") with the key's whole path, as parseRules does.
func ruleSetError(err error) error {
	var re *faults.RuleError
	if errors.As(err, &re) {
		return invalid(indexedKey(re.Index, re.Err))
	}
	return invalid(err)
}

// deleteProxy: ?drain=DURATION lets open connections finish for that long
// (default 0: closed at once, as Toxiproxy does); ?style=fin|rst.
func (a *api) deleteProxy(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var drain time.Duration
	if s := q.Get("drain"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			fail(w, invalidf("drain: %q is not a duration like 0s or 30s", s))
			return
		}
		drain = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), drain)
	defer cancel()
	if err := a.in.RemoveProxy(ctx, r.PathValue("name"), proxy.CloseStyle(q.Get("style"))); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) listFaults(w http.ResponseWriter, r *http.Request) {
	rules, err := a.in.Faults(r.PathValue("name"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rules)
}

func (a *api) getFault(w http.ResponseWriter, r *http.Request) {
	rule, err := a.in.Fault(r.PathValue("name"), r.PathValue("rule"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rule)
}

func (a *api) addFault(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !a.in.hasProxy(name) {
		fail(w, fmt.Errorf("proxy %q: %w", name, ErrNoProxy))
		return
	}
	b, err := readBody(r)
	if err != nil {
		fail(w, err)
		return
	}
	spec, err := faults.ParseRuleSpec(b)
	if err != nil {
		fail(w, invalid(err))
		return
	}
	rule, err := a.in.AddFault(name, spec)
	if err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Location", "/proxies/"+url.PathEscape(name)+"/faults/"+url.PathEscape(rule.Name))
	writeJSON(w, http.StatusCreated, rule)
}

func (a *api) setFaults(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !a.in.hasProxy(name) {
		fail(w, fmt.Errorf("proxy %q: %w", name, ErrNoProxy))
		return
	}
	b, err := readBody(r)
	if err != nil {
		fail(w, err)
		return
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		fail(w, invalidf("body: expected a JSON array of rules: %v", jsonSyntax(err)))
		return
	}
	specs, err := parseRules(raw)
	if err != nil {
		fail(w, err)
		return
	}
	if err := a.in.SetFaults(name, specs); err != nil {
		fail(w, err)
		return
	}
	rules, _ := a.in.Faults(name)
	writeJSON(w, http.StatusOK, rules)
}

func (a *api) patchFault(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(r)
	if err != nil {
		fail(w, err)
		return
	}
	rule, err := a.in.PatchFault(r.PathValue("name"), r.PathValue("rule"), b)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rule)
}

func (a *api) deleteFault(w http.ResponseWriter, r *http.Request) {
	if err := a.in.DeleteFault(r.PathValue("name"), r.PathValue("rule")); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) reset(w http.ResponseWriter, r *http.Request) {
	a.in.Reset()
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) listConnections(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.in.Connections())
}

func connID(r *http.Request) (uint64, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, invalidf("id: %q is not a connection id (a number)", s)
	}
	return id, nil
}

func (a *api) getConnection(w http.ResponseWriter, r *http.Request) {
	id, err := connID(r)
	if err != nil {
		fail(w, err)
		return
	}
	rec, err := a.in.Connection(id)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// closeConnection: ?style=rst (the client sees a reset: 10054) or fin
// (default).
func (a *api) closeConnection(w http.ResponseWriter, r *http.Request) {
	id, err := connID(r)
	if err != nil {
		fail(w, err)
		return
	}
	if err := a.in.CloseConnection(id, proxy.CloseStyle(r.URL.Query().Get("style"))); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ParseRecordQuery reads GET /records's parameters: since (a cursor, i.e. a
// previous answer's next, or an RFC 3339 time), limit and last.
func ParseRecordQuery(since, limit, last string) (RecordQuery, error) {
	var q RecordQuery
	if since != "" {
		if c, err := strconv.ParseUint(since, 10, 64); err == nil {
			q.After = c
		} else if t, err := time.Parse(time.RFC3339Nano, since); err == nil {
			q.Since = t
		} else {
			return q, invalidf("since: %q is neither a cursor (the next of a previous answer) nor an RFC 3339 time like 2024-05-01T12:00:00Z", since)
		}
	}
	count := func(key, s string) (int, error) {
		if s == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, invalidf("%s: %q is not a count", key, s)
		}
		return n, nil
	}
	var err error
	if q.Limit, err = count("limit", limit); err != nil {
		return q, err
	}
	q.Last, err = count("last", last)
	return q, err
}

func (a *api) records(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q, err := ParseRecordQuery(v.Get("since"), v.Get("limit"), v.Get("last"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.in.Records(q))
}

func (a *api) healthz(w http.ResponseWriter, r *http.Request) {
	if a.in.isClosing() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *api) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, VersionInfo{Version: a.in.version, Go: runtime.Version()})
}
