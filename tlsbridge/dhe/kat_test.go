package dhe

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"testing"
)

// The vectors below were computed outside Go: the PRF ones with OpenSSL
// 3.0's `openssl kdf ... TLS1-PRF` (digest SHA256, SHA384, MD5-SHA1), the
// records with Python's `cryptography` (AESGCM, AES-CBC) and hmac, the
// signatures with `cryptography` (PKCS #1 v1.5, SHA-256) and `openssl
// pkeyutl -pkeyopt digest:md5-sha1` over testdata/kat_rsa.pem.

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seq(a, b int) []byte {
	out := make([]byte, 0, b-a)
	for i := a; i < b; i++ {
		out = append(out, byte(i))
	}
	return out
}

// Inputs shared by the vectors.
func katClientRandom() []byte { return seq(32, 64) }
func katServerRandom() []byte { return seq(64, 96) }
func katMaster() []byte       { return seq(100, 148) }

// katPreMaster() starts with three zero bytes, as a padded Z can.
func katPreMaster() []byte { return append([]byte{0, 0, 0}, seq(200, 253)...) }

// TestPRFKnownAnswers checks the TLS 1.2 PRF with SHA-256 and SHA-384
// (RFC 5246 §5) and the TLS 1.0 PRF (RFC 2246 §5, odd-length secret).
func TestPRFKnownAnswers(t *testing.T) {
	seed := append([]byte("test label"), seq(160, 192)...)
	cases := []struct {
		name   string
		prf    func(out, secret []byte, label string, seed []byte)
		secret []byte
		want   string
	}{
		{"sha256", prf12(suiteByID(TLS_DHE_RSA_WITH_AES_128_GCM_SHA256).prfHash), seq(0, 48),
			"7f10581981daa30ef789d57d09bf1557d62de322e786576168adac0bc28d7789ab7a64bc643be7e23e6301fea3c7fc7f15520fb62c3b06d00d69a1ea8516969cb97f243e1e8bab596724311cee43b12aee7c7262521a225250c8e4dc86ad0c7a18839ae7"},
		{"sha384", prf12(suiteByID(TLS_DHE_RSA_WITH_AES_256_GCM_SHA384).prfHash), seq(0, 48),
			"6f3309499e62b4b5fff844653df1989986b0fb51fe3983860b07e7ab0af25a843e0db936954804664cadf8841d38712e677850ee840896be1e69f1460005f7e5efc013cc85cdcda23483e146017088beed26cce69a301770831a2f859f95c34bb74ba65d98746f0c30d6ff7caf0b6490de1fcf1ea82c44261302540d4b20cb5dc0cbce0c2cc52505aaddafe3f81b2089ecfc0e10"},
		{"tls10", prf10, seq(0, 47),
			"b864a133cbe0ab812843ed7bda6e13986935b8b37f697c606bd6ebea16e22fbfdbeb9e33ef14b218b32450f7d4427adff80ac2f1ad1f100012683899bd83d88b972604783a6956622092f89b6d4b3a8bd539a03bf77bca3523315457eb3d8b798a66dfff7d624c0f"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := unhex(t, c.want)
			got := make([]byte, len(want))
			c.prf(got, c.secret, "", seed)
			if !bytes.Equal(got, want) {
				t.Errorf("got  %x\nwant %x", got, want)
			}
		})
	}
}

// TestMasterSecretKnownAnswers checks the master secret (RFC 5246 §8.1),
// the extended master secret (RFC 7627 §4) and that a pre-master secret
// with leading zeros is used as given (the strip/pad difference).
func TestMasterSecretKnownAnswers(t *testing.T) {
	gcm128 := suiteByID(TLS_DHE_RSA_WITH_AES_128_GCM_SHA256)
	gcm256 := suiteByID(TLS_DHE_RSA_WITH_AES_256_GCM_SHA384)
	cbc := suiteByID(TLS_DHE_RSA_WITH_AES_128_CBC_SHA)
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"tls12-sha256", masterSecret(VersionTLS12, gcm128, katPreMaster(), katClientRandom(), katServerRandom(), false, nil),
			"51ac361f8129f1ee77c9dd4d370638c7f3d36ac31894cba63bdcffa40b4f6de20a5c6b525ddedf64fc28a20183c64799"},
		{"tls10", masterSecret(VersionTLS10, cbc, katPreMaster(), katClientRandom(), katServerRandom(), false, nil),
			"37fd48bb84c52f2ee842b694d24c871ab1f17613ba714cdf34412c1fce4fe683e3b9ecbca45024e555faea1623152614"},
		{"ems-sha384", masterSecret(VersionTLS12, gcm256, katPreMaster(), katClientRandom(), katServerRandom(), true, seq(96, 128)),
			"225b83c6f17957c4684b6f426d7063d12831f44b625217bdb58f0d6289a205583fdeca9284d0228d724abbfc9a182e69"},
	}
	for _, c := range cases {
		if !bytes.Equal(c.got, unhex(t, c.want)) {
			t.Errorf("%s: got %x\nwant %s", c.name, c.got, c.want)
		}
	}
	stripped := masterSecret(VersionTLS12, gcm128, katPreMaster()[3:], katClientRandom(), katServerRandom(), false, nil)
	if bytes.Equal(stripped, cases[0].got) {
		t.Error("stripping the leading zeros of the pre-master secret did not change the master secret")
	}
}

