package dhe

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// serverHandshakeState is the server side of a full handshake (RFC 5246
// §7.3), one method per step.
type serverHandshakeState struct {
	c            *Conn
	hello        *clientHelloMsg
	suite        *suite
	ka           *keyAgreement
	key          crypto.Signer
	sigAlg       uint16
	ems          bool
	serverRandom []byte
	master       []byte
	clientKeys   *halfConn
	serverKeys   *halfConn
}

func (hs *serverHandshakeState) handshake() error {
	steps := []func() error{
		hs.readClientHello,
		hs.processClientHello,
		hs.sendServerFlight,
		hs.readClientKeyExchange,
		hs.establishKeys,
		hs.readFinished,
		hs.sendFinished,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func (hs *serverHandshakeState) readClientHello() error {
	c := hs.c
	typ, msg, err := c.readHandshake()
	if err != nil {
		return fmt.Errorf("dhe: reading ClientHello: %w", err)
	}
	hs.hello = new(clientHelloMsg)
	if typ != typeClientHello {
		return c.sendAlert(alertUnexpectedMessage)
	}
	if !hs.hello.unmarshal(msg[4:]) {
		return fmt.Errorf("dhe: ClientHello: %w: %w", errDecode, c.sendAlert(alertDecodeError))
	}
	return nil
}

// processClientHello picks the version, the suite, the signature hash and
// the extensions to answer.
func (hs *serverHandshakeState) processClientHello() error {
	c, h, cfg := hs.c, hs.hello, hs.c.config
	lo, hi := cfg.versions()
	c.setVersion(min(h.vers, hi))
	if h.vers < lo {
		return fmt.Errorf("dhe: client offers TLS version 0x%04X, below 0x%04X: %w", h.vers, lo, c.sendAlert(alertProtocolVersion))
	}
	if !slices.Contains(h.compression, 0) {
		return fmt.Errorf("dhe: client offers no null compression: %w", c.sendAlert(alertIllegalParameter))
	}
	for _, id := range cfg.suites() {
		if s := suiteByID(id); s.usable(c.vers) && slices.Contains(h.cipherSuites, id) {
			hs.suite = s
			break
		}
	}
	if hs.suite == nil {
		return fmt.Errorf("%w: %w", ErrNoCommonSuite, c.sendAlert(alertHandshakeFailure))
	}
	// RFC 5746 §3.6: an initial ClientHello's renegotiation_info must be
	// empty.
	if len(h.renegInfo) != 0 {
		return fmt.Errorf("dhe: non-empty renegotiation_info in an initial handshake: %w", c.sendAlert(alertHandshakeFailure))
	}
	hs.ems = h.ems && !cfg.DisableExtendedMasterSecret
	key, ok := cfg.Certificates[0].PrivateKey.(crypto.Signer)
	if !ok {
		return fmt.Errorf("dhe: certificate key is not a crypto.Signer: %w", c.sendAlert(alertInternalError))
	}
	if _, ok := key.Public().(*rsa.PublicKey); !ok {
		return fmt.Errorf("dhe: certificate key is not RSA: %w", c.sendAlert(alertInternalError))
	}
	hs.key = key
	if c.vers >= VersionTLS12 {
		// RFC 5246 §7.4.1.4.1: without the extension, SHA-1 is assumed.
		hs.sigAlg = sigRSASHA1
		if len(h.sigAlgs) > 0 {
			hs.sigAlg = 0
			for _, a := range []uint16{sigRSASHA256, sigRSASHA384, sigRSASHA512, sigRSASHA1} {
				if slices.Contains(h.sigAlgs, a) {
					hs.sigAlg = a
					break
				}
			}
			if hs.sigAlg == 0 {
				return fmt.Errorf("dhe: client accepts no RSA PKCS #1 v1.5 signature: %w", c.sendAlert(alertHandshakeFailure))
			}
		}
	}
	hs.ka = &keyAgreement{group: cfg.group(), z: cfg.Z, y: cfg.Y, rand: cfg.rand(), rejectShort: cfg.RejectShortPublic}
	c.state.Version, c.state.CipherSuite = c.vers, hs.suite.id
	c.state.ExtendedMasterSecret, c.state.SecureRenegotiation = hs.ems, h.secureReneg
	c.state.ServerName = h.serverName
	c.state.Group, c.state.PrimeBits = hs.ka.group.Name, hs.ka.group.Bits()
	return nil
}

// sendServerFlight sends ServerHello, Certificate, ServerKeyExchange and
// ServerHelloDone as one flight.
func (hs *serverHandshakeState) sendServerFlight() error {
	c, cfg := hs.c, hs.c.config
	hs.serverRandom = make([]byte, 32)
	if _, err := io.ReadFull(cfg.rand(), hs.serverRandom); err != nil {
		return err
	}
	sh := &serverHelloMsg{
		vers:        c.vers,
		random:      hs.serverRandom,
		cipherSuite: hs.suite.id,
		ems:         hs.ems,
		secureReneg: hs.hello.secureReneg,
	}
	for _, p := range cfg.NextProtos {
		if slices.Contains(hs.hello.alpn, p) {
			sh.alpn = p
			break
		}
	}
	c.state.NegotiatedProtocol = sh.alpn
	params, err := hs.ka.serverParams()
	if err != nil {
		return err
	}
	sig, err := signParams(cfg.rand(), hs.key, c.vers, hs.sigAlg, hs.hello.random, hs.serverRandom, params)
	if err != nil {
		return fmt.Errorf("dhe: signing ServerKeyExchange: %w", err)
	}
	ske := &serverKeyExchangeMsg{params: params, sigAlg: hs.sigAlg, sig: sig}
	for _, m := range [][]byte{
		sh.marshal(),
		(&certificateMsg{certificates: cfg.Certificates[0].Certificate}).marshal(),
		ske.marshal(c.vers),
		marshalHandshake(typeServerHelloDone, func(*cryptobyte.Builder) {}),
	} {
		if err := c.writeHandshake(m); err != nil {
			return err
		}
	}
	return c.flush()
}

func (hs *serverHandshakeState) readClientKeyExchange() error {
	c := hs.c
	typ, msg, err := c.readHandshake()
	if err != nil {
		return fmt.Errorf("dhe: reading ClientKeyExchange: %w", err)
	}
	if typ != typeClientKeyExchange {
		// A Certificate here would answer a CertificateRequest we never
		// sent.
		return c.sendAlert(alertUnexpectedMessage)
	}
	var ckx clientKeyExchangeMsg
	if !ckx.unmarshal(msg[4:]) {
		return fmt.Errorf("dhe: ClientKeyExchange: %w: %w", errDecode, c.sendAlert(alertDecodeError))
	}
	preMaster, err := hs.ka.processClientKeyExchange(ckx.yc)
	c.setKeyAgreementState(hs.ka)
	if err != nil {
		return fmt.Errorf("%w: %w", err, c.sendAlert(alertIllegalParameter))
	}
	// RFC 7627 §3: session_hash covers the messages through
	// ClientKeyExchange.
	hs.master = masterSecret(c.vers, hs.suite, preMaster, hs.hello.random, hs.serverRandom, hs.ems, transcriptHash(c.vers, hs.suite, c.transcript))
	c.logKey(hs.hello.random, hs.master)
	return nil
}

func (hs *serverHandshakeState) establishKeys() error {
	c := hs.c
	k := keysFromMaster(c.vers, hs.suite, hs.master, hs.hello.random, hs.serverRandom)
	var err error
	if hs.clientKeys, err = newHalfConn(c.vers, hs.suite, k.clientKey, k.clientMAC, k.clientIV); err != nil {
		return err
	}
	hs.serverKeys, err = newHalfConn(c.vers, hs.suite, k.serverKey, k.serverMAC, k.serverIV)
	return err
}

// readFinished reads the client's ChangeCipherSpec and Finished. This is
// where two different master secrets show first: the Finished record does
// not decrypt (bad_record_mac), and Config.Fail decides what follows.
func (hs *serverHandshakeState) readFinished() error {
	c := hs.c
	if err := c.readChangeCipherSpec(hs.clientKeys); err != nil {
		return fmt.Errorf("dhe: reading client ChangeCipherSpec: %w", err)
	}
	want := finishedData(c.vers, hs.suite, hs.master, labelClientFinished, c.transcript)
	typ, msg, err := c.readHandshake()
	if errors.Is(err, errBadRecordMAC) {
		if hs.ka.shortRejected {
			return fmt.Errorf("%w (%d bytes, p is %d): %w", ErrShortPublic, hs.ka.peerYLen, hs.ka.group.Len(), c.failFinished(alertBadRecordMAC, err))
		}
		return c.failFinished(alertBadRecordMAC, err)
	}
	if err != nil {
		return fmt.Errorf("dhe: reading client Finished: %w", err)
	}
	var fin finishedMsg
	if typ != typeFinished || !fin.unmarshal(msg[4:]) {
		return fmt.Errorf("dhe: client Finished: %w: %w", errDecode, c.sendAlert(alertDecodeError))
	}
	if !bytes.Equal(fin.verifyData, want) {
		return c.failFinished(alertDecryptError, errors.New("dhe: client Finished verify_data does not match"))
	}
	return nil
}

func (hs *serverHandshakeState) sendFinished() error {
	c := hs.c
	if err := c.writeChangeCipherSpec(hs.serverKeys); err != nil {
		return err
	}
	fin := &finishedMsg{verifyData: finishedData(c.vers, hs.suite, hs.master, labelServerFinished, c.transcript)}
	if err := c.writeHandshake(fin.marshal()); err != nil {
		return err
	}
	return c.flush()
}
