package tds

import (
	"fmt"
	"slices"
)

// ScopeOf says what TLS covers, given the client's ENCRYPTION request and
// the server's reply as both were seen on the wire (MS-TDS §2.2.6.5, the
// ENCRYPTION option, and §3.3.5.1 for who ends the connection). It is the
// observer's face of NegotiateEncryption: for every client request c and
// server setting s, ScopeOf(c, reply) equals the scope NegotiateEncryption
// returns with that reply, except a strict (TDS 8.0) client, whose TLS comes
// before PRELOGIN and is not decided by this table.
func ScopeOf(client, reply Encryption) TLSScope {
	c := client.Base()
	switch reply.Base() {
	case EncryptOff:
		return ScopeLoginOnly
	case EncryptOn:
		return ScopeSession
	case EncryptReq:
		if c == EncryptNotSup {
			return ScopeTerminated
		}
		return ScopeSession
	case EncryptNotSup:
		if c == EncryptOn || c == EncryptReq {
			return ScopeTerminated
		}
		return ScopeNone
	}
	return ScopeTerminated
}

// maxOddities bounds Oddities' answer: a hostile PRELOGIN can repeat an
// option thousands of times, and a record must not grow with it.
const maxOddities = 8

// Oddities lists what this PRELOGIN does that no SQL Server client or server
// does: VERSION not first (SQL Server closes such a connection), an option
// given more than once (only the first is used), option data that overlap.
// ParsePrelogin accepts all of them so that the original bytes are kept; a
// record still says so. A Prelogin built in code (not parsed) cannot have
// overlapping data, and only the first two checks apply to it.
func (p *Prelogin) Oddities() []string {
	var out []string
	if len(p.Options) > 0 && p.Options[0].Token != PreloginVersion {
		out = append(out, "VERSION is not the first option")
	}
	var seen [256]bool
	for _, o := range p.Options {
		if seen[o.Token] && len(out) < maxOddities {
			out = append(out, fmt.Sprintf("option %s appears more than once (the first is used)", o.Token))
		}
		seen[o.Token] = true
	}
	if len(p.offsets) != len(p.Options) {
		return out
	}
	type span struct {
		tok        PreloginToken
		start, end int
	}
	spans := make([]span, 0, len(p.Options))
	for i, o := range p.Options {
		if len(o.Data) > 0 {
			start := int(p.offsets[i])
			spans = append(spans, span{o.Token, start, start + len(o.Data)})
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			out = append(out, fmt.Sprintf("data of options %s and %s overlap", spans[i-1].tok, spans[i].tok))
			break
		}
	}
	return out
}
