package proxy

import (
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// alertLevelFatal is the only level a handshake failure uses (RFC 8446 §6).
const alertLevelFatal = 2

// alertBytes builds the fatal alert the proxy sends for StyleAlert. In TDS
// 7.x the handshake travels inside PRELOGIN packets, so the alert must too,
// or the client would read it as a malformed TDS header.
func alertBytes(desc uint8, wrapped bool) []byte {
	rec := tlsbridge.AlertRecord(0x0303, alertLevelFatal, desc)
	if !wrapped {
		return rec
	}
	w := tds.Writer{}
	return w.AppendMessage(nil, tds.PacketPrelogin, 0, rec)
}