// TestKeyExpansionKnownAnswers checks the key block split (RFC 5246 §6.3):
// GCM (no MAC keys, 4-byte salts), CBC-SHA256 at TLS 1.2 and CBC-SHA at TLS
// 1.0 (IVs from the key block).
func TestKeyExpansionKnownAnswers(t *testing.T) {
	cases := []struct {
		name    string
		version uint16
		suite   uint16
		block   string
	}{
		{"gcm", VersionTLS12, TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,
			"f02a351b77c07141df9972858b184072a79675955f0e1dc996a55ee0b83c86abe1a483e391e504d0642b4a8fa7033d23ff63cec5a29ac7e1d34dae64ed7e7022832c2ddde4aa6fe9"},
		{"cbc-sha256", VersionTLS12, TLS_DHE_RSA_WITH_AES_128_CBC_SHA256,
			"f02a351b77c07141df9972858b184072a79675955f0e1dc996a55ee0b83c86abe1a483e391e504d0642b4a8fa7033d23ff63cec5a29ac7e1d34dae64ed7e7022832c2ddde4aa6fe9f3bfdd817cb2947a4bfb55a55ba837ca232b912261eef932823960ed5ccfd59b3daf9793f76440e6bb9a051ad480e001733fbf08aa8c4744cc97c69b0cd9ee9150087d1d3e19e2bd69c2b99128543f86d81b669cfa272e1e"},
		{"tls10-cbc-sha", VersionTLS10, TLS_DHE_RSA_WITH_AES_128_CBC_SHA,
			"dda515f6521f838f7164b855459f5af7f2ce98a919eebe99192a1d365145647d630e52a129004110feda807ab8fad10a1e5a2eadab3720980248f8fce329ca1e7f1dd2490f017ad4e3c5d0e46e48818f3c6c9517afed1125f5bb11f498f2889a409f6501b46a7044"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := suiteByID(c.suite)
			block := unhex(t, c.block)
			k := keysFromMaster(c.version, s, katMaster(), katClientRandom(), katServerRandom())
			got := bytes.Join([][]byte{k.clientMAC, k.serverMAC, k.clientKey, k.serverKey, k.clientIV, k.serverIV}, nil)
			if !bytes.Equal(got, block[:len(got)]) {
				t.Errorf("key block\ngot  %x\nwant %x", got, block)
			}
			if len(k.clientKey) != s.keyLen || len(k.clientMAC) != s.macLen {
				t.Errorf("key %d bytes, MAC key %d", len(k.clientKey), len(k.clientMAC))
			}
		})
	}
}

// TestFinishedKnownAnswer checks verify_data (RFC 5246 §7.4.9).
func TestFinishedKnownAnswer(t *testing.T) {
	got := finishedData(VersionTLS12, suiteByID(TLS_DHE_RSA_WITH_AES_128_GCM_SHA256), katMaster(), labelClientFinished, []byte("handshake"))
	if want := unhex(t, "ee5301a6e88ceffabc981968"); !bytes.Equal(got, want) {
		t.Errorf("got %x want %x", got, want)
	}
}

