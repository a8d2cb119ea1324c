// Package secrets holds tdsproxy's secret-handling tests (issue 7): a known
// LOGIN7 password driven through every encryption mode must never appear in
// a log line, a connection record, a metric, an admin API answer or an
// error text; files holding key material are written 0600; and the proxy
// only ever dials its configured upstream. The package has no code of its
// own: everything is in its tests.
package secrets
