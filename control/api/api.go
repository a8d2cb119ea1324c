// Package api holds the admin API's wire types: what its endpoints take and
// answer, as JSON. Both sides import it: control (the server, which aliases
// these names: control.ProxyInfo is api.ProxyInfo) and control/client, which
// links only this package and package record, never the relay (proxy) or
// the fault engine (faults).
package api

import (
	"time"

	"github.com/tdsproxy/tdsproxy/record"
)

// VersionInfo is GET /version's answer.
type VersionInfo struct {
	Version string `json:"version"`
	Go      string `json:"go"`
}

// ErrorBody is the one shape of every error answer:
//
//	{"error": {"code": "not_found", "message": "proxy \"x\": no such proxy"}}
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is an error's code and message.
type ErrorDetail struct {
	// Code is one of bad_request, unauthorized, not_found,
	// method_not_allowed, conflict, unavailable, internal.
	Code string `json:"code"`
	// Message says what is wrong, naming the key or field at fault.
	Message string `json:"message"`
}

// Error codes.
const (
	CodeBadRequest       = "bad_request"
	CodeUnauthorized     = "unauthorized"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
)

// ProxyRequest is POST /proxies's body: a proxy as the configuration file
// writes it.
type ProxyRequest struct {
	Name     string `json:"name"`
	Listen   string `json:"listen"`
	Upstream string `json:"upstream"`
	// DialTimeout is a duration ("5s"); absent means 10s.
	DialTimeout Duration `json:"dial_timeout,omitzero"`
	Faults      []Rule   `json:"faults,omitempty"`
	// Bridge, when present, makes the proxy a TLS-terminating bridge.
	Bridge *Bridge `json:"bridge,omitempty"`
}

// ProxyInfo describes a running proxy (GET /proxies).
type ProxyInfo struct {
	// Name identifies the proxy in records, logs, metrics and API paths.
	Name string `json:"name"`
	// Listen is the configured listen address; Addr is the bound one (they
	// differ with port 0).
	Listen string `json:"listen"`
	Addr   string `json:"addr"`
	// Upstream is the SQL Server the proxy relays to.
	Upstream string `json:"upstream"`
	// DialTimeout bounds the upstream dial ("10s").
	DialTimeout Duration `json:"dial_timeout"`
	// Connections is how many connections are open through the proxy now,
	// including those still draining on a replaced proxy of this name.
	Connections int `json:"connections"`
	// Faults are the proxy's rules as installed (seeds filled in).
	Faults []Rule `json:"faults"`
}

// RecordQuery selects finished connection records (GET /records).
//
// Each record gets a cursor when its connection finishes: 1, 2, 3, ... in
// the order connections end (not their ids, which count accepts: a long
// connection with a small id ends late). Polling with After set to the
// previous page's Next never misses a record while the ring holds it, and
// RecordPage.Missed says how many fell out of the ring in between.
type RecordQuery struct {
	// After selects records with a cursor greater than After; 0 means from
	// the oldest kept.
	After uint64
	// Since, if not zero, selects records of connections that ended after
	// it.
	Since time.Time
	// Limit caps the page at the oldest Limit matching records; 0 means no
	// cap. Page on with After = Next.
	Limit int
	// Last, if positive, selects only the newest Last matching records
	// (a live view's "recently finished").
	Last int
}

// RecordPage is one answer of GET /records.
type RecordPage struct {
	// Records are oldest first.
	Records []*record.Record `json:"records"`
	// Next is the cursor to pass as After (since=) next time: the cursor of
	// the last record returned, or of the newest record when none matched.
	Next uint64 `json:"next"`
	// Missed counts records after the requested cursor that the ring had
	// already dropped (it keeps the newest Options.RecordRing).
	Missed uint64 `json:"missed,omitempty"`
}
