package tds

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestPasswordObfuscation(t *testing.T) {
	// MS-TDS §2.2.6.4 (docs/protocol.md "LOGIN7"): "secret" in UCS-2LE, nibbles swapped, XOR 0xA5.
	want := unhex(t, `92 A5 F3 A5 93 A5 82 A5 F3 A5 E2 A5`)
	u := appendUCS2(nil, "secret")
	got := ObfuscatePassword(u)
	if !bytes.Equal(got, want) {
		t.Fatalf("ObfuscatePassword = % X, want % X", got, want)
	}
	if !bytes.Equal(u, appendUCS2(nil, "secret")) {
		t.Error("ObfuscatePassword modified its input")
	}
	if back := DeobfuscatePassword(got); !bytes.Equal(back, u) {
		t.Errorf("DeobfuscatePassword = % X", back)
	}
	for i := range 256 {
		b := []byte{byte(i)}
		if got := DeobfuscatePassword(ObfuscatePassword(b)); got[0] != byte(i) {
			t.Fatalf("byte %#x does not round-trip", i)
		}
	}
}

func TestParseLogin7SpecSample(t *testing.T) {
	pkt := fixtureSpecLogin7Packet(t)
	l, err := ParseLogin7(pkt[HeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	want := &Login7{
		TDSVersion: VersionTDS72, PacketSize: 4096, ClientProgVer: 0x07000000, ClientPID: 256,
		OptionFlags1: 0xE0, OptionFlags2: 0x03, ClientLCID: 0x0409,
		HostName: "skostov1", UserName: "sa", AppName: "OSQL-32", LibraryName: "ODBC",
		ClientID: [6]byte{0x00, 0x50, 0x8B, 0xE2, 0xB7, 0x8F},
	}
	if !reflect.DeepEqual(l, want) {
		t.Fatalf("ParseLogin7 =\n%+v\nwant\n%+v", l, want)
	}
	if l.Password.IsSet() {
		t.Error("password set")
	}
	// Re-encoding differs from the sample only in ibExtension (the sample
	// points the unused pair at 128; Marshal writes 0 when there is no
	// extension), so compare with that pair patched.
	got := l.Marshal()
	exp := append([]byte{}, pkt[HeaderLen:]...)
	binary.LittleEndian.PutUint16(exp[56:], 0)
	if !bytes.Equal(got, exp) {
		t.Errorf("Marshal =\n% X\nwant\n% X", got, exp)
	}
}

func sampleLogin7() *Login7 {
	return &Login7{
		TDSVersion: VersionTDS74, PacketSize: 4096, ClientProgVer: 0x010B0002, ClientPID: 4242,
		OptionFlags1: 0xA0, OptionFlags2: 0x02, TypeFlags: 0x20, ClientTimeZone: -540, ClientLCID: 0x0411,
		HostName: "ワークステーション", UserName: "sa", Password: NewPassword("s3cr€t-🔑"),
		AppName: "tdsproxy", ServerName: "127.0.0.1", LibraryName: "go-mssqldb", Language: "us_english",
		Database: "master", ClientID: [6]byte{1, 2, 3, 4, 5, 6}, SSPI: []byte{0x4E, 0x54, 0x4C, 0x4D},
		AttachDBFile: `C:\data\x.mdf`, ChangePassword: NewPassword("n3w"),
		FeatureExt: []byte{0x04, 0x01, 0x00, 0x00, 0x00, 0x01, 0xFF},
	}
}

func TestLogin7RoundTrip(t *testing.T) {
	tests := []struct {
		name string
		l    *Login7
	}{
		{"full 7.4", sampleLogin7()},
		{"zero", &Login7{}},
		{"7.1 fixed part", &Login7{TDSVersion: VersionTDS71, UserName: "u", Password: NewPassword("p"), SSPI: []byte{9}}},
		{"long SSPI via cbSSPILong", &Login7{TDSVersion: VersionTDS74, SSPI: bytes.Repeat([]byte{0xAB}, 70000)}},
		{"SSPI of exactly 0xFFFF", &Login7{TDSVersion: VersionTDS74, SSPI: bytes.Repeat([]byte{0xCD}, 0xFFFF)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := tt.l.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := binary.LittleEndian.Uint32(raw); int(got) != len(raw) {
				t.Errorf("Length = %d, encoded %d", got, len(raw))
			}
			back, err := ParseLogin7(raw)
			if err != nil {
				t.Fatal(err)
			}
			want := *tt.l
			if len(want.FeatureExt) > 0 {
				want.OptionFlags3 |= OptionFlags3Extension
			}
			if !reflect.DeepEqual(back, &want) {
				t.Fatalf("round trip =\n%+v\nwant\n%+v", back, &want)
			}
			if back.Password.Reveal() != tt.l.Password.Reveal() || back.ChangePassword.Reveal() != tt.l.ChangePassword.Reveal() {
				t.Error("passwords differ")
			}
			if !bytes.Equal(back.Marshal(), raw) {
				t.Error("second Marshal differs")
			}
		})
	}
}

func TestLogin7FixedPartSize(t *testing.T) {
	for _, tt := range []struct {
		v    uint32
		want uint32 // ibHostName: data starts after the fixed part
	}{{VersionTDS71, 86}, {0x70000000, 86}, {VersionTDS72, 94}, {VersionTDS74, 94}, {VersionTDS80, 94}} {
		raw := (&Login7{TDSVersion: tt.v, HostName: "h"}).Marshal()
		if got := binary.LittleEndian.Uint16(raw[36:]); uint32(got) != tt.want {
			t.Errorf("version %#08x: ibHostName = %d, want %d", tt.v, got, tt.want)
		}
	}
	if _, err := (&Login7{TDSVersion: VersionTDS71, ChangePassword: NewPassword("x")}).Append(nil); !errors.Is(err, ErrLogin7Large) {
		t.Errorf("7.1 with ChangePassword: err = %v", err)
	}
}

func TestParseLogin7Errors(t *testing.T) {
	good := sampleLogin7().Marshal()
	patch := func(off int, v uint16) []byte {
		b := append([]byte{}, good...)
		binary.LittleEndian.PutUint16(b[off:], v)
		return b
	}
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"empty", nil, ErrLogin7Short},
		{"7 bytes", good[:7], ErrLogin7Short},
		{"declared > payload", good[:len(good)-1], ErrLogin7Length},
		{"declared < fixed part", func() []byte {
			b := append([]byte{}, good[:93]...)
			binary.LittleEndian.PutUint32(b, 93)
			return b
		}(), ErrLogin7Short},
		{"declared length huge", func() []byte {
			b := append([]byte{}, good...)
			binary.LittleEndian.PutUint32(b, 0xFFFFFFFF)
			return b
		}(), ErrLogin7Length},
		{"host name past end", patch(36, 0xFFF0), ErrLogin7Bounds},
		{"user name length past end", patch(42, 0x7FFF), ErrLogin7Bounds},
		{"password past end", patch(44, 0xFFFF), ErrLogin7Bounds},
		{"SSPI past end", patch(80, 0xFFFE), ErrLogin7Bounds},
		{"change password past end", patch(86, 0xFFFF), ErrLogin7Bounds},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ParseLogin7(tt.raw)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if l != nil {
				t.Error("non-nil Login7 on error")
			}
			if strings.Contains(err.Error(), "s3cr") {
				t.Error("error text contains the password")
			}
		})
	}
	t.Run("trailing bytes after Length are ignored", func(t *testing.T) {
		l, err := ParseLogin7(append(append([]byte{}, good...), 1, 2, 3))
		if err != nil || l.UserName != "sa" {
			t.Fatalf("%v, %v", l, err)
		}
	})
	t.Run("zero-length field with wild offset", func(t *testing.T) {
		b := patch(48, 0xFFFF)                   // ibAppName far past the end...
		binary.LittleEndian.PutUint16(b[50:], 0) // ...but cchAppName 0
		if l, err := ParseLogin7(b); err != nil || l.AppName != "" {
			t.Fatalf("zero-length app name: %v, %v", l, err)
		}
	})
}

