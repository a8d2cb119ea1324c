package faults

import (
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// dheLeg is the real form of the DHE scenarios in bridge mode: the client
// leg is the DHE engine (tlsbridge/dhe, docs/dhe.md) configured as the
// failing Windows server. It prefers DHE (a client that offers a
// TLS_DHE_RSA suite meets it; any other, crypto/tls) and pads the shared
// secret Z to the length of p as unpatched Schannel does, so a client that
// strips Z (OpenSSL, GnuTLS, JSSE) fails at its Finished whenever Z starts
// with a zero byte: at the natural rate in ffdhe2048 (1 in 256), or nearly
// always with rate=always, which picks the lz2049 group (JSSE refuses its
// 2049 bits). Another rate is the natural one: the engine cannot fail a
// chosen share of handshakes, the shared secret decides. The rule's close
// style is how the server closes: rst (10054), fin (Microsoft's trace of
// the bug) or alert (bad_record_mac).
func dheLeg(r *dheRule, style proxy.CloseStyle) *tlsbridge.DHELeg {
	name := dhe.DefaultGroup
	if r.Rate.p >= 1 {
		name = "lz2049"
	}
	group, err := dhe.GroupByName(name)
	if err != nil {
		return nil
	}
	fail, failText := dhe.FailRST, "rst"
	switch style {
	case proxy.StyleFIN:
		fail, failText = dhe.FailFIN, "fin"
	case proxy.StyleAlert:
		fail, failText = dhe.FailAlert, "alert"
	}
	return proxy.DHEServerLeg(0, group, dhe.ZPad, fail, "DHE engine, "+name+", Z padded, "+failText, failText)
}
