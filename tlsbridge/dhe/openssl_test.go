package dhe

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// opensslName is OpenSSL's name for one of the engine's suites.
func opensslName(id uint16) string {
	return map[uint16]string{
		TLS_DHE_RSA_WITH_AES_128_GCM_SHA256: "DHE-RSA-AES128-GCM-SHA256",
		TLS_DHE_RSA_WITH_AES_256_GCM_SHA384: "DHE-RSA-AES256-GCM-SHA384",
		TLS_DHE_RSA_WITH_AES_128_CBC_SHA256: "DHE-RSA-AES128-SHA256",
		TLS_DHE_RSA_WITH_AES_256_CBC_SHA256: "DHE-RSA-AES256-SHA256",
		TLS_DHE_RSA_WITH_AES_128_CBC_SHA:    "DHE-RSA-AES128-SHA",
		TLS_DHE_RSA_WITH_AES_256_CBC_SHA:    "DHE-RSA-AES256-SHA",
	}[id]
}

func needOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	return path
}

// dhParamFile writes g as PKCS #3 DHParameter PEM for openssl -dhparam.
func dhParamFile(t *testing.T, dir string, g *Group) string {
	t.Helper()
	der, err := asn1.Marshal(struct{ P, G any }{g.P, g.G})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, g.Name+".pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "DH PARAMETERS", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// opensslCipher is the -cipher value: TLS 1.0/1.1 and 1024-bit groups
// need security level 0 in OpenSSL 3.
func opensslCipher(id uint16, g *Group, v uint16) string {
	name := opensslName(id)
	if g.Bits() < 2048 || v < VersionTLS12 {
		name += ":@SECLEVEL=0"
	}
	return name
}

// opensslVersionFlag is the s_client/s_server flag for a version.
func opensslVersionFlag(v uint16) string {
	return map[uint16]string{VersionTLS10: "-tls1", VersionTLS11: "-tls1_1", VersionTLS12: "-tls1_2"}[v]
}

type opensslCase struct {
	v     uint16
	suite uint16
	group *Group
}

// opensslCases: every suite with every group at TLS 1.2, and the CBC-SHA
// suites at TLS 1.0 and 1.1.
func opensslCases() []opensslCase {
	var cs []opensslCase
	for _, s := range suites {
		for _, name := range Groups() {
			cs = append(cs, opensslCase{VersionTLS12, s.id, groups[name]})
		}
	}
	for _, v := range []uint16{VersionTLS10, VersionTLS11} {
		for _, s := range suites {
			if s.usable(v) {
				cs = append(cs, opensslCase{v, s.id, groupFFDHE2048})
			}
		}
	}
	return cs
}

func (c opensslCase) String() string {
	return fmt.Sprintf("%04x/%s/%s", c.v, opensslName(c.suite), c.group.Name)
}

// TestOpenSSLClient: the engine as server, openssl s_client as client.
func TestOpenSSLClient(t *testing.T) {
	bin := needOpenSSL(t)
	cert, _, _ := testCert(t)
	for _, tc := range opensslCases() {
		t.Run(tc.String(), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			type res struct {
				err   error
				state ConnectionState
			}
			done := make(chan res, 1)
			go func() {
				raw, err := ln.Accept()
				if err != nil {
					done <- res{err: err}
					return
				}
				defer raw.Close()
				_ = raw.SetDeadline(time.Now().Add(15 * time.Second))
				sc := Server(raw, &Config{Certificates: []tls.Certificate{cert}, Group: tc.group, MinVersion: VersionTLS10})
				buf := make([]byte, 5)
				if _, err = io.ReadFull(sc, buf); err == nil && string(buf) != "ping\n" {
					err = fmt.Errorf("read %q", buf)
				}
				if err == nil {
					_, err = sc.Write([]byte("pong\n"))
				}
				st := sc.ConnectionState()
				sc.Close()
				done <- res{err, st}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "s_client", "-connect", ln.Addr().String(), "-brief", "-ign_eof",
				opensslVersionFlag(tc.v), "-cipher", opensslCipher(tc.suite, tc.group, tc.v))
			cmd.Stdin = strings.NewReader("ping\n")
			out, err := cmd.CombinedOutput()
			r := <-done
			if r.err != nil || err != nil {
				t.Fatalf("engine: %v; s_client: %v\n%s", r.err, err, out)
			}
			if !bytes.Contains(out, []byte("pong")) || !bytes.Contains(out, []byte("Ciphersuite: "+opensslName(tc.suite))) ||
				!bytes.Contains(out, []byte(fmt.Sprintf("Server Temp Key: DH, %d bits", tc.group.Bits()))) {
				t.Errorf("s_client output:\n%s", out)
			}
			if r.state.CipherSuite != tc.suite || r.state.Version != tc.v || r.state.Group != tc.group.Name {
				t.Errorf("engine state %+v", r.state)
			}
		})
	}
}

