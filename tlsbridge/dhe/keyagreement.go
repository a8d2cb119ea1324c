package dhe

import (
	"crypto"
	"crypto/md5"
	"crypto/rsa"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// Limits on a server's group as a client accepts it.
const (
	// DefaultMinGroupBits is the smallest prime a client accepts when
	// Config.MinGroupBits is 0 (JDK 17 refuses less than 1024 too).
	DefaultMinGroupBits = 1024
	// maxGroupBits bounds the work a server can make a client do.
	maxGroupBits = 8192
	// DefaultGrindLimit bounds the private keys a grinding client tries;
	// at a rate of 1/256 the chance of not finding one is e^-64.
	DefaultGrindLimit = 1 << 14
)

// ErrBadPublicValue means the peer's DH public value is outside 2..p-2
// (RFC 7919 §5.1) or outside the group's subgroup.
var ErrBadPublicValue = errors.New("dhe: peer's DH public value is not valid for the group")

// ErrGrindFailed means no private key within Config.GrindLimit tries gave a
// shared secret (Config.Grind) or a public value (Config.GrindPublic) with a
// leading zero byte.
var ErrGrindFailed = errors.New("dhe: no private key gave the leading zero byte asked for")

// ErrShortPublic, with ErrBadFinished, means the client's dh_Yc was shorter
// than p and the server has Config.RejectShortPublic (docs/dhe.md, the
// short-public-value variant).
var ErrShortPublic = errors.New("dhe: client's DH public value is shorter than p")

// keyAgreement is the DHE_RSA key exchange (RFC 5246 §7.4.3, §7.4.7.2,
// §8.1.2) for one side, with the encoding knobs (docs/dhe.md).
type keyAgreement struct {
	group *Group
	z     ZEncoding
	y     YEncoding
	rand  io.Reader
	grind bool // Z must start with a zero byte
	// grindPublic: our Y must start with a zero byte at the length of p.
	grindPublic bool
	limit       int
	// rejectShort: a server mishandles a dh_Yc shorter than p
	// (shortRejected: it did).
	rejectShort, shortRejected bool

	x *big.Int // our private exponent

	// What this side saw and did, for ConnectionState.
	ourYLen, peerYLen int
	zLen              int
	zLeadingZero      bool
	yLeadingZero      bool // our Y, at the length of p, starts with 0x00
	grindTries        int
}

// privateKey draws a private exponent: in [1, q-1] for a group with a
// known subgroup order, else of privateBits bits.
func (ka *keyAgreement) privateKey() (*big.Int, error) {
	g := ka.group
	if g.Q != nil {
		for {
			x, err := randInt(ka.rand, g.Q)
			if err != nil {
				return nil, err
			}
			if x.Sign() > 0 {
				return x, nil
			}
		}
	}
	b := make([]byte, (g.privateBits()+7)/8)
	if _, err := io.ReadFull(ka.rand, b); err != nil {
		return nil, err
	}
	b[0] |= 0x80 // full length, so never 0 or 1
	return new(big.Int).SetBytes(b), nil
}

// randInt returns a uniform value in [0, max) from r without crypto/rand's
// internal choices, so that a seeded reader gives the same keys in every
// Go version.
func randInt(r io.Reader, max *big.Int) (*big.Int, error) {
	n := (max.BitLen() + 7) / 8
	b := make([]byte, n)
	top := uint(max.BitLen() % 8)
	for range 1000 {
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		if top != 0 {
			b[0] &= byte(1<<top) - 1
		}
		x := new(big.Int).SetBytes(b)
		if x.Cmp(max) < 0 {
			return x, nil
		}
	}
	return nil, errors.New("dhe: random source never gave a value in range")
}

// encodeY encodes a public value by the Y knob.
func (ka *keyAgreement) encodeY(y *big.Int) []byte {
	ka.yLeadingZero = len(y.Bytes()) < ka.group.Len()
	if ka.y == YPadded {
		return y.FillBytes(make([]byte, ka.group.Len()))
	}
	return y.Bytes()
}

// encodeZ turns the shared secret into the pre-master secret by the Z
// knob: RFC 5246 §8.1.2 strips leading zero bytes; ZPad keeps them.
func (ka *keyAgreement) encodeZ(z *big.Int) []byte {
	padded := z.FillBytes(make([]byte, ka.group.Len()))
	ka.zLeadingZero = padded[0] == 0
	out := padded
	if ka.z == ZStrip {
		out = z.Bytes()
	}
	ka.zLen = len(out)
	return out
}

// checkPeerY validates a peer public value: 1 < Y < p-1 (RFC 7919 §5.1),
// and Y^q = 1 when the subgroup order q is known (RFC 5114 §4, NIST SP
// 800-56A §5.6.2.3.1).
func (ka *keyAgreement) checkPeerY(raw []byte) (*big.Int, error) {
	g := ka.group
	y := new(big.Int).SetBytes(raw)
	pm1 := new(big.Int).Sub(g.P, big.NewInt(1))
	if len(raw) > g.Len() || y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(pm1) >= 0 {
		return nil, ErrBadPublicValue
	}
	if g.Q != nil && new(big.Int).Exp(y, g.Q, g.P).Cmp(big.NewInt(1)) != 0 {
		return nil, ErrBadPublicValue
	}
	ka.peerYLen = len(raw)
	return y, nil
}

// serverParams draws the server's key and returns ServerDHParams.
func (ka *keyAgreement) serverParams() ([]byte, error) {
	x, err := ka.privateKey()
	if err != nil {
		return nil, err
	}
	ka.x = x
	ys := ka.encodeY(new(big.Int).Exp(ka.group.G, x, ka.group.P))
	ka.ourYLen = len(ys)
	return encodeDHParams(ka.group.P.Bytes(), ka.group.G.Bytes(), ys), nil
}

// processClientKeyExchange computes the pre-master secret from dh_Yc.
func (ka *keyAgreement) processClientKeyExchange(yc []byte) ([]byte, error) {
	y, err := ka.checkPeerY(yc)
	if err != nil {
		return nil, err
	}
	preMaster := ka.encodeZ(new(big.Int).Exp(y, ka.x, ka.group.P))
	if ka.rejectShort && len(yc) < ka.group.Len() {
		// Mishandle it: a pre-master secret the client cannot have, so
		// that the client's Finished fails as in the leading-zero case.
		ka.shortRejected = true
		preMaster = make([]byte, ka.group.Len())
		if _, err := io.ReadFull(ka.rand, preMaster); err != nil {
			return nil, err
		}
	}
	return preMaster, nil
}

// clientKeyExchange draws the client's key (grinding it when asked, so
// that Z, or Yc at the length of p, or both start with a zero byte) and
// returns dh_Yc and the pre-master secret. peerY has been checked.
func (ka *keyAgreement) clientKeyExchange(peerY *big.Int) (yc, preMaster []byte, err error) {
	g := ka.group
	limit := 1
	if ka.grind || ka.grindPublic {
		limit = ka.limit
		if limit <= 0 {
			limit = DefaultGrindLimit
		}
	}
	for try := 1; try <= limit; try++ {
		x, err := ka.privateKey()
		if err != nil {
			return nil, nil, err
		}
		y := new(big.Int).Exp(g.G, x, g.P)
		if ka.grindPublic && len(y.Bytes()) == g.Len() {
			continue
		}
		z := new(big.Int).Exp(peerY, x, g.P)
		if ka.grind && len(z.Bytes()) == g.Len() {
			continue
		}
		ka.x, ka.grindTries = x, try
		yc = ka.encodeY(y)
		ka.ourYLen = len(yc)
		return yc, ka.encodeZ(z), nil
	}
	return nil, nil, fmt.Errorf("%w (%d tries)", ErrGrindFailed, limit)
}

// checkServerGroup validates the server's p and g and names the group.
func checkServerGroup(pRaw, gRaw []byte, minBits int) (*Group, error) {
	p := new(big.Int).SetBytes(pRaw)
	g := new(big.Int).SetBytes(gRaw)
	if minBits <= 0 {
		minBits = DefaultMinGroupBits
	}
	if p.BitLen() < minBits || p.BitLen() > maxGroupBits || p.Bit(0) == 0 {
		return nil, fmt.Errorf("dhe: server's DH prime has %d bits (accepting %d..%d, odd)", p.BitLen(), minBits, maxGroupBits)
	}
	pm1 := new(big.Int).Sub(p, big.NewInt(1))
	if g.Cmp(big.NewInt(1)) <= 0 || g.Cmp(pm1) >= 0 {
		return nil, errors.New("dhe: server's DH generator is outside 2..p-2")
	}
	for _, k := range groups {
		if k.P.Cmp(p) == 0 && k.G.Cmp(g) == 0 {
			return k, nil
		}
	}
	return &Group{Name: "custom", P: p, G: g}, nil
}

// skeDigest returns what the ServerKeyExchange signature covers, hashed:
// client_random + server_random + ServerDHParams (RFC 5246 §7.4.3), with
// the hash of sigAlg in TLS 1.2 and MD5+SHA-1 before (RFC 2246 §7.4.3).
func skeDigest(version, sigAlg uint16, clientRandom, serverRandom, params []byte) ([]byte, crypto.Hash, error) {
	var h crypto.Hash
	switch {
	case version < VersionTLS12:
		m := md5.New()
		s := sha1.New()
		for _, b := range [][]byte{clientRandom, serverRandom, params} {
			m.Write(b)
			s.Write(b)
		}
		return append(m.Sum(nil), s.Sum(nil)...), crypto.MD5SHA1, nil
	case sigAlg == sigRSASHA1:
		h = crypto.SHA1
	case sigAlg == sigRSASHA256:
		h = crypto.SHA256
	case sigAlg == sigRSASHA384:
		h = crypto.SHA384
	case sigAlg == sigRSASHA512:
		h = crypto.SHA512
	default:
		return nil, 0, fmt.Errorf("dhe: signature algorithm 0x%04X is not RSA PKCS #1 v1.5", sigAlg)
	}
	d := h.New()
	for _, b := range [][]byte{clientRandom, serverRandom, params} {
		d.Write(b)
	}
	return d.Sum(nil), h, nil
}

// signParams signs the DH params with the server's RSA key.
func signParams(rand io.Reader, key crypto.Signer, version, sigAlg uint16, clientRandom, serverRandom, params []byte) ([]byte, error) {
	digest, h, err := skeDigest(version, sigAlg, clientRandom, serverRandom, params)
	if err != nil {
		return nil, err
	}
	return key.Sign(rand, digest, h)
}

// verifyParams checks the ServerKeyExchange signature.
func verifyParams(pub *rsa.PublicKey, version, sigAlg uint16, clientRandom, serverRandom, params, sig []byte) error {
	digest, h, err := skeDigest(version, sigAlg, clientRandom, serverRandom, params)
	if err != nil {
		return err
	}
	if err := rsa.VerifyPKCS1v15(pub, h, digest, sig); err != nil {
		return fmt.Errorf("dhe: ServerKeyExchange signature: %w", err)
	}
	return nil
}
