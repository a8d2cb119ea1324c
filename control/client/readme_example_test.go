package client_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/control/api"

	"github.com/tdsproxy/tdsproxy/internal/testkit"

	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/control/client"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// readmeClient is the README's "Against a running tdsproxy" example: the
// body between the readme markers is the README's block, word for word
// (cmd/tdsproxy's TestReadmeClientExample compares them).
func readmeClient(ctx context.Context, adminURL string, lastCursor uint64) (uint64, error) {
	// readme:begin
	c := client.New(adminURL, os.Getenv("TDSPROXY_ADMIN_TOKEN")) // adminURL: "http://127.0.0.1:8475" for a local tdsproxy run
	if _, err := c.AddFault(ctx, "default", api.Rule{
		Name: "slow-accept", Scenario: faults.ScenarioDelayedAccept,
		Options: map[string]string{"accept_delay": "2s"},
	}); err != nil {
		return lastCursor, err
	}
	// ... the application runs: each new connection waits 2 s to be accepted ...
	if _, err := c.PatchFault(ctx, "default", "slow-accept", map[string]any{"match": map[string]any{"probability": 0.5}}); err != nil {
		return lastCursor, err
	}
	if err := c.DeleteFault(ctx, "default", "slow-accept"); err != nil {
		return lastCursor, err
	}
	page, err := c.Records(ctx, control.RecordQuery{After: lastCursor})
	if err != nil {
		return lastCursor, err // every API error is a *client.APIError: errors.Is(err, client.ErrNotFound), ...
	}
	lastCursor = page.Next
	// readme:end
	return lastCursor, nil
}

// The README's client example runs against a live admin API.
func TestReadmeClient(t *testing.T) {
	in, err := control.New(control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := in.AddProxy(proxy.Config{Name: "default", Listen: "127.0.0.1:0", Upstream: testkit.StartEcho(t)}, nil); err != nil {
		t.Fatal(err)
	}
	addr, err := in.ServeAdmin("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TDSPROXY_ADMIN_TOKEN", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	base := "http://" + addr.String()
	if _, err := readmeClient(ctx, base, 0); err != nil {
		t.Fatalf("the README's client example: %v", err)
	}
	// What its last comment says of errors.
	err = client.New(base, "").DeleteFault(ctx, "default", "slow-accept")
	var apiErr *client.APIError
	if !errors.Is(err, client.ErrNotFound) || !errors.As(err, &apiErr) || !strings.Contains(err.Error(), "slow-accept") {
		t.Errorf("deleting the deleted rule: %v, want a *client.APIError that is ErrNotFound", err)
	}
}
