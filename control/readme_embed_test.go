// The README's "Embedding tdsproxy in a Go test" example, verbatim from the
// import block on: cmd/tdsproxy's TestReadmeEmbeddingExample fails when the
// two differ. sqlServer (readme_helpers_test.go) stands for the suite's own
// SQL Server; here it is tdsproxy's emulator.

package control_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/microsoft/go-mssqldb" // the "sqlserver" driver

	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
)

func TestOrdersRetryOnReset(t *testing.T) {
	sqlServerAddr := sqlServer(t) // host:port of the SQL Server the suite uses

	in, err := control.New(control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	// A proxy on a free port in front of it.
	if err := in.AddProxy(proxy.Config{Name: "db", Listen: "127.0.0.1:0", Upstream: sqlServerAddr}, nil); err != nil {
		t.Fatal(err)
	}
	pi, _ := in.Proxy("db")
	// The code under test connects to the proxy. encrypt=false still does TLS
	// for the login, and a test server's certificate is self-signed: trust it.
	db, err := sql.Open("sqlserver", "sqlserver://app:secret@"+pi.Addr+"?encrypt=false&TrustServerCertificate=true")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxIdleConns(0) // a new connection per query: each meets the rules of its time

	// Scenario 1: the server allows only TLS 1.0, and go-mssqldb offers only
	// TLS 1.2 and 1.3, so every new connection is reset at its ClientHello.
	if _, err := in.AddFault("db", faults.RuleSpec{
		Name:     "old-server",
		Scenario: faults.ScenarioProtocolMismatch,
		Options:  map[string]string{"server_tls": "1.0"},
	}); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(2*time.Second, func() { _ = in.DeleteFault("db", "old-server") })

	// The code under test must retry until the fault is gone (here: a
	// query, retried every 100 ms for at most 10 s).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var one int
	for err = db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil; err = db.QueryRowContext(ctx, "SELECT 1").Scan(&one) {
		select {
		case <-ctx.Done():
			t.Fatalf("no retry got through: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}

	// What every connection went through.
	hit := 0
	for _, r := range in.Records(control.RecordQuery{}).Records {
		t.Logf("conn %d: %s, closed by %s (%s) in %s, faults %v", r.ID, r.Phase, r.Close.By, r.Close.Kind, r.Close.Phase, r.Faults)
		if r.Close.By == proxy.SideProxy && r.Close.Phase == proxy.PhaseTLSClientHello {
			hit++
		}
	}
	if hit == 0 {
		t.Error("no connection was reset by old-server")
	}
}
