package api

import "time"

// RetryChain is one client's attempts, as GET /retries lists them
// (docs/tds-faults.md, "Retry analysis").
type RetryChain struct {
	Proxy    string `json:"proxy"`
	Identity string `json:"identity"`
	// Outcome is "connected", "gave up" or "retrying" (the last attempt
	// failed less than the retry window, 10 s, ago).
	Outcome  string         `json:"outcome"`
	Attempts []RetryAttempt `json:"attempts"`
	// Rule is the fault rule behind the first failure, if any.
	Rule string `json:"rule,omitempty"`
}

// RetryAttempt is one connection of a chain.
type RetryAttempt struct {
	ID    uint64    `json:"id"`
	Start time.Time `json:"start"`
	// AfterPreviousMS is the time from the previous attempt's end to
	// this one's start, in milliseconds (0 for the first).
	AfterPreviousMS float64 `json:"after_previous_ms"`
	Ended           string  `json:"ended"`
	Rule            string  `json:"rule,omitempty"`
	OK              bool    `json:"ok"`
}

// FailoverInfo is POST /proxies/{name}/failover's answer.
type FailoverInfo struct {
	Proxy  string `json:"proxy"`
	Rule   string `json:"rule"`
	Number int32  `json:"number"`
	// Reset is how many open connections were reset.
	Reset    int       `json:"reset"`
	Duration string    `json:"duration"`
	Until    time.Time `json:"until"`
}