// TestOpenSSLServer: the engine as client, openssl s_server as server.
func TestOpenSSLServer(t *testing.T) {
	bin := needOpenSSL(t)
	dir := t.TempDir()
	cert, certPEM, keyPEM := testCert(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range opensslCases() {
		t.Run(tc.String(), func(t *testing.T) {
			addr, rest := startSServer(t, bin, dir, certFile, keyFile, tc)
			raw, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			_ = raw.SetDeadline(time.Now().Add(15 * time.Second))
			ccfg := clientTrusting(cert)
			ccfg.MinVersion, ccfg.MaxVersion, ccfg.CipherSuites = tc.v, tc.v, []uint16{tc.suite}
			cc := Client(raw, ccfg)
			if _, err := cc.Write([]byte("ping\n")); err != nil {
				t.Fatalf("engine client: %v\ns_server: %s", err, rest())
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(cc, buf); err != nil || string(buf) != "gnip\n" {
				t.Fatalf("engine client read %q, %v", buf, err)
			}
			st := cc.ConnectionState()
			if st.CipherSuite != tc.suite || st.Version != tc.v || st.Group != tc.group.Name || st.PrimeBits != tc.group.Bits() {
				t.Errorf("engine state %+v", st)
			}
			cc.Close()
		})
	}
}

// startSServer runs `openssl s_server -rev` for one connection with the
// case's group, version and suite, and returns its address and a function
// returning what it printed after ACCEPT.
func startSServer(t *testing.T, bin, dir, certFile, keyFile string, tc opensslCase) (string, func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	cmd := exec.CommandContext(ctx, bin, "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-rev",
		"-cert", certFile, "-key", keyFile, "-dhparam", dhParamFile(t, dir, tc.group),
		opensslVersionFlag(tc.v), "-cipher", opensslCipher(tc.suite, tc.group, tc.v))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	addr, rest := opensslAccept(t, stdout)
	return addr, func() string { return rest() + stderr.String() }
}

// opensslAccept reads s_server's stdout up to its "ACCEPT host:port" line
// and returns the address, and a function returning what followed.
func opensslAccept(t *testing.T, r io.Reader) (string, func() string) {
	t.Helper()
	br := bufio.NewReader(r)
	var seen strings.Builder
	for range 50 {
		line, err := br.ReadString('\n')
		seen.WriteString(line)
		if a, ok := strings.CutPrefix(strings.TrimSpace(line), "ACCEPT "); ok {
			rest := make(chan string, 1)
			go func() { b, _ := io.ReadAll(br); rest <- string(b) }()
			return a, func() string {
				select {
				case s := <-rest:
					return s
				case <-time.After(2 * time.Second):
					return "(s_server still running)"
				}
			}
		}
		if err != nil {
			break
		}
	}
	t.Fatalf("s_server did not print ACCEPT:\n%s", seen.String())
	return "", nil
}

// TestOpenSSLServerLeadingZero: the grinding engine client against
// openssl s_server. OpenSSL strips Z (RFC 5246 §8.1.2), so a client that
// pads it fails every time, with OpenSSL's bad_record_mac alert, and a
// client that strips it succeeds although Z starts with a zero byte.
func TestOpenSSLServerLeadingZero(t *testing.T) {
	bin := needOpenSSL(t)
	dir := t.TempDir()
	cert, certPEM, keyPEM := testCert(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, z := range []ZEncoding{ZPad, ZStrip} {
		for _, y := range []YEncoding{YMinimal, YPadded} {
			t.Run(z.String()+"/"+y.String(), func(t *testing.T) {
				tc := opensslCase{VersionTLS12, TLS_DHE_RSA_WITH_AES_128_GCM_SHA256, groupFFDHE2048}
				addr, rest := startSServer(t, bin, dir, certFile, keyFile, tc)
				raw, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer raw.Close()
				_ = raw.SetDeadline(time.Now().Add(15 * time.Second))
				ccfg := clientTrusting(cert)
				ccfg.Z, ccfg.Y, ccfg.Grind = z, y, true
				cc := Client(raw, ccfg)
				err = cc.Handshake()
				st := cc.ConnectionState()
				if !st.ZLeadingZero {
					t.Fatalf("no leading zero after grinding: %+v", st)
				}
				if z == ZStrip {
					if err != nil {
						t.Fatalf("strip against OpenSSL: %v\ns_server: %s", err, rest())
					}
					cc.Close()
					return
				}
				var ae *AlertError
				if !errors.As(err, &ae) || !ae.Remote || ae.Description != alertBadRecordMAC {
					t.Errorf("pad against OpenSSL: %v, want a remote bad_record_mac alert\ns_server: %s", err, rest())
				}
			})
		}
	}
}

// TestOpenSSLClientLeadingZero: openssl s_client against an engine server
// in the lz2049 group, where Z nearly always starts with a zero byte: a
// padding server fails it (s_client prints OpenSSL's alert text), a
// stripping one serves it.
func TestOpenSSLClientLeadingZero(t *testing.T) {
	bin := needOpenSSL(t)
	cert, _, _ := testCert(t)
	for _, z := range []ZEncoding{ZPad, ZStrip} {
		t.Run(z.String(), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			type res struct {
				err   error
				state ConnectionState
			}
			done := make(chan res, 1)
			go func() {
				raw, err := ln.Accept()
				if err != nil {
					done <- res{err: err}
					return
				}
				defer raw.Close()
				_ = raw.SetDeadline(time.Now().Add(15 * time.Second))
				sc := Server(raw, &Config{Certificates: []tls.Certificate{cert}, Group: groupLZ2049, Z: z})
				err = sc.Handshake()
				if err == nil {
					_, err = sc.Write([]byte("pong\n"))
					sc.Close()
				}
				done <- res{err, sc.ConnectionState()}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "s_client", "-connect", ln.Addr().String(), "-brief", "-ign_eof", "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256")
			cmd.Stdin = strings.NewReader("")
			out, cerr := cmd.CombinedOutput()
			r := <-done
			if !r.state.ZLeadingZero {
				t.Fatalf("no leading zero in lz2049: %+v", r.state)
			}
			if z == ZStrip {
				if r.err != nil || cerr != nil || !bytes.Contains(out, []byte("pong")) {
					t.Fatalf("engine %v, s_client %v:\n%s", r.err, cerr, out)
				}
				return
			}
			if !errors.Is(r.err, ErrBadFinished) || cerr == nil || !bytes.Contains(out, []byte("alert bad record mac")) {
				t.Errorf("engine %v, s_client %v:\n%s", r.err, cerr, out)
			}
		})
	}
}
