package dhe

import (
	"crypto/tls"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"
)

// TestCheckPeerY: 1 < Y < p-1, and in the subgroup when q is known.
func TestCheckPeerY(t *testing.T) {
	for _, g := range []*Group{groupFFDHE2048, groupRFC5114_2048_256} {
		ka := &keyAgreement{group: g}
		p := g.P
		cases := map[string]struct {
			y  *big.Int
			ok bool
		}{
			"zero":         {big.NewInt(0), false},
			"one":          {big.NewInt(1), false},
			"p-1":          {new(big.Int).Sub(p, big.NewInt(1)), false},
			"p":            {p, false},
			"p+1":          {new(big.Int).Add(p, big.NewInt(1)), false},
			"generator":    {g.G, true},
			"g^2":          {new(big.Int).Exp(g.G, big.NewInt(2), p), true},
			"two":          {big.NewInt(2), g.Q == nil}, // 2 is not in RFC 5114's subgroup
			"p-2":          {new(big.Int).Sub(p, big.NewInt(2)), g.Q == nil},
			"padded g":     {g.G, true},
			"too long (0)": {nil, false},
		}
		for name, c := range cases {
			raw := []byte{0}
			switch name {
			case "too long (0)":
				raw = make([]byte, g.Len()+1)
				raw[len(raw)-1] = 2
			case "padded g":
				raw = c.y.FillBytes(make([]byte, g.Len()))
			default:
				raw = c.y.Bytes()
				if len(raw) == 0 {
					raw = []byte{0}
				}
			}
			_, err := ka.checkPeerY(raw)
			if (err == nil) != c.ok {
				t.Errorf("%s/%s: err %v, want ok=%v", g.Name, name, err, c.ok)
			}
			if err != nil && !errors.Is(err, ErrBadPublicValue) {
				t.Errorf("%s/%s: %v is not ErrBadPublicValue", g.Name, name, err)
			}
		}
	}
}

// TestServerRejectsBadClientY: a ClientKeyExchange with Y = 1 or p-1 gets
// illegal_parameter, never a handshake.
func TestServerRejectsBadClientY(t *testing.T) {
	cert, _, _ := testCert(t)
	for _, y := range [][]byte{{1}, new(big.Int).Sub(groupFFDHE2048.P, big.NewInt(1)).Bytes()} {
		srvErr, cliSaw := rawClientExchange(t, &Config{Certificates: []tls.Certificate{cert}}, func(hs *clientHandshakeState) []byte { return y })
		if !errors.Is(srvErr, ErrBadPublicValue) {
			t.Errorf("Y=%x...: server error %v, want ErrBadPublicValue", y[:1], srvErr)
		}
		var ae *AlertError
		if !errors.As(cliSaw, &ae) || ae.Description != alertIllegalParameter || !ae.Remote {
			t.Errorf("client saw %v, want a remote illegal_parameter alert", cliSaw)
		}
	}
}

// TestRenegotiationInfo: the server answers an empty renegotiation_info
// (and the SCSV) with an empty one, and refuses a non-empty one in an
// initial handshake (RFC 5746 §3.6).
func TestRenegotiationInfo(t *testing.T) {
	cert, _, _ := testCert(t)
	cases := []struct {
		name    string
		modify  func(h *clientHelloMsg)
		wantErr bool
	}{
		{"extension", func(h *clientHelloMsg) {}, false},
		{"scsv", func(h *clientHelloMsg) {
			h.secureReneg = false
			h.cipherSuites = append(h.cipherSuites, scsvRenegotiation)
		}, false},
		{"non-empty", func(h *clientHelloMsg) { h.renegInfo = []byte{1, 2, 3} }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			errc := make(chan error, 1)
			go func() {
				raw, err := ln.Accept()
				if err != nil {
					errc <- err
					return
				}
				defer raw.Close()
				_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
				errc <- Server(raw, &Config{Certificates: []tls.Certificate{cert}}).Handshake()
			}()
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
			c0 := Client(raw, &Config{InsecureSkipVerify: true})
			hs := &clientHandshakeState{c: c0}
			h := &clientHelloMsg{vers: VersionTLS12, random: make([]byte, 32), compression: []byte{0}, secureReneg: true,
				cipherSuites: CipherSuites(), sigAlgs: []uint16{sigRSASHA256}}
			c.modify(h)
			hs.hello = h
			if err := c0.writeHandshake(h.marshal()); err != nil {
				t.Fatal(err)
			}
			if err := c0.flush(); err != nil {
				t.Fatal(err)
			}
			_, msg, err := c0.readHandshake()
			if c.wantErr {
				var ae *AlertError
				if !errors.As(err, &ae) || ae.Description != alertHandshakeFailure {
					t.Fatalf("client read %v, want handshake_failure", err)
				}
				if <-errc == nil {
					t.Fatal("server accepted a non-empty renegotiation_info")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var sh serverHelloMsg
			if !sh.unmarshal(msg[4:]) || !sh.secureReneg || len(sh.renegInfo) != 0 {
				t.Errorf("ServerHello renegotiation_info: present %v, %x", sh.secureReneg, sh.renegInfo)
			}
			raw.Close()
			<-errc
		})
	}
}

// rawClientExchange runs a client handshake whose ClientKeyExchange carries
// the Y that yc returns, and returns the server's error and what the client
// read after its flight.
func rawClientExchange(t *testing.T, scfg *Config, yc func(hs *clientHandshakeState) []byte) (error, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
		errc <- Server(raw, scfg).Handshake()
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := Client(raw, &Config{InsecureSkipVerify: true})
	hs := &clientHandshakeState{c: c}
	for _, step := range []func() error{hs.sendClientHello, hs.readServerHello, hs.readCertificate, hs.readServerKeyExchange, hs.readServerHelloDone} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.writeHandshake((&clientKeyExchangeMsg{yc: yc(hs)}).marshal()); err != nil {
		t.Fatal(err)
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	_, _, cliErr := c.readHandshake()
	return <-errc, cliErr
}