func TestLogin7FeatureExt(t *testing.T) {
	t.Run("odd block kept to the end", func(t *testing.T) {
		l := &Login7{TDSVersion: VersionTDS74, FeatureExt: []byte{0x02, 0xFF, 0xFF, 0x00, 0x00, 0x01}}
		back, err := ParseLogin7(l.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back.FeatureExt, l.FeatureExt) {
			t.Errorf("FeatureExt = % X", back.FeatureExt)
		}
	})
	t.Run("terminator ends the block", func(t *testing.T) {
		raw := (&Login7{TDSVersion: VersionTDS74, FeatureExt: []byte{0x0A, 0x01, 0x00, 0x00, 0x00, 0x01, 0xFF}}).Marshal()
		raw = append(raw, 0xEE, 0xEE) // junk after the block, inside Length
		binary.LittleEndian.PutUint32(raw, uint32(len(raw)))
		back, err := ParseLogin7(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back.FeatureExt, []byte{0x0A, 0x01, 0x00, 0x00, 0x00, 0x01, 0xFF}) {
			t.Errorf("FeatureExt = % X", back.FeatureExt)
		}
	})
	t.Run("flag without extension", func(t *testing.T) {
		back, err := ParseLogin7((&Login7{TDSVersion: VersionTDS74, OptionFlags3: OptionFlags3Extension}).Marshal())
		if err != nil || back.FeatureExt != nil {
			t.Fatalf("%v, %v", back, err)
		}
	})
	t.Run("DWORD offset past the end", func(t *testing.T) {
		raw := (&Login7{TDSVersion: VersionTDS74, FeatureExt: []byte{0xFF}}).Marshal()
		ib := binary.LittleEndian.Uint16(raw[56:])
		binary.LittleEndian.PutUint32(raw[ib:], 0xFFFFFFF0)
		back, err := ParseLogin7(raw)
		if err != nil || back.FeatureExt != nil {
			t.Fatalf("%v, %v", back, err)
		}
	})
}

