package proxy

import (
	"go.uber.org/zap"
)

// logRecord writes the one line per finished connection: the fields people
// filter on first, then the whole record.
func logRecord(log *zap.Logger, r *Record) {
	if !log.Core().Enabled(zap.InfoLevel) {
		return
	}
	fields := []zap.Field{
		zap.Uint64("conn", r.ID),
		zap.String("proxy", r.Proxy),
		zap.String("client", r.Client),
		zap.String("protocol", string(r.Protocol)),
		zap.String("phase", string(r.Phase)),
		zap.Duration("duration", r.End.Sub(r.Start)),
		zap.Int64("bytes_c2s", r.BytesClientToServer),
		zap.Int64("bytes_s2c", r.BytesServerToClient),
	}
	if r.Close != nil {
		fields = append(fields, zap.String("close_by", string(r.Close.By)), zap.String("close_kind", string(r.Close.Kind)),
			zap.String("close_phase", string(r.Close.Phase)))
	}
	if r.TLS != nil {
		if r.TLS.Version != "" {
			fields = append(fields, zap.String("tls_version", r.TLS.Version), zap.String("cipher_suite", r.TLS.CipherSuite))
		}
	}
	if rule := actedRule(r.Faults); rule != "" {
		fields = append(fields, zap.String("fault", rule))
	}
	fields = append(fields, zap.Any("record", r))
	log.Info("connection closed", fields...)
}

// Actions a decider records that are not injections: the rule looked at the
// connection and let it pass ("pass"), could not evaluate it ("skip"), or
// is waiting for a later phase ("armed"). They stay in the record's faults
// list, but the log's "fault" field names only a rule that acted, so that
// counting "fault" lines counts injections (issue 18 item 3).
const (
	ActionPass  = "pass"
	ActionSkip  = "skip"
	ActionArmed = "armed"
)

// Acted reports whether the event is an injection (a close, a delay, a
// generic fault attached) rather than a decision to let the connection be.
func (e FaultEvent) Acted() bool {
	switch e.Action {
	case "", ActionPass, ActionSkip, ActionArmed:
		return false
	}
	return true
}

// actedRule names the first rule that acted on the connection, or "".
func actedRule(evs []FaultEvent) string {
	for _, e := range evs {
		if e.Acted() {
			return e.Rule
		}
	}
	return ""
}
