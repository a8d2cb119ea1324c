package dhe

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"hash"
)

func sha1New() hash.Hash { return sha1.New() }

// TLS versions (RFC 5246 Appendix A.1).
const (
	VersionTLS10 uint16 = 0x0301
	VersionTLS11 uint16 = 0x0302
	VersionTLS12 uint16 = 0x0303
)

const (
	masterSecretLen = 48
	finishedLen     = 12 // verify_data_length, RFC 5246 §7.4.9
)

// Labels (RFC 5246 §8.1, §6.3, §7.4.9; RFC 7627 §4).
const (
	labelMaster         = "master secret"
	labelExtendedMaster = "extended master secret"
	labelKeyExpansion   = "key expansion"
	labelClientFinished = "client finished"
	labelServerFinished = "server finished"
)

// pHash is P_hash (RFC 5246 §5): HMAC_hash(secret, A(i) + seed) with
// A(0) = seed, A(i) = HMAC_hash(secret, A(i-1)), filling out.
func pHash(out, secret, seed []byte, h func() hash.Hash) {
	mac := hmac.New(h, secret)
	mac.Write(seed)
	a := mac.Sum(nil)
	for n := 0; n < len(out); {
		mac.Reset()
		mac.Write(a)
		mac.Write(seed)
		n += copy(out[n:], mac.Sum(nil))
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(a[:0])
	}
}

// prf12 is the TLS 1.2 PRF (RFC 5246 §5): P_hash(secret, label + seed).
func prf12(h func() hash.Hash) func(out, secret []byte, label string, seed []byte) {
	return func(out, secret []byte, label string, seed []byte) {
		pHash(out, secret, append([]byte(label), seed...), h)
	}
}

// prf10 is the TLS 1.0/1.1 PRF (RFC 2246 §5): P_MD5 over the first half
// of the secret XOR P_SHA-1 over the second half, the halves overlapping
// by one byte when the length is odd.
func prf10(out, secret []byte, label string, seed []byte) {
	ls := append([]byte(label), seed...)
	half := (len(secret) + 1) / 2
	s1, s2 := secret[:half], secret[len(secret)-half:]
	pHash(out, s1, ls, md5.New)
	tmp := make([]byte, len(out))
	pHash(tmp, s2, ls, sha1New)
	for i := range out {
		out[i] ^= tmp[i]
	}
}

// prfFor returns the PRF of a version and suite.
func prfFor(version uint16, s *suite) func(out, secret []byte, label string, seed []byte) {
	if version >= VersionTLS12 {
		return prf12(s.prfHash)
	}
	return prf10
}

// transcriptHash hashes the handshake messages for Finished and for the
// extended master secret's session_hash: the PRF hash in TLS 1.2, MD5
// followed by SHA-1 before (RFC 2246 §7.4.9, RFC 7627 §3).
func transcriptHash(version uint16, s *suite, transcript []byte) []byte {
	if version >= VersionTLS12 {
		h := s.prfHash()
		h.Write(transcript)
		return h.Sum(nil)
	}
	m := md5.Sum(transcript)
	s1 := sha1.Sum(transcript)
	return append(m[:], s1[:]...)
}

// masterSecret computes the master secret (RFC 5246 §8.1), or with ems
// the extended master secret over sessionHash (RFC 7627 §4).
func masterSecret(version uint16, s *suite, preMaster, clientRandom, serverRandom []byte, ems bool, sessionHash []byte) []byte {
	out := make([]byte, masterSecretLen)
	prf := prfFor(version, s)
	if ems {
		prf(out, preMaster, labelExtendedMaster, sessionHash)
		return out
	}
	prf(out, preMaster, labelMaster, append(append([]byte(nil), clientRandom...), serverRandom...))
	return out
}

// keyBlock holds the keys of both directions (RFC 5246 §6.3).
type keyBlock struct {
	clientMAC, serverMAC, clientKey, serverKey, clientIV, serverIV []byte
}

// keysFromMaster expands the master secret into the key block, in the order
// RFC 5246 §6.3 lists: MAC keys, encryption keys, IVs. Before TLS 1.1 a
// CBC suite takes its IVs from the key block; TLS 1.1 and 1.2 CBC records
// carry explicit IVs, and the IVs computed here go unused (they come last,
// so computing them changes nothing before them).
func keysFromMaster(version uint16, s *suite, master, clientRandom, serverRandom []byte) keyBlock {
	n := 2*s.macLen + 2*s.keyLen + 2*s.ivLen
	b := make([]byte, n)
	prfFor(version, s)(b, master, labelKeyExpansion, append(append([]byte(nil), serverRandom...), clientRandom...))
	var k keyBlock
	take := func(l int) []byte { r := b[:l:l]; b = b[l:]; return r }
	k.clientMAC, k.serverMAC = take(s.macLen), take(s.macLen)
	k.clientKey, k.serverKey = take(s.keyLen), take(s.keyLen)
	k.clientIV, k.serverIV = take(s.ivLen), take(s.ivLen)
	return k
}

// finishedData computes verify_data (RFC 5246 §7.4.9).
func finishedData(version uint16, s *suite, master []byte, label string, transcript []byte) []byte {
	out := make([]byte, finishedLen)
	prfFor(version, s)(out, master, label, transcriptHash(version, s, transcript))
	return out
}