func TestClientProgVersion(t *testing.T) {
	for v, want := range map[uint32]string{0x010B0002: "1.11.2", 0: "0.0.0", 0x07000000: "7.0.0", 0xFFFFFFFF: "255.255.65535"} {
		if got := (&Login7{ClientProgVer: v}).ClientProgVersion(); got != want {
			t.Errorf("%#08x: %s, want %s", v, got, want)
		}
	}
}

func TestPasswordRedaction(t *testing.T) {
	const secret = "hunter2-Sup3rS3cret"
	l := sampleLogin7()
	l.Password = NewPassword(secret)
	l.ChangePassword = NewPassword(secret + "-new")
	obf := string(ObfuscatePassword(appendUCS2(nil, secret)))

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
		outputs = append(outputs,
			fmt.Sprintf(verb, l), fmt.Sprintf(verb, *l), fmt.Sprintf(verb, l.Password), fmt.Sprintf(verb, &l.Password))
	}
	outputs = append(outputs, fmt.Sprint(l.Password), fmt.Sprintln(l), l.Password.String(), l.Password.GoString())
	js, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(js))
	txt, _ := l.Password.MarshalText()
	outputs = append(outputs, string(txt))
	mapKey, err := json.Marshal(map[Password]int{l.Password: 1})
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(mapKey))

	for _, out := range outputs {
		if strings.Contains(out, secret) || strings.Contains(out, "hunter2") || strings.Contains(out, obf) {
			t.Errorf("output leaks the password: %s", out)
		}
	}
	if !strings.Contains(string(js), `"Password":"[REDACTED]"`) {
		t.Errorf("JSON = %s", js)
	}
	if got := fmt.Sprintf("%v|%#v|%s", Password{}, Password{}, NewPassword("")); got != "[EMPTY]|[EMPTY]|[EMPTY]" {
		t.Errorf("empty password prints %q", got)
	}
	if got := fmt.Sprintf("%+v", l.Password); got != "[REDACTED]" {
		t.Errorf("%%+v = %q", got)
	}
	if l.Password.Reveal() != secret || !l.Password.IsSet() {
		t.Error("Reveal/IsSet")
	}
}
