package tlsbridge

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	utls "github.com/refraction-networking/utls"
)

// MirrorClientHello against recorded ClientHellos (testdata/README.md):
// the hello utls builds from the mirror has the client's JA4, except for
// exactly what was dropped (cipher suites change JA4's count and hash;
// groups are not in JA4).
func TestMirrorClientHelloFixtures(t *testing.T) {
	for _, tc := range []struct {
		file        string
		wantDropped []string // prefixes every dropped item must have
		wantErr     bool     // nothing the bridge can complete is left
	}{
		{"clienthello-go126.bin", []string{"supported_group "}, false},
		{"clienthello-go126-strict.bin", []string{"supported_group "}, false},
		{"clienthello-utls-chrome133.bin", nil, false},
		{"tls12-dhe-openssl30-c2s.bin", []string{"cipher_suite "}, true}, // DHE only
		{"tls10-openssl30-c2s.bin", []string{"cipher_suite ", "supported_group "}, false},
		{"tls13-hrr-openssl30-c2s.bin", []string{"cipher_suite ", "supported_group "}, false},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "handshakes", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			hello, recVer, ok := FirstHandshake(b)
			if !ok {
				t.Fatal("no ClientHello in the fixture")
			}
			client, err := ParseClientHello(hello)
			if err != nil {
				t.Fatal(err)
			}
			host := client.ServerName
			m, err := MirrorClientHello(hello, recVer, host, host == "")
			if tc.wantErr {
				if err == nil || m == nil || len(m.Dropped) == 0 {
					t.Fatalf("MirrorClientHello = %v, %v; want an error listing the drops", m, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("MirrorClientHello: %v", err)
			}
			suites := 0
			for _, d := range m.Dropped {
				if strings.HasPrefix(d, "cipher_suite ") {
					suites++
				}
				if !hasAnyPrefix(d, tc.wantDropped) {
					t.Errorf("dropped %q", d)
				}
			}
			c1, c2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			uc := utls.UClient(c1, &utls.Config{ServerName: host, InsecureSkipVerify: true}, utls.HelloCustom)
			if err := uc.ApplyPreset(m.Spec); err != nil {
				t.Fatalf("ApplyPreset: %v", err)
			}
			if err := uc.BuildHandshakeState(); err != nil {
				t.Fatalf("BuildHandshakeState: %v", err)
			}
			up, err := ParseClientHello(uc.HandshakeState.Hello.Raw)
			if err != nil {
				t.Fatalf("the mirrored hello: %v", err)
			}
			cj, uj := client.JA4(), up.JA4()
			if suites == 0 {
				if cj != uj {
					t.Fatalf("JA4 client %s mirror %s, nothing but groups dropped (%q)", cj, uj, m.Dropped)
				}
				return
			}
			cn, _ := strconv.Atoi(cj[4:6])
			un, _ := strconv.Atoi(uj[4:6])
			if cj[:4] != uj[:4] || cj[6:10] != uj[6:10] || cj[len(cj)-12:] != uj[len(uj)-12:] || cn-un != suites {
				t.Fatalf("JA4 client %s mirror %s: want equal but for %d suites", cj, uj, suites)
			}
			t.Logf("JA4 client %s mirror %s, %d dropped", cj, uj, len(m.Dropped))
		})
	}
}

func hasAnyPrefix(s string, ps []string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
