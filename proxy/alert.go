package proxy

import (
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// alertBytes builds the fatal alert the proxy sends for StyleAlert. In TDS
// 7.x the handshake travels inside PRELOGIN packets (MS-TDS §2.2.6.5), so
// the alert must too, or the client would read it as a malformed TDS header.
func alertBytes(desc uint8, wrapped bool) []byte {
	rec := tlsbridge.FatalAlertRecord(desc)
	if !wrapped {
		return rec
	}
	w := tds.Writer{}
	return w.AppendMessage(nil, tds.PacketPrelogin, 0, rec)
}
