package faults

// Fault actions faults records beside proxy.ActionPass, ActionSkip and
// ActionArmed (which are not injections: proxy.FaultEvent.Acted).
const (
	// ActionDelay: the rule held a phase (Verdict.Delay).
	ActionDelay = "delay"
	// ActionClosePrefix starts a close's action: "close:rst", "close:fin",
	// "close:alert".
	ActionClosePrefix = "close:"
)
