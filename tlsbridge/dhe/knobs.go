package dhe

import (
	"fmt"
	"strings"
)

// ZEncoding says how the DH shared secret Z becomes the pre-master secret.
type ZEncoding uint8

const (
	// ZStrip removes Z's leading zero bytes, as RFC 5246 §8.1.2 says and
	// OpenSSL, GnuTLS, JSSE and patched Schannel do. The zero value.
	ZStrip ZEncoding = iota
	// ZPad keeps Z at the length of p, leading zeros included, as
	// unpatched Schannel does in TLS 1.2 (and as TLS 1.3 does, RFC 8446
	// §7.4.1). Against a ZStrip peer the master secrets differ whenever Z
	// starts with a zero byte.
	ZPad
)

// YEncoding says how this side encodes its DH public value (dh_Ys or
// dh_Yc) on the wire.
type YEncoding uint8

const (
	// YMinimal sends the public value without leading zero bytes (OpenSSL
	// before 3.0 for dh_Yc). The zero value.
	YMinimal YEncoding = iota
	// YPadded sends it padded to the length of p (OpenSSL 3.0, Schannel).
	YPadded
)

// FailMode is what a server does when the client's Finished cannot be
// decrypted or does not verify: the moment the leading-zero mismatch shows.
type FailMode uint8

const (
	// FailAlert sends a fatal bad_record_mac alert and closes, as OpenSSL
	// does. The zero value.
	FailAlert FailMode = iota
	// FailFIN closes the connection without an alert (a TCP FIN), as in
	// Microsoft's trace of the bug (KB4557473, Schannel event 36888).
	FailFIN
	// FailRST aborts the connection (SO_LINGER 0: a TCP RST), which a
	// Windows client reports as error 10054.
	FailRST
)

var (
	zNames    = []string{ZStrip: "strip", ZPad: "pad"}
	yNames    = []string{YMinimal: "minimal", YPadded: "padded"}
	failNames = []string{FailAlert: "alert", FailFIN: "fin", FailRST: "rst"}
)

func knobName(names []string, v uint8) string {
	if int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("unknown(%d)", v)
}

func parseKnob(kind string, names []string, s string) (uint8, error) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return uint8(i), nil
		}
	}
	return 0, fmt.Errorf("dhe: %s %q: want %s", kind, s, strings.Join(names, "|"))
}

func (z ZEncoding) String() string { return knobName(zNames, uint8(z)) }
func (y YEncoding) String() string { return knobName(yNames, uint8(y)) }
func (f FailMode) String() string  { return knobName(failNames, uint8(f)) }

// ParseZEncoding parses "strip" or "pad".
func ParseZEncoding(s string) (ZEncoding, error) {
	v, err := parseKnob("Z encoding", zNames, s)
	return ZEncoding(v), err
}

// ParseYEncoding parses "minimal" or "padded".
func ParseYEncoding(s string) (YEncoding, error) {
	v, err := parseKnob("Y encoding", yNames, s)
	return YEncoding(v), err
}

// ParseFailMode parses "fin", "rst" or "alert".
func ParseFailMode(s string) (FailMode, error) {
	v, err := parseKnob("fail mode", failNames, s)
	return FailMode(v), err
}
