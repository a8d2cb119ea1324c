package control

import (
	"github.com/tdsproxy/tdsproxy/diagnose"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// finish is every proxy's Options.Finish: before a finished connection's
// record is logged, kept for GET /records and counted, it gets its login
// steps and its diagnosis (package diagnose), so the log line, the admin
// API, tdsproxy top and tdsproxy_diagnoses_total all say the same.
func (in *Instance) finish(rec *proxy.Record) {
	diagnose.Apply(rec, diagnose.Options{SlowLogin: in.slowLogin})
}
