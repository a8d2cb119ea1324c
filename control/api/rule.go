package api

import "time"

// Rule is a fault rule as the admin API carries it (GET, POST and PUT
// /proxies/{name}/faults): the JSON of faults.RuleSpec, field for field
// (TestRuleMatchesRuleSpec in package control keeps them equal). The
// server reads it with faults.ParseRuleSpec, which refuses unknown keys
// and names the key at fault; this type only carries it.
type Rule struct {
	// Name identifies the rule in records, logs and the API; unique per
	// proxy.
	Name string `json:"name"`
	// Scenario is a documented 10054 scenario (faults.Scenarios). Exactly
	// one of Scenario and Action is set.
	Scenario string `json:"scenario,omitempty"`
	// Action is a generic fault: latency, bandwidth, ...
	Action string `json:"action,omitempty"`
	// Direction applies a generic action to "upstream", "downstream" or
	// "both" (the default).
	Direction string `json:"direction,omitempty"`
	// Phase is when a generic action starts; default tcp.accept.
	Phase string `json:"phase,omitempty"`
	// Options are the scenario's or the action's options, as strings.
	Options map[string]string `json:"options,omitempty"`
	// Match selects the connections the rule applies to; empty matches all.
	Match Match `json:"match,omitzero"`
	// Close is how an injected close looks: "rst" (default), "fin" or
	// "alert:NAME".
	Close string `json:"close,omitempty"`
	// Seed makes the rule's random draws reproducible; 0 picks one.
	Seed uint64 `json:"seed,omitempty"`
}

// Match selects connections. Every set field must hold.
type Match struct {
	// Clients is a list of client addresses or CIDR prefixes.
	Clients []string `json:"clients,omitempty"`
	// Instance matches PRELOGIN's instance name (case-insensitive).
	Instance string `json:"instance,omitempty"`
	// SNI matches the ClientHello's server_name (case-insensitive).
	SNI string `json:"sni,omitempty"`
	// Protocol is "tds7" (PRELOGIN first) or "strict" (TDS 8.0, TLS first).
	Protocol string `json:"protocol,omitempty"`
	// Probability is the chance a connection is hit, 0..1; unset means 1.
	Probability *float64 `json:"probability,omitempty"`
	// First hits only the first N connections of the proxy.
	First uint64 `json:"first,omitempty"`
	// Every hits every Nth connection.
	Every uint64 `json:"every,omitempty"`
	// Window makes the rule active for a while, periodically.
	Window *Window `json:"window,omitempty"`
}

// Window is "active for For, every Every", counted from when the rule was
// set.
type Window struct {
	Every Duration `json:"every"`
	For   Duration `json:"for"`
}

// Duration is a time.Duration written as "250ms", "5m" in JSON.
type Duration time.Duration

// MarshalText writes d as Go's duration syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads Go's duration syntax.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
