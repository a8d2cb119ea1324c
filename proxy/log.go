package proxy

import (
	"go.uber.org/zap"

	"github.com/tdsproxy/tdsproxy/record"
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
	if len(r.Diagnosis) > 0 {
		names := make([]string, len(r.Diagnosis))
		for i, f := range r.Diagnosis {
			names[i] = f.Finding
		}
		fields = append(fields, zap.Strings("diagnosis", names))
	}
	fields = append(fields, zap.Any("record", r))
	log.Info("connection closed", fields...)
}

// The actions a decider records that are not injections (record.Action*).
const (
	ActionPass  = record.ActionPass
	ActionSkip  = record.ActionSkip
	ActionArmed = record.ActionArmed
)

// actedRule names the first rule that acted on the connection, or "".
func actedRule(evs []FaultEvent) string {
	for _, e := range evs {
		if e.Acted() {
			return e.Rule
		}
	}
	return ""
}
