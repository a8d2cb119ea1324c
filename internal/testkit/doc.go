// Package testkit is the one place tests start what they need on loopback
// and wait for what they expect: an emulator, an echo server, go-mssqldb
// DSNs and a SELECT 1, a locked buffer for a child's output, and WaitFor
// instead of a hand-written poll-and-sleep loop.
//
// It imports neither proxy nor internal/interop, so the internal tests of
// both (package proxy, package interop) can use it. A proxy started in
// process is in the sub-package proxykit. The other clients' connection
// settings are internal/interop's config types (TediousConfig, TSQLConfig,
// JDBCConfig, ODBCConfig, MSSQLConfig): interop.Target builds them.
//
// Everything started here stops when the test ends (t.Cleanup).
package testkit
