package client_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/tdsproxy/tdsproxy/control/api"

	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/control/client"
	"github.com/tdsproxy/tdsproxy/faults"
)

// Drive a running tdsproxy through its admin API: add a proxy, flip fault
// rules while the application runs, and clean up. (The tdsproxy here is
// in-process so the example runs anywhere; against "tdsproxy run" use its
// admin address, http://127.0.0.1:8475 by default.)
func Example() {
	in, err := control.New(control.Options{})
	if err != nil {
		panic(err)
	}
	defer in.Close()
	addr, err := in.ServeAdmin("127.0.0.1:0", "")
	if err != nil {
		panic(err)
	}

	ctx := context.Background()
	c := client.New("http://"+addr.String(), "") // token: "" when the API has none
	p, err := c.AddProxy(ctx, control.ProxyRequest{Name: "orders-db", Listen: "127.0.0.1:0", Upstream: "sql01.example.com:1433"})
	if err != nil {
		panic(err)
	}
	fmt.Println("proxy:", p.Name, "->", p.Upstream)

	// Half the connections meet a server that is slow to accept (scenario
	// 6); the seed makes the draw replayable.
	half := 0.5
	rule, err := c.AddFault(ctx, "orders-db", api.Rule{
		Name:     "slow-accept",
		Scenario: faults.ScenarioDelayedAccept,
		Options:  map[string]string{"accept_delay": "2s"},
		Match:    api.Match{Probability: &half},
		Seed:     42,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("added:", rule.Name, rule.Options["accept_delay"], *rule.Match.Probability)

	// Every connection now (a JSON merge patch: null removes a key).
	rule, err = c.PatchFault(ctx, "orders-db", "slow-accept", map[string]any{"match": map[string]any{"probability": nil}})
	if err != nil {
		panic(err)
	}
	fmt.Println("patched: probability set:", rule.Match.Probability != nil)

	// Errors are *client.APIError, matched with errors.Is.
	_, err = c.AddFault(ctx, "orders-db", api.Rule{Name: "slow-accept", Action: "latency", Options: map[string]string{"latency": "1s"}})
	fmt.Println("same name again:", errors.Is(err, client.ErrConflict))
	_, err = c.AddFault(ctx, "orders-db", api.Rule{Name: "typo", Scenario: "protocol-mismatch", Options: map[string]string{"server_tsl": "1.2"}})
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		fmt.Println("bad rule:", apiErr.Status, apiErr.Message)
	}

	if err := c.Reset(ctx); err != nil {
		panic(err)
	}
	rules, _ := c.Faults(ctx, "orders-db")
	fmt.Println("rules after reset:", len(rules))
	fmt.Println("delete:", c.DeleteProxy(ctx, "orders-db"))
	// Output:
	// proxy: orders-db -> sql01.example.com:1433
	// added: slow-accept 2s 0.5
	// patched: probability set: false
	// same name again: true
	// bad rule: 400 options.server_tsl: unknown option (valid: server_tls, client_tls)
	// rules after reset: 0
	// delete: <nil>
}
