package tlsbridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	utls "github.com/refraction-networking/utls"
)

// HelloMode says which ClientHello bridge mode sends upstream.
type HelloMode string

// Upstream hello modes (--upstream-hello).
const (
	// HelloMirror rebuilds the client's own ClientHello (versions,
	// suites, extensions, order) minus what the bridge cannot complete.
	HelloMirror HelloMode = "mirror"
	// HelloGo sends Go's default ClientHello.
	HelloGo HelloMode = "go"
)

// ParseHelloMode accepts "", mirror and go ("" means mirror).
func ParseHelloMode(s string) (HelloMode, error) {
	switch HelloMode(strings.ToLower(s)) {
	case "", HelloMirror:
		return HelloMirror, nil
	case HelloGo:
		return HelloGo, nil
	}
	return "", fmt.Errorf("bridge: --upstream-hello %q: want mirror or go", s)
}

// ErrNothingToMirror means the client offers no cipher suite the bridge
// can complete (a DHE-only client, for one).
var ErrNothingToMirror = errors.New("bridge: mirror: no cipher suite left that the bridge can complete")

// Mirror is a client's ClientHello rebuilt for the upstream leg.
type Mirror struct {
	Spec *utls.ClientHelloSpec
	// Dropped lists what was left out because the bridge cannot complete
	// it, e.g. "cipher_suite TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
	// "extension pre_shared_key", "key_share ffdhe2048".
	Dropped []string
}

// utlsSuites is every cipher suite utls implements.
var utlsSuites = func() map[uint16]bool {
	m := make(map[uint16]bool)
	for _, s := range utls.CipherSuites() {
		m[s.ID] = true
	}
	for _, s := range utls.InsecureCipherSuites() {
		m[s.ID] = true
	}
	// TLS 1.3 suites (RFC 8446 §B.4): utls always implements these.
	m[0x1301], m[0x1302], m[0x1303] = true, true, true
	return m
}()

// utlsGroups are the key exchange groups utls can compute a key share for.
var utlsGroups = map[utls.CurveID]bool{
	utls.X25519: true, utls.CurveP256: true, utls.CurveP384: true, utls.CurveP521: true,
	utls.X25519MLKEM768: true,
}

// MirrorClientHello rebuilds hello (a ClientHello handshake message with
// its 4-byte header, as the client sent it) as a utls spec. recordVersion
// is the version field of the record that carried it, which utls takes as
// the lowest version offered when there is no supported_versions
// extension. host is the upstream's name: the mirrored server_name carries
// it instead of the name the client gave the proxy; when host is an IP
// address the client's server_name stays as it was.
//
// Left out, and listed in Dropped: cipher suites utls does not implement
// (TLS_DHE_* among them: utls, like crypto/tls, has no DHE), key shares
// and groups it cannot compute, and pre_shared_key / early_data (the
// client's session tickets were issued by the bridge, not the upstream).
// The client's key share values are replaced by the bridge's own.
func MirrorClientHello(hello []byte, recordVersion uint16, host string, hostIsIP bool) (*Mirror, error) {
	if len(hello) < 4 || hello[0] != byte(HandshakeClientHello) {
		return nil, errors.New("bridge: mirror: not a ClientHello")
	}
	rec := make([]byte, 0, 5+len(hello))
	rec = append(rec, byte(ContentHandshake))
	rec = binary.BigEndian.AppendUint16(rec, recordVersion)
	rec = binary.BigEndian.AppendUint16(rec, uint16(min(len(hello), 0xFFFF)))
	rec = append(rec, hello...)
	fp := utls.Fingerprinter{AllowBluntMimicry: true}
	spec, err := fp.FingerprintClientHello(rec)
	if err != nil {
		return nil, fmt.Errorf("bridge: mirror: utls cannot read the ClientHello: %w", err)
	}
	m := &Mirror{Spec: spec}
	var clientSNI string
	if ch, err := ParseClientHello(hello); err == nil {
		clientSNI = ch.ServerName
	}
	spec.CipherSuites = m.mirrorSuites(spec.CipherSuites)
	exts := spec.Extensions[:0:0]
	for _, e := range spec.Extensions {
		if m.mirrorExtension(e, host, hostIsIP, clientSNI) {
			exts = append(exts, e)
		}
	}
	spec.Extensions = exts
	if !slices.ContainsFunc(spec.CipherSuites, func(s uint16) bool { return utlsSuites[s] }) {
		return m, fmt.Errorf("%w (dropped %s)", ErrNothingToMirror, strings.Join(m.Dropped, ", "))
	}
	return m, nil
}

