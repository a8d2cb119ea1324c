package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tdsproxy/tdsproxy/control/api"
)

// Retries lists the retry chains, newest first (GET /retries): those of
// proxyName ("" for every proxy), only the chains with a retry when
// retriedOnly.
func (c *Client) Retries(ctx context.Context, proxyName string, retriedOnly bool) ([]api.RetryChain, error) {
	v := url.Values{}
	if proxyName != "" {
		v.Set("proxy", proxyName)
	}
	if retriedOnly {
		v.Set("retried", "true")
	}
	path := "/retries"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out []api.RetryChain
	return out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// Failover makes the proxy fail over (POST /proxies/{name}/failover):
// every open connection is reset, then logins get error number (0:
// 40613) for duration.
func (c *Client) Failover(ctx context.Context, proxyName string, duration time.Duration, number int32) (*api.FailoverInfo, error) {
	v := url.Values{"duration": {duration.String()}}
	if number != 0 {
		v.Set("number", strconv.Itoa(int(number)))
	}
	var out api.FailoverInfo
	if err := c.do(ctx, http.MethodPost, "/proxies/"+esc(proxyName)+"/failover?"+v.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