// TestRecordKnownAnswers seals records and compares them with records
// built independently, then opens them again.
func TestRecordKnownAnswers(t *testing.T) {
	pt := []byte("hello, TDS")
	key := seq(1, 17)
	cases := []struct {
		name    string
		version uint16
		suite   uint16
		macKey  []byte
		iv      []byte // salt (GCM) or TLS 1.0 IV
		rand    []byte // explicit CBC IV
		seq     uint64
		records int
		want    string
	}{
		{"gcm", VersionTLS12, TLS_DHE_RSA_WITH_AES_128_GCM_SHA256, nil, unhex(t, "a1a2a3a4"), nil, 1, 1,
			"17030300220000000000000001420f82b30dd17057cd5a57a83197614da1f1e03bd077bc9a2a26"},
		{"cbc-sha256", VersionTLS12, TLS_DHE_RSA_WITH_AES_128_CBC_SHA256, seq(0x40, 0x60), nil, seq(0xe0, 0xf0), 2, 1,
			"1703030040e0e1e2e3e4e5e6e7e8e9eaebecedeeef3d7a52b5845dbae3c0cffde4f7839629c3d6c17d9d0b5aade723329c60761e00c3d3238c2e04ae334d4aa69924bc345f"},
		{"tls10-cbc-sha-chained", VersionTLS10, TLS_DHE_RSA_WITH_AES_128_CBC_SHA, seq(0x40, 0x54), seq(0xe0, 0xf0), nil, 0, 2,
			"1703010020f71f3bd7e6721f5b04f1724538bf63d4a0862bf7e1bf62e1e3a291b04850d27717030100201a333f6393e618e91cb7f6b52f93fb2e20f84edc79b2ad69f4fc8ac968073f73"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := suiteByID(c.suite)
			w, err := newHalfConn(c.version, s, key, c.macKey, c.iv)
			if err != nil {
				t.Fatal(err)
			}
			w.seq = c.seq
			var got []byte
			for range c.records {
				if got, err = w.seal(got, recordApplicationData, pt, bytes.NewReader(c.rand)); err != nil {
					t.Fatal(err)
				}
			}
			want := unhex(t, c.want)
			if !bytes.Equal(got, want) {
				t.Fatalf("sealed\ngot  %x\nwant %x", got, want)
			}
			r, _ := newHalfConn(c.version, s, key, c.macKey, c.iv)
			r.seq = c.seq
			for rec := got; len(rec) > 0; {
				n := recordHeaderLen + (int(rec[3])<<8 | int(rec[4]))
				body := append([]byte(nil), rec[recordHeaderLen:n]...)
				open, err := r.open(recordApplicationData, body)
				if err != nil || !bytes.Equal(open, pt) {
					t.Fatalf("open: %q, %v", open, err)
				}
				rec = rec[n:]
			}
			// One flipped bit anywhere is bad_record_mac.
			r2, _ := newHalfConn(c.version, s, key, c.macKey, c.iv)
			r2.seq = c.seq
			first := recordHeaderLen + (int(want[3])<<8 | int(want[4]))
			body := append([]byte(nil), want[recordHeaderLen:first]...)
			body[len(body)/2] ^= 1
			if _, err := r2.open(recordApplicationData, body); err != errBadRecordMAC {
				t.Errorf("tampered record: %v, want errBadRecordMAC", err)
			}
		})
	}
}

// TestServerKeyExchangeSignatureKnownAnswers signs ServerDHParams as the
// server does and checks the result against signatures made by other
// tools, and that the client's check accepts them and refuses a tampered
// one (RFC 5246 §7.4.3, RFC 2246 §7.4.3).
func TestServerKeyExchangeSignatureKnownAnswers(t *testing.T) {
	raw, err := os.ReadFile("testdata/kat_rsa.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(raw)
	key, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	params := encodeDHParams(groupMODP1024.P.Bytes(), []byte{2}, seq(1, 129))
	cases := []struct {
		name    string
		version uint16
		sigAlg  uint16
		want    string
	}{
		{"tls12-sha256", VersionTLS12, sigRSASHA256, "02dfc4b99a88dbb20688511ebfcee11008d8b38f4ceea4276fa309c98b55a86a830d594036357d4a661ab94be2f49f9f29f4192400d5fe5b4be6e0d71e6cd5a61a0764b2073a298815153b22302ea816d4f5ec5fbd43074da2bdc82fa1dab85b5702f911da3f821df18b56cf9278a8abfacd9d61721a3203e7a016919ae1b6eb"},
		{"tls10-md5sha1", VersionTLS10, 0, "51c5109ada30ea86271e53e136106466ffb8ab14fc53c41ec069a8ebe340414c3bcfe90e6470215e2c5e8333d5e833549b4205fbb7bd361b374e09b3c6cac1601e6ff6f45c8af3c8465c505a169cb7305d9de61e45931fa4dac7a4832b4df661bb2b75c9c31f0db90a706bb753037052830a06e6ab8d877c7515545ab312455f"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sig, err := signParams(nil, key, c.version, c.sigAlg, katClientRandom(), katServerRandom(), params)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, c.want); !bytes.Equal(sig, want) {
				t.Fatalf("signature\ngot  %x\nwant %x", sig, want)
			}
			pub := &key.PublicKey
			if err := verifyParams(pub, c.version, c.sigAlg, katClientRandom(), katServerRandom(), params, sig); err != nil {
				t.Errorf("verify: %v", err)
			}
			bad := bytes.Clone(params)
			bad[len(bad)-1] ^= 1
			if err := verifyParams(pub, c.version, c.sigAlg, katClientRandom(), katServerRandom(), bad, sig); err == nil {
				t.Error("a tampered Ys verified")
			}
		})
	}
}