// mirrorSuites keeps the suites utls implements, GREASE and the
// signalling values; the rest go to m.Dropped.
func (m *Mirror) mirrorSuites(in []uint16) []uint16 {
	suites := in[:0:0]
	for _, s := range in {
		// Signalling values are not suites: the renegotiation SCSV
		// (RFC 5746 §3.3) and the fallback SCSV (RFC 7507) go on as sent.
		if s == utls.GREASE_PLACEHOLDER || utlsSuites[s] || s == 0x00FF || s == 0x5600 {
			suites = append(suites, s)
			continue
		}
		m.Dropped = append(m.Dropped, "cipher_suite "+CipherSuiteName(s))
	}
	return suites
}

// mirrorExtension adapts one extension of the client's hello for the
// upstream and reports whether it goes on; what it leaves out goes to
// m.Dropped.
func (m *Mirror) mirrorExtension(e utls.TLSExtension, host string, hostIsIP bool, clientSNI string) bool {
	switch x := e.(type) {
	case *utls.FakePreSharedKeyExtension, *utls.UtlsPreSharedKeyExtension:
		m.Dropped = append(m.Dropped, "extension pre_shared_key")
		return false
	case *utls.SNIExtension:
		// The upstream's own name when it has one; for an IP address
		// (which SNI cannot carry, RFC 6066 §3) the name the client
		// gave, as it sent it. The bridge verifies the upstream
		// certificate against host whatever SNI says.
		// utls does not read the name from the raw hello (it treats
		// SNI as the caller's): take it from our own parse.
		switch {
		case !hostIsIP && host != "":
			x.ServerName = host
		case clientSNI == "" || net.ParseIP(clientSNI) != nil:
			// An IP literal in server_name is against RFC 6066 §3, and
			// utls does not send it.
			m.Dropped = append(m.Dropped, "extension server_name ("+strconv.Quote(clientSNI)+")")
			return false
		default:
			x.ServerName = clientSNI
		}
	case *utls.KeyShareExtension:
		shares := x.KeyShares[:0:0]
		for _, ks := range x.KeyShares {
			switch {
			case ks.Group == utls.GREASE_PLACEHOLDER:
				shares = append(shares, utls.KeyShare{Group: ks.Group, Data: []byte{0}})
			case utlsGroups[ks.Group]:
				shares = append(shares, utls.KeyShare{Group: ks.Group}) // our own key, not the client's
			default:
				m.Dropped = append(m.Dropped, "key_share "+GroupName(uint16(ks.Group)))
			}
		}
		x.KeyShares = shares
	case *utls.SupportedCurvesExtension:
		curves := x.Curves[:0:0]
		for _, c := range x.Curves {
			if c == utls.GREASE_PLACEHOLDER || utlsGroups[c] {
				curves = append(curves, c)
				continue
			}
			m.Dropped = append(m.Dropped, "supported_group "+GroupName(uint16(c)))
		}
		x.Curves = curves
	case *utls.SessionTicketExtension:
		x.Session, x.Ticket, x.Initialized = nil, nil, false
	case *utls.GenericExtension:
		if x.Id == 42 { // early_data, RFC 8446 §4.2.10
			m.Dropped = append(m.Dropped, "extension early_data")
			return false
		}
	}
	return true
}

// FirstHandshake reads TLS records from b (what a peer sent, from the
// start) and returns the first handshake message, whole, with the version
// field of the record that started it. ok is false while b does not yet
// hold the whole message, or when b is not a handshake.
func FirstHandshake(b []byte) (msg []byte, recordVersion uint16, ok bool) {
	var body []byte
	for len(b) >= RecordHeaderLen {
		h, err := ParseRecordHeader(b[:RecordHeaderLen])
		if err != nil || h.Type != ContentHandshake || len(b) < RecordHeaderLen+h.Length {
			return nil, 0, false
		}
		if recordVersion == 0 {
			recordVersion = h.Version
		}
		body = append(body, b[RecordHeaderLen:RecordHeaderLen+h.Length]...)
		b = b[RecordHeaderLen+h.Length:]
		if len(body) >= 4 {
			n := 4 + (int(body[1])<<16 | int(body[2])<<8 | int(body[3]))
			if len(body) >= n {
				return body[:n], recordVersion, true
			}
		}
	}
	return nil, 0, false
}
