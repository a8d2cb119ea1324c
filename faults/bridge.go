package faults

import (
	"slices"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

var _ proxy.BridgePolicer = (*connDecider)(nil)

// BridgePolicy implements proxy.BridgePolicer: in bridge mode
// (docs/bridge.md) the protocol-mismatch, cipher-mismatch and
// weak-cert-hash rules that hold for this connection configure the
// client-facing TLS server itself (allowed versions, suites, a certificate
// signed with the rule's hash), and the real handshake decides instead of
// a close at the ClientHello. The first such rule sets the close style
// (rst, the default, or alert; fin counts as rst: Schannel sends no
// alert). A dhe-enabled or dhe-leading-zero rule makes the client leg the
// DHE engine as the failing Windows server (bridge_dhe.go). Rules whose
// match needs the ClientHello cannot be known before it and are left out.
// nil when no such rule applies.
func (c *connDecider) BridgePolicy() *tlsbridge.ServerPolicy {
	var p *tlsbridge.ServerPolicy
	for _, cr := range c.rules {
		if cr.out || cr.sc == nil || cr.r.scen == nil {
			continue
		}
		if ok, known := cr.r.dynamicMatch(&proxy.Record{}); !known || !ok {
			continue
		}
		set := func() *tlsbridge.ServerPolicy {
			if p == nil {
				p = &tlsbridge.ServerPolicy{Scenario: cr.r.scen.Name, Alert: cr.r.style == proxy.StyleAlert}
			}
			return p
		}
		switch r := cr.sc.(type) {
		case *protocolRule:
			if len(r.ServerTLS) > 0 {
				set().Versions = slices.Clone([]uint16(r.ServerTLS))
			}
		case *cipherRule:
			set().CipherSuites = slices.Clone([]uint16(r.ServerCiphers))
		case *dheConn:
			if r.p.Rate.p > 0 {
				set().DHE = dheLeg(r.p, cr.r.style)
			}
		case *weakHashRule:
			h := string(r.CertHash)
			if h == "" {
				h = "md5" // the option's default
			}
			set().CertHash = h
		}
	}
	return p
}
