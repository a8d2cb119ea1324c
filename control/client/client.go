// Package client is a Go client for tdsproxy's admin API (package control,
// served by "tdsproxy run" on 127.0.0.1:8475 by default): list and add
// proxies, add, patch and remove fault rules while an application runs,
// close connections, and read the records of finished connections.
//
//	c := client.New("http://127.0.0.1:8475", os.Getenv("TDSPROXY_ADMIN_TOKEN"))
//	_, err := c.AddFault(ctx, "default", api.Rule{
//		Name: "old-tls-server", Scenario: "protocol-mismatch",
//		Options: map[string]string{"server_tls": "1.0"},
//	})
//	// ... run the application, watch it fail and retry ...
//	err = c.DeleteFault(ctx, "default", "old-tls-server")
//
// Every error the API answers is an *APIError; errors.Is matches it
// against ErrNotFound, ErrConflict, ErrBadRequest and ErrUnauthorized.
//
// The package links only the wire types (control/api, record): not the
// relay, not the fault engine (TestClientLinksNoRelay).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tdsproxy/tdsproxy/control/api"
	"github.com/tdsproxy/tdsproxy/record"
)

// Client talks to one tdsproxy admin API. Its methods are safe for
// concurrent use.
type Client struct {
	base  string
	token string
	// HTTP is the HTTP client used; New sets one with a 30 s timeout.
	HTTP *http.Client
}

// New returns a client for the admin API at baseURL (e.g.
// "http://127.0.0.1:8475"); token is the bearer token, "" for none.
func New(baseURL, token string) *Client {
	return &Client{
		base:  strings.TrimRight(baseURL, "/"),
		token: token,
		HTTP:  &http.Client{Timeout: 30 * time.Second},
	}
}

// Sentinel errors an *APIError matches with errors.Is, by HTTP status.
var (
	ErrBadRequest   = errors.New("bad request")  // 400
	ErrUnauthorized = errors.New("unauthorized") // 401
	ErrNotFound     = errors.New("not found")    // 404
	ErrConflict     = errors.New("conflict")     // 409
	ErrUnavailable  = errors.New("unavailable")  // 503
)

// APIError is an error answer of the admin API.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Code and Message are the answer's error.code and error.message.
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("tdsproxy admin API: %d %s: %s", e.Status, e.Code, e.Message)
}

// Is matches the sentinel error of e's status.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.Status == http.StatusBadRequest
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable
	}
	return false
}

