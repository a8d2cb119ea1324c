package control

import (
	wire "github.com/tdsproxy/tdsproxy/control/api"
	"github.com/tdsproxy/tdsproxy/faults"
)

// The admin API's wire types live in control/api, which control/client
// imports without linking the relay; these aliases keep control's names.
type (
	VersionInfo  = wire.VersionInfo
	ErrorBody    = wire.ErrorBody
	ErrorDetail  = wire.ErrorDetail
	ProxyRequest = wire.ProxyRequest
	ProxyInfo    = wire.ProxyInfo
	RecordQuery  = wire.RecordQuery
	RecordPage   = wire.RecordPage
)

// Error codes (wire.Code*).
const (
	CodeBadRequest       = wire.CodeBadRequest
	CodeUnauthorized     = wire.CodeUnauthorized
	CodeNotFound         = wire.CodeNotFound
	CodeMethodNotAllowed = wire.CodeMethodNotAllowed
	CodeConflict         = wire.CodeConflict
	CodeUnavailable      = wire.CodeUnavailable
	CodeInternal         = wire.CodeInternal
)

// apiRules is rules as the API carries them (wire.Rule is faults.RuleSpec's
// JSON, field for field; TestRuleMatchesRuleSpec keeps them so). Never
// nil: an empty list is [] in JSON.
func apiRules(rules []faults.RuleSpec) []wire.Rule {
	out := make([]wire.Rule, len(rules))
	for i, r := range rules {
		out[i] = APIRule(r)
	}
	return out
}

// APIRule is one rule as the API carries it.
func APIRule(r faults.RuleSpec) wire.Rule {
	m := r.Match
	out := wire.Rule{
		Name: r.Name, Scenario: r.Scenario, Action: r.Action, Direction: r.Direction, Phase: r.Phase,
		Options: map[string]string(r.Options), Close: r.Close, Seed: r.Seed,
		Match: wire.Match{Clients: m.Clients, Instance: m.Instance, SNI: m.SNI, Protocol: m.Protocol,
			Probability: m.Probability, First: m.First, Every: m.Every},
	}
	if w := m.Window; w != nil {
		out.Match.Window = &wire.Window{Every: wire.Duration(w.Every), For: wire.Duration(w.For)}
	}
	return out
}
