package dhe

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"hash"
	"io"
)

// Record content types (RFC 5246 §6.2.1).
const (
	recordChangeCipherSpec uint8 = 20
	recordAlert            uint8 = 21
	recordHandshake        uint8 = 22
	recordApplicationData  uint8 = 23
)

const (
	recordHeaderLen = 5
	maxPlaintext    = 1 << 14 // RFC 5246 §6.2.1
	// maxCiphertext bounds TLSCiphertext.length: 2^14 + 2048 (RFC 5246 §6.2.3).
	maxCiphertext   = maxPlaintext + 2048
	gcmExplicitLen  = 8 // RFC 5288 §3: nonce_explicit
	gcmTagLen       = 16
	aesBlockSize    = aes.BlockSize
	seqAndHeaderLen = 8 + recordHeaderLen
)

// errBadRecordMAC is returned by decrypt for any failure to authenticate or
// unpad a record: RFC 5246 §6.2.3.2 asks that padding and MAC failures look
// the same (bad_record_mac).
var errBadRecordMAC = errors.New("dhe: record failed authentication")

// halfConn is one direction's record protection (RFC 5246 §6.2.3).
// The zero value is the null cipher of the initial handshake.
type halfConn struct {
	version uint16
	seq     uint64

	aead cipher.AEAD // GCM suites
	salt []byte      // GCM: the 4-byte implicit nonce (RFC 5288 §3)

	block cipher.Block // CBC suites
	mac   hash.Hash    // CBC: HMAC with the MAC key
	iv    []byte       // CBC in TLS 1.0: the chained IV (RFC 2246 §6.2.3.2)
}

// newHalfConn builds the protection for one direction from its key, MAC
// key and IV.
func newHalfConn(version uint16, s *suite, key, macKey, iv []byte) (*halfConn, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	hc := &halfConn{version: version}
	if s.aead {
		g, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		hc.aead, hc.salt = g, append([]byte(nil), iv...)
		return hc, nil
	}
	hc.block, hc.mac = block, hmac.New(s.macHash, macKey)
	if version == VersionTLS10 {
		hc.iv = append([]byte(nil), iv...)
	}
	return hc, nil
}

func (hc *halfConn) active() bool { return hc.aead != nil || hc.block != nil }

// additionalData is seq_num + TLSCompressed.{type,version,length}, the
// MAC input prefix of RFC 5246 §6.2.3.1 and the AEAD additional data of
// §6.2.3.3.
func (hc *halfConn) additionalData(typ uint8, n int) []byte {
	var ad [seqAndHeaderLen]byte
	binary.BigEndian.PutUint64(ad[:8], hc.seq)
	ad[8] = typ
	binary.BigEndian.PutUint16(ad[9:], hc.version)
	binary.BigEndian.PutUint16(ad[11:], uint16(n))
	return ad[:]
}

// seal appends the record (header included) carrying payload to out.
// rand supplies explicit CBC IVs.
func (hc *halfConn) seal(out []byte, typ uint8, payload []byte, rand io.Reader) ([]byte, error) {
	start := len(out)
	// Before the version is settled, records say TLS 1.0, which every
	// server accepts (RFC 5246 Appendix E.1).
	v := hc.version
	if v == 0 {
		v = VersionTLS10
	}
	out = append(out, typ, byte(v>>8), byte(v), 0, 0)
	switch {
	case hc.aead != nil:
		// RFC 5288 §3: nonce = salt(4) || nonce_explicit(8); we use the
		// sequence number as nonce_explicit, as most stacks do.
		var nonce [12]byte
		copy(nonce[:], hc.salt)
		binary.BigEndian.PutUint64(nonce[4:], hc.seq)
		out = append(out, nonce[4:]...)
		out = hc.aead.Seal(out, nonce[:], payload, hc.additionalData(typ, len(payload)))
	case hc.block != nil:
		hc.mac.Reset()
		hc.mac.Write(hc.additionalData(typ, len(payload)))
		hc.mac.Write(payload)
		mac := hc.mac.Sum(nil)
		iv := hc.iv
		body := len(out)
		if hc.version >= VersionTLS11 {
			// TLS 1.1+: an explicit random IV before the data (RFC 5246
			// §6.2.3.2).
			iv = make([]byte, aesBlockSize)
			if _, err := io.ReadFull(rand, iv); err != nil {
				return nil, err
			}
			out = append(out, iv...)
			body = len(out)
		}
		out = append(out, payload...)
		out = append(out, mac...)
		pad := aesBlockSize - (len(payload)+len(mac)+1)%aesBlockSize
		for i := 0; i <= pad; i++ {
			out = append(out, byte(pad))
		}
		cipher.NewCBCEncrypter(hc.block, iv).CryptBlocks(out[body:], out[body:])
		if hc.version == VersionTLS10 {
			hc.iv = append(hc.iv[:0], out[len(out)-aesBlockSize:]...)
		}
	default:
		out = append(out, payload...)
	}
	binary.BigEndian.PutUint16(out[start+3:], uint16(len(out)-start-recordHeaderLen))
	hc.seq++
	return out, nil
}

// open authenticates and decrypts a record body in place and returns the
// plaintext. Any failure is errBadRecordMAC.
func (hc *halfConn) open(typ uint8, body []byte) ([]byte, error) {
	switch {
	case hc.aead != nil:
		if len(body) < gcmExplicitLen+gcmTagLen {
			return nil, errBadRecordMAC
		}
		var nonce [12]byte
		copy(nonce[:], hc.salt)
		copy(nonce[4:], body[:gcmExplicitLen])
		ct := body[gcmExplicitLen:]
		n := len(ct) - gcmTagLen
		pt, err := hc.aead.Open(ct[:0], nonce[:], ct, hc.additionalData(typ, n))
		if err != nil {
			return nil, errBadRecordMAC
		}
		hc.seq++
		return pt, nil
	case hc.block != nil:
		macLen := hc.mac.Size()
		iv := hc.iv
		if hc.version >= VersionTLS11 {
			if len(body) < aesBlockSize {
				return nil, errBadRecordMAC
			}
			iv, body = body[:aesBlockSize], body[aesBlockSize:]
		}
		if len(body) == 0 || len(body)%aesBlockSize != 0 || len(body) < macLen+1 {
			return nil, errBadRecordMAC
		}
		var nextIV []byte
		if hc.version == VersionTLS10 {
			nextIV = append([]byte(nil), body[len(body)-aesBlockSize:]...)
		}
		cipher.NewCBCDecrypter(hc.block, iv).CryptBlocks(body, body)
		if nextIV != nil {
			hc.iv = nextIV
		}
		pad := int(body[len(body)-1])
		ok := 1
		if pad+1+macLen > len(body) {
			ok, pad = 0, 0
		}
		for _, b := range body[len(body)-1-pad : len(body)-1] {
			ok &= subtle.ConstantTimeByteEq(b, byte(pad))
		}
		n := len(body) - 1 - pad - macLen
		hc.mac.Reset()
		hc.mac.Write(hc.additionalData(typ, n))
		hc.mac.Write(body[:n])
		ok &= subtle.ConstantTimeCompare(hc.mac.Sum(nil), body[n:n+macLen])
		if ok != 1 {
			return nil, errBadRecordMAC
		}
		hc.seq++
		return body[:n], nil
	}
	hc.seq++
	return body, nil
}
