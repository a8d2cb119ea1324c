package control_test

import (
	"cmp"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	_ "github.com/microsoft/go-mssqldb" // the "sqlserver" driver

	"github.com/tdsproxy/tdsproxy/control"
	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// Run tdsproxy in-process between a database/sql client and its server,
// switch a documented 10054 scenario on and off, and read what each
// connection went through. (The server here is tdsproxy's SQL Server
// emulator; in a real suite it is the test's SQL Server.)
func Example() {
	emu, err := emulator.New(emulator.Config{})
	if err != nil {
		panic(err)
	}
	if err := emu.Start(); err != nil {
		panic(err)
	}
	defer emu.Close()

	in, err := control.New(control.Options{})
	if err != nil {
		panic(err)
	}
	defer in.Close()
	if err := in.AddProxy(proxy.Config{Name: "db", Listen: "127.0.0.1:0", Upstream: emu.Addr()}, nil); err != nil {
		panic(err)
	}
	pi, _ := in.Proxy("db")

	// The code under test connects to the proxy instead of the server.
	db, err := sql.Open("sqlserver", "sqlserver://app:secret@"+pi.Addr+"?encrypt=false&TrustServerCertificate=true")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	db.SetMaxIdleConns(0) // a new connection per query: each meets the rules of its time
	selectOne := func() string {
		var one int
		if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
			if strings.Contains(err.Error(), "connection reset by peer") {
				return "connection reset by peer"
			}
			return err.Error()
		}
		return fmt.Sprint("SELECT 1 = ", one)
	}

	fmt.Println("no fault:", selectOne())
	// Scenario 1: the server allows only TLS 1.0; the client offers 1.2+.
	_, err = in.AddFault("db", faults.RuleSpec{
		Name:     "old-server",
		Scenario: faults.ScenarioProtocolMismatch,
		Options:  map[string]string{"server_tls": "1.0"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("old-server:", selectOne())
	if err := in.DeleteFault("db", "old-server"); err != nil {
		panic(err)
	}
	fmt.Println("fault removed:", selectOne())

	// One record per finished connection.
	var recs []*proxy.Record
	testkit.Poll(func() bool {
		recs = in.Records(control.RecordQuery{}).Records
		return len(recs) >= 3
	}, 10*time.Second)
	// The ring is in the order connections ended; ids count accepts.
	slices.SortFunc(recs, func(a, b *proxy.Record) int { return cmp.Compare(a.ID, b.ID) })
	for _, r := range recs {
		line := fmt.Sprintf("connection %d: reached %s, closed by %s (%s)", r.ID, r.Phase, r.Close.By, r.Close.Kind)
		for _, f := range r.Faults {
			line += fmt.Sprintf("; rule %s: %s at %s", f.Rule, f.Action, f.Phase)
		}
		fmt.Println(line)
	}
	// Output:
	// no fault: SELECT 1 = 1
	// old-server: connection reset by peer
	// fault removed: SELECT 1 = 1
	// connection 1: reached established, closed by client (fin)
	// connection 2: reached tls.client_hello, closed by proxy (rst); rule old-server: close:rst at tls.client_hello
	// connection 3: reached established, closed by client (fin)
}
