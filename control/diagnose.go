package control

import (
	"time"

	"github.com/tdsproxy/tdsproxy/diagnose"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// finish is every proxy's Options.Finish: before a finished connection's
// record is logged, kept for GET /records and counted, it gets its login
// steps and its diagnosis (package diagnose), so the log line, the admin
// API, tdsproxy top and tdsproxy_diagnoses_total all say the same.
func (in *Instance) finish(rec *proxy.Record) {
	diagnose.Apply(rec, diagnose.Options{SlowLogin: time.Duration(in.slowLogin.Load())})
}

// setSlowLogin takes diagnosis.slow_login from an applied configuration:
// 0s there turns the finding off (diagnose.Options: negative).
func (in *Instance) setSlowLogin(d time.Duration) {
	if d == 0 {
		d = -1
	}
	in.slowLogin.Store(int64(d))
}
