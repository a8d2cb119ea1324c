package dhe

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
)

// clientHandshakeState is the client side of a full handshake (RFC 5246
// §7.3), one method per step.
type clientHandshakeState struct {
	c            *Conn
	hello        *clientHelloMsg
	serverHello  *serverHelloMsg
	suite        *suite
	ka           *keyAgreement
	serverPub    *rsa.PublicKey
	peerY        []byte
	ems          bool
	master       []byte
	clientKeys   *halfConn
	serverKeys   *halfConn
	offeredSuite []uint16
}

func (hs *clientHandshakeState) handshake() error {
	steps := []func() error{
		hs.sendClientHello,
		hs.readServerHello,
		hs.readCertificate,
		hs.readServerKeyExchange,
		hs.readServerHelloDone,
		hs.sendClientFlight,
		hs.readFinished,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func (hs *clientHandshakeState) sendClientHello() error {
	c, cfg := hs.c, hs.c.config
	_, hi := cfg.versions()
	h := &clientHelloMsg{
		vers:            hi,
		random:          make([]byte, 32),
		compression:     []byte{0},
		serverName:      cfg.ServerName,
		ems:             !cfg.DisableExtendedMasterSecret,
		secureReneg:     true,
		alpn:            cfg.NextProtos,
		supportedGroups: []uint16{namedFFDHE2048, namedFFDHE3072, namedFFDHE4096},
	}
	if hi >= VersionTLS12 {
		h.sigAlgs = []uint16{sigRSASHA256, sigRSASHA384, sigRSASHA512, sigRSASHA1}
	}
	for _, id := range cfg.suites() {
		if s := suiteByID(id); s.usable(hi) {
			h.cipherSuites = append(h.cipherSuites, id)
		}
	}
	if len(h.cipherSuites) == 0 {
		return fmt.Errorf("%w: none of Config.CipherSuites works at TLS 0x%04X", ErrNoCommonSuite, hi)
	}
	if _, err := io.ReadFull(cfg.rand(), h.random); err != nil {
		return err
	}
	hs.hello = h
	if err := c.writeHandshake(h.marshal()); err != nil {
		return err
	}
	return c.flush()
}

func (hs *clientHandshakeState) readServerHello() error {
	c, cfg := hs.c, hs.c.config
	typ, msg, err := c.readHandshake()
	if err != nil {
		return fmt.Errorf("dhe: reading ServerHello: %w", err)
	}
	sh := new(serverHelloMsg)
	if typ != typeServerHello {
		return c.sendAlert(alertUnexpectedMessage)
	}
	if !sh.unmarshal(msg[4:]) {
		return fmt.Errorf("dhe: ServerHello: %w: %w", errDecode, c.sendAlert(alertDecodeError))
	}
	lo, hi := cfg.versions()
	if sh.vers < lo || sh.vers > hi {
		return fmt.Errorf("dhe: server chose TLS version 0x%04X: %w", sh.vers, c.sendAlert(alertProtocolVersion))
	}
	c.setVersion(sh.vers)
	hs.suite = suiteByID(sh.cipherSuite)
	if hs.suite == nil || !slices.Contains(hs.hello.cipherSuites, sh.cipherSuite) || !hs.suite.usable(c.vers) {
		return fmt.Errorf("dhe: server chose cipher suite 0x%04X, not offered: %w", sh.cipherSuite, c.sendAlert(alertIllegalParameter))
	}
	if sh.compression != 0 {
		return fmt.Errorf("dhe: server chose compression %d: %w", sh.compression, c.sendAlert(alertIllegalParameter))
	}
	// RFC 5746 §3.4: an initial handshake's renegotiated_connection is empty.
	if sh.secureReneg && len(sh.renegInfo) != 0 {
		return fmt.Errorf("dhe: non-empty renegotiation_info: %w", c.sendAlert(alertHandshakeFailure))
	}
	if sh.ems && cfg.DisableExtendedMasterSecret {
		return fmt.Errorf("dhe: server sent extended_master_secret unasked: %w", c.sendAlert(alertUnexpectedMessage))
	}
	if sh.alpn != "" && !slices.Contains(cfg.NextProtos, sh.alpn) {
		return fmt.Errorf("dhe: server chose ALPN %q, not offered: %w", sh.alpn, c.sendAlert(alertIllegalParameter))
	}
	hs.serverHello, hs.ems = sh, sh.ems
	c.state.Version, c.state.CipherSuite = c.vers, sh.cipherSuite
	c.state.ExtendedMasterSecret, c.state.SecureRenegotiation = sh.ems, sh.secureReneg
	c.state.NegotiatedProtocol, c.state.ServerName = sh.alpn, cfg.ServerName
	return nil
}

func (hs *clientHandshakeState) readCertificate() error {
	c, cfg := hs.c, hs.c.config
	typ, msg, err := c.readHandshake()
	if err != nil {
		return fmt.Errorf("dhe: reading Certificate: %w", err)
	}
	var cm certificateMsg
	if typ != typeCertificate {
		return c.sendAlert(alertUnexpectedMessage)
	}
	if !cm.unmarshal(msg[4:]) || len(cm.certificates) == 0 {
		return fmt.Errorf("dhe: Certificate: %w: %w", errDecode, c.sendAlert(alertDecodeError))
	}
	certs := make([]*x509.Certificate, len(cm.certificates))
	for i, der := range cm.certificates {
		if certs[i], err = x509.ParseCertificate(der); err != nil {
			return fmt.Errorf("dhe: server certificate %d: %w: %w", i, err, c.sendAlert(alertBadCertificate))
		}
	}
	if !cfg.InsecureSkipVerify {
		opts := x509.VerifyOptions{Roots: cfg.RootCAs, DNSName: cfg.ServerName, Intermediates: x509.NewCertPool()}
		for _, ic := range certs[1:] {
			opts.Intermediates.AddCert(ic)
		}
		if _, err := certs[0].Verify(opts); err != nil {
			return fmt.Errorf("dhe: server certificate: %w: %w", err, c.sendAlert(alertBadCertificate))
		}
	}
	pub, ok := certs[0].PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("dhe: server certificate key is not RSA: %w", c.sendAlert(alertBadCertificate))
	}
	hs.serverPub = pub
	c.state.PeerCertificates = certs
	return nil
}

func (hs *clientHandshakeState) readServerKeyExchange() error {
	c, cfg := hs.c, hs.c.config
	typ, msg, err := c.readHandshake()
	if err != nil {
		return fmt.Errorf("dhe: reading ServerKeyExchange: %w", err)
	}
	var ske serverKeyExchangeMsg
	if typ != typeServerKeyExchange {
		return c.sendAlert(alertUnexpectedMessage)
	}
	if !ske.unmarshal(msg[4:], c.vers) {
		return fmt.Errorf("dhe: ServerKeyExchange: %w: %w", errDecode, c.sendAlert(alertDecodeError))
	}
	if c.vers >= VersionTLS12 && !slices.Contains(hs.hello.sigAlgs, ske.sigAlg) {
		return fmt.Errorf("dhe: ServerKeyExchange signed with 0x%04X, not offered: %w", ske.sigAlg, c.sendAlert(alertIllegalParameter))
	}
	if err := verifyParams(hs.serverPub, c.vers, ske.sigAlg, hs.hello.random, hs.serverHello.random, ske.params, ske.sig); err != nil {
		return fmt.Errorf("%w: %w", err, c.sendAlert(alertDecryptError))
	}
	group, err := checkServerGroup(ske.p, ske.g, cfg.MinGroupBits)
	if err != nil {
		return fmt.Errorf("%w: %w", err, c.sendAlert(alertInsufficientSecurity))
	}
	hs.ka = &keyAgreement{group: group, z: cfg.Z, y: cfg.Y, rand: cfg.rand(), grind: cfg.Grind, grindPublic: cfg.GrindPublic, limit: cfg.GrindLimit}
	c.state.Group, c.state.PrimeBits = group.Name, group.Bits()
	hs.peerY = ske.ys
	return nil
}

func (hs *clientHandshakeState) readServerHelloDone() error {
	c := hs.c
	typ, msg, err := c.readHandshake()
	if err != nil {
		return fmt.Errorf("dhe: reading ServerHelloDone: %w", err)
	}
	if typ == typeCertificateRequest {
		return fmt.Errorf("dhe: server asks for a client certificate, which this engine does not do: %w", c.sendAlert(alertHandshakeFailure))
	}
	if typ != typeServerHelloDone || len(msg) != 4 {
		return c.sendAlert(alertUnexpectedMessage)
	}
	return nil
}

// sendClientFlight sends ClientKeyExchange, ChangeCipherSpec and Finished.
func (hs *clientHandshakeState) sendClientFlight() error {
	c := hs.c
	y, err := hs.ka.checkPeerY(hs.peerY)
	if err != nil {
		c.setKeyAgreementState(hs.ka)
		return fmt.Errorf("%w: %w", err, c.sendAlert(alertIllegalParameter))
	}
	yc, preMaster, err := hs.ka.clientKeyExchange(y)
	c.setKeyAgreementState(hs.ka)
	if err != nil {
		return fmt.Errorf("%w: %w", err, c.sendAlert(alertInternalError))
	}
	if err := c.writeHandshake((&clientKeyExchangeMsg{yc: yc}).marshal()); err != nil {
		return err
	}
	sr := hs.serverHello.random
	hs.master = masterSecret(c.vers, hs.suite, preMaster, hs.hello.random, sr, hs.ems, transcriptHash(c.vers, hs.suite, c.transcript))
	c.logKey(hs.hello.random, hs.master)
	k := keysFromMaster(c.vers, hs.suite, hs.master, hs.hello.random, sr)
	if hs.clientKeys, err = newHalfConn(c.vers, hs.suite, k.clientKey, k.clientMAC, k.clientIV); err != nil {
		return err
	}
	if hs.serverKeys, err = newHalfConn(c.vers, hs.suite, k.serverKey, k.serverMAC, k.serverIV); err != nil {
		return err
	}
	if err := c.writeChangeCipherSpec(hs.clientKeys); err != nil {
		return err
	}
	fin := &finishedMsg{verifyData: finishedData(c.vers, hs.suite, hs.master, labelClientFinished, c.transcript)}
	if err := c.writeHandshake(fin.marshal()); err != nil {
		return err
	}
	return c.flush()
}

// readFinished reads the server's ChangeCipherSpec and Finished. A server
// with another master secret has already failed on our Finished: what
// arrives here is its alert, a FIN (EOF) or an RST.
func (hs *clientHandshakeState) readFinished() error {
	c := hs.c
	if err := c.readChangeCipherSpec(hs.serverKeys); err != nil {
		return fmt.Errorf("dhe: reading server ChangeCipherSpec: %w", err)
	}
	want := finishedData(c.vers, hs.suite, hs.master, labelServerFinished, c.transcript)
	typ, msg, err := c.readHandshake()
	if errors.Is(err, errBadRecordMAC) {
		return fmt.Errorf("%w: %w", ErrBadFinished, c.sendAlert(alertBadRecordMAC))
	}
	if err != nil {
		return fmt.Errorf("dhe: reading server Finished: %w", err)
	}
	var fin finishedMsg
	if typ != typeFinished || !fin.unmarshal(msg[4:]) {
		return fmt.Errorf("dhe: server Finished: %w: %w", errDecode, c.sendAlert(alertDecodeError))
	}
	if !bytes.Equal(fin.verifyData, want) {
		return fmt.Errorf("%w: %w", ErrBadFinished, c.sendAlert(alertDecryptError))
	}
	return nil
}
