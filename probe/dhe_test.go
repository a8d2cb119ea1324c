package probe

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// dheServer is a TDS 7.x server whose TLS is the DHE engine: it answers
// any PRELOGIN with ENCRYPTION ON and runs a DHE_RSA handshake inside
// PRELOGIN packets (MS-TDS §2.2.6.5), TLS 1.0-1.2, the shared secret
// encoded as z says, failing a bad Finished with a FIN as Schannel does
// (KB4557473). It plays the server the emulator (Go's TLS, no DHE) cannot.
func dheServer(t *testing.T, z dhe.ZEncoding) string {
	t.Helper()
	cert, _, _ := testCert(t, tlsbridge.CertOptions{})
	group, err := dhe.GroupByName("modp1024") // a small group keeps grinding fast
	if err != nil {
		t.Fatal(err)
	}
	cfg := &dhe.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS12,
		Group: group, Z: z, Fail: dhe.FailFIN}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serveDHE(c, cfg) })
		}
	})
	return ln.Addr().String()
}

func serveDHE(c net.Conn, cfg *dhe.Config) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	// A TLS record first (TDS 8.0) is not served: close at once.
	first := make([]byte, 1)
	if _, err := io.ReadFull(c, first); err != nil || first[0] != byte(tds.PacketPrelogin) {
		return
	}
	m, err := tds.NewReader(io.MultiReader(bytes.NewReader(first), c)).ReadMessage()
	if err != nil || m.Type != tds.PacketPrelogin {
		return
	}
	reply := &tds.Prelogin{}
	reply.Set(tds.PreloginVersion, tds.ProductVersion{Major: 12, Minor: 0, Build: 6024}.Bytes())
	reply.Set(tds.PreloginEncryption, []byte{byte(tds.EncryptOn)})
	if err := (&tds.Writer{W: c}).WriteMessage(tds.PacketReply, reply.Marshal()); err != nil {
		return
	}
	fc := tlsbridge.NewFramedConn(c, tlsbridge.RoleServer, tds.DefaultPacketSize)
	dc := dhe.Server(fc, cfg)
	err = dc.Handshake()
	// The last flight (ChangeCipherSpec, Finished, or an alert) waits in
	// the framing buffer: send it.
	_ = fc.Flush()
	var bad *dhe.AlertError
	if err == nil || errors.As(err, &bad) {
		// Wait for the client to leave, so it reads everything sent.
		_, _ = c.Read(make([]byte, 1))
	}
}

// DHE preferred, with a server that strips and one that pads: the
// leading-zero test tells them apart; both are dhe-enabled risks, and a
// client offering DHE first (Windows 2012 R2) negotiates DHE.
func TestProbeLeadingZero(t *testing.T) {
	for _, tc := range []struct {
		z      dhe.ZEncoding
		want   string
		status string
	}{
		{dhe.ZStrip, LeadingZeroStrip, StatusOK},
		{dhe.ZPad, LeadingZeroPad, StatusRisk},
	} {
		t.Run(tc.z.String(), func(t *testing.T) {
			r := probeTarget(t, dheServer(t, tc.z), nil)
			if r.DHE.LeadingZero != tc.want {
				t.Errorf("leading_zero %q (%s), want %q", r.DHE.LeadingZero, r.DHE.LeadingZeroReason, tc.want)
			}
			if !slices.Equal(r.DHE.GroupsBits, []int{1024}) || len(r.DHE.Suites) == 0 {
				t.Errorf("dhe %+v: want the 1024-bit group and the suites", r.DHE)
			}
			if !slices.Equal(r.Versions, []string{"TLS 1.0", "TLS 1.1", "TLS 1.2"}) {
				t.Errorf("versions %v", r.Versions)
			}
			if v := verdictOf(t, r, faults.ScenarioDHELeadingZero); v.Status != tc.status {
				t.Errorf("dhe-leading-zero %+v, want %s", v, tc.status)
			}
			if v := verdictOf(t, r, faults.ScenarioDHEEnabled); v.Status != StatusRisk {
				t.Errorf("dhe-enabled %+v, want risk", v)
			}
			if p := profileOf(t, r, "win2012r2"); !p.Connects || p.Scenario != faults.ScenarioDHELeadingZero {
				t.Errorf("win2012r2 %+v, want it to connect with DHE, exposed to dhe-leading-zero", p)
			}
			if p := profileOf(t, r, "go-mssqldb"); p.Connects || p.Scenario != faults.ScenarioCipherMismatch {
				t.Errorf("go-mssqldb %+v, want cipher-mismatch (Go has no DHE)", p)
			}
		})
	}
}
