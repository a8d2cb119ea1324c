// Package control runs tdsproxy at run time: any number of named proxies
// sharing one fault engine, a bounded ring of finished connection records,
// Prometheus metrics, hot reload of a configuration, graceful shutdown, and
// the admin HTTP API that "tdsproxy run" serves (package control/client is
// its Go client).
//
// # Embedding tdsproxy in a Go test
//
// A Go test suite can run the proxy in-process, between the code under test
// and its SQL Server, switch faults on and off while the code runs, and
// assert on what every connection went through:
//
//	in, err := control.New(control.Options{})
//	if err != nil { ... }
//	defer in.Close()
//
//	// One proxy on a free port in front of the server under test.
//	err = in.AddProxy(proxy.Config{Name: "db", Listen: "127.0.0.1:0", Upstream: "127.0.0.1:1433"}, nil)
//	pi, _ := in.Proxy("db")
//	// Point the code under test here. encrypt=false still does TLS for the
//	// login, and a test server's certificate is self-signed: trust it.
//	dsn := "sqlserver://app:secret@" + pi.Addr + "?encrypt=false&TrustServerCertificate=true"
//
//	// Scenario 1 of error 10054: the server allows only TLS 1.0, so a
//	// client offering only TLS 1.2 and 1.3 (go-mssqldb) is reset at its
//	// ClientHello.
//	_, err = in.AddFault("db", faults.RuleSpec{
//		Name:     "old-server",
//		Scenario: faults.ScenarioProtocolMismatch,
//		Options:  map[string]string{"server_tls": "1.0"},
//	})
//	// ... the code under test connects, fails, retries ...
//	err = in.DeleteFault("db", "old-server") // new connections pass again
//
//	// What happened, one record per finished connection.
//	page := in.Records(control.RecordQuery{})
//	for _, r := range page.Records {
//		// r.Phase, r.Close (who closed, how, in which phase), r.Faults, r.TLS ...
//	}
//
// The README's embedding example is control/readme_embed_test.go, run as a
// test. Rule changes apply to connections accepted afterwards; open connections
// keep the rules they were accepted under. Connections returns snapshots of
// the open ones; CloseConnection cuts one (RST or FIN).
//
// To drive a tdsproxy running elsewhere (a container, "tdsproxy run"), use
// package control/client against its admin API instead; ServeAdmin serves
// the same API from an embedded Instance.
//
// # Admin API
//
// Handler is the API (JSON; every error is {"error": {"code", "message"}}):
//
//	GET    /proxies                      running proxies
//	POST   /proxies                      add one: {"name","listen","upstream","dial_timeout","faults"}
//	GET    /proxies/{name}               one proxy
//	DELETE /proxies/{name}[?drain=30s&style=fin|rst]
//	GET    /proxies/{name}/faults        its rules (the config file's rule schema)
//	POST   /proxies/{name}/faults        add a rule
//	PUT    /proxies/{name}/faults        replace all its rules at once
//	GET    /proxies/{name}/faults/{rule}
//	PATCH  /proxies/{name}/faults/{rule} JSON merge patch (RFC 7396)
//	DELETE /proxies/{name}/faults/{rule}
//	POST   /reset                        remove every rule of every proxy
//	GET    /connections                  open connections, record so far
//	GET    /connections/{id}
//	POST   /connections/{id}/close[?style=rst|fin]
//	GET    /records[?since=CURSOR|RFC3339&limit=N&last=N]
//	GET    /healthz, /version, /metrics
//
// A token makes every request but GET /healthz need "Authorization: Bearer
// TOKEN"; ServeAdmin refuses a non-loopback address without one.
//
// # Metrics
//
// The instance's metrics live in a private registry (Registry; served by
// GET /metrics) and, optionally, Options.Registry. The names are the
// Metric* constants. Labels are bounded: proxy and rule names come from the
// configuration, the others from fixed vocabularies.
//
// # Hot reload and shutdown
//
// Apply makes the running proxies match a configs.Config without dropping
// an open connection (see Apply for the rules); WatchFile reports changes
// of a configuration file. Shutdown stops accepting, drains for as long as
// its context allows, then closes what is left.
package control