// do sends a request with an optional JSON body and decodes a JSON answer
// into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("tdsproxy admin API: encoding the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("tdsproxy admin API: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("tdsproxy admin API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("tdsproxy admin API: %s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var eb api.ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error.Code == "" {
			return &APIError{Status: resp.StatusCode, Code: "http", Message: strings.TrimSpace(string(b))}
		}
		return &APIError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	if out == nil {
		return nil
	}
	if s, ok := out.(*string); ok {
		*s = string(b)
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("tdsproxy admin API: %s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

func esc(s string) string { return url.PathEscape(s) }

// Proxies lists the running proxies (GET /proxies).
func (c *Client) Proxies(ctx context.Context) ([]api.ProxyInfo, error) {
	var out []api.ProxyInfo
	return out, c.do(ctx, http.MethodGet, "/proxies", nil, &out)
}

// Proxy describes one proxy (GET /proxies/{name}).
func (c *Client) Proxy(ctx context.Context, name string) (*api.ProxyInfo, error) {
	var out api.ProxyInfo
	if err := c.do(ctx, http.MethodGet, "/proxies/"+esc(name), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AddProxy starts a proxy (POST /proxies) and returns it as started (Addr is
// the bound address).
func (c *Client) AddProxy(ctx context.Context, p api.ProxyRequest) (*api.ProxyInfo, error) {
	var out api.ProxyInfo
	if err := c.do(ctx, http.MethodPost, "/proxies", p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteProxy removes a proxy (DELETE /proxies/{name}); its open
// connections are closed with a FIN.
func (c *Client) DeleteProxy(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/proxies/"+esc(name), nil, nil)
}

// DeleteProxyDrain removes a proxy, letting its open connections finish for
// up to drain before closing the rest in style ("fin" or "rst").
func (c *Client) DeleteProxyDrain(ctx context.Context, name string, drain time.Duration, style string) error {
	q := url.Values{"drain": {drain.String()}}
	if style != "" {
		q.Set("style", style)
	}
	return c.do(ctx, http.MethodDelete, "/proxies/"+esc(name)+"?"+q.Encode(), nil, nil)
}

// Faults lists a proxy's fault rules (GET /proxies/{name}/faults).
func (c *Client) Faults(ctx context.Context, proxyName string) ([]api.Rule, error) {
	var out []api.Rule
	return out, c.do(ctx, http.MethodGet, "/proxies/"+esc(proxyName)+"/faults", nil, &out)
}

// Fault returns one rule (GET /proxies/{name}/faults/{rule}).
func (c *Client) Fault(ctx context.Context, proxyName, rule string) (*api.Rule, error) {
	var out api.Rule
	if err := c.do(ctx, http.MethodGet, "/proxies/"+esc(proxyName)+"/faults/"+esc(rule), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AddFault adds a rule (POST /proxies/{name}/faults) and returns it as
// installed (with its seed).
func (c *Client) AddFault(ctx context.Context, proxyName string, rule api.Rule) (*api.Rule, error) {
	var out api.Rule
	if err := c.do(ctx, http.MethodPost, "/proxies/"+esc(proxyName)+"/faults", rule, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetFaults replaces all of a proxy's rules at once (PUT
// /proxies/{name}/faults).
func (c *Client) SetFaults(ctx context.Context, proxyName string, rules []api.Rule) ([]api.Rule, error) {
	if rules == nil {
		rules = []api.Rule{}
	}
	var out []api.Rule
	return out, c.do(ctx, http.MethodPut, "/proxies/"+esc(proxyName)+"/faults", rules, &out)
}

// PatchFault changes some keys of a rule (PATCH
// /proxies/{name}/faults/{rule}): patch is a JSON merge patch (RFC 7396),
// e.g. map[string]any{"close": "fin", "match": map[string]any{"probability": 0.5}};
// a nil value removes the key.
func (c *Client) PatchFault(ctx context.Context, proxyName, rule string, patch map[string]any) (*api.Rule, error) {
	var out api.Rule
	if err := c.do(ctx, http.MethodPatch, "/proxies/"+esc(proxyName)+"/faults/"+esc(rule), patch, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteFault removes a rule (DELETE /proxies/{name}/faults/{rule}).
func (c *Client) DeleteFault(ctx context.Context, proxyName, rule string) error {
	return c.do(ctx, http.MethodDelete, "/proxies/"+esc(proxyName)+"/faults/"+esc(rule), nil, nil)
}

// Reset removes every fault rule of every proxy (POST /reset).
func (c *Client) Reset(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/reset", nil, nil)
}

// Connections lists the open connections with their records so far (GET
// /connections).
func (c *Client) Connections(ctx context.Context) ([]record.Record, error) {
	var out []record.Record
	return out, c.do(ctx, http.MethodGet, "/connections", nil, &out)
}

// Connection returns one open connection's record so far (GET
// /connections/{id}).
func (c *Client) Connection(ctx context.Context, id uint64) (*record.Record, error) {
	var out record.Record
	if err := c.do(ctx, http.MethodGet, "/connections/"+strconv.FormatUint(id, 10), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CloseConnection closes an open connection (POST
// /connections/{id}/close): style "rst" (the client sees a reset, 10054)
// or "fin" ("" means fin).
func (c *Client) CloseConnection(ctx context.Context, id uint64, style string) error {
	path := "/connections/" + strconv.FormatUint(id, 10) + "/close"
	if style != "" {
		path += "?style=" + url.QueryEscape(style)
	}
	return c.do(ctx, http.MethodPost, path, nil, nil)
}

// RecordPage is one answer of Records.
type RecordPage struct {
	Records []record.Record `json:"records"`
	Next    uint64          `json:"next"`
	Missed  uint64          `json:"missed,omitempty"`
}

// Records returns records of finished connections (GET /records), oldest
// first. To poll, pass the previous page's Next as q.After.
func (c *Client) Records(ctx context.Context, q api.RecordQuery) (*RecordPage, error) {
	v := url.Values{}
	switch {
	case q.After > 0:
		v.Set("since", strconv.FormatUint(q.After, 10))
	case !q.Since.IsZero():
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Last > 0 {
		v.Set("last", strconv.Itoa(q.Last))
	}
	path := "/records"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out RecordPage
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Health checks GET /healthz; nil means the instance is up and not
// shutting down.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil)
}

// Version returns GET /version.
func (c *Client) Version(ctx context.Context) (*api.VersionInfo, error) {
	var out api.VersionInfo
	if err := c.do(ctx, http.MethodGet, "/version", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Metrics returns GET /metrics in the Prometheus text format.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	var out string
	return out, c.do(ctx, http.MethodGet, "/metrics", nil, &out)
}
