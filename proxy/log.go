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
		zap.String("protocol", r.Protocol),
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
	if len(r.Faults) > 0 {
		fields = append(fields, zap.String("fault", r.Faults[0].Rule))
	}
	fields = append(fields, zap.Any("record", r))
	log.Info("connection closed", fields...)
}
