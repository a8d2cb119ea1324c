package tds

import (
	"reflect"
	"testing"
)

// The observer's table (ScopeOf) and the server's (NegotiateEncryption) are
// two faces of one rule: whatever a server answers, an observer of the
// request and the reply must derive the scope the server meant.
func TestScopeOfAgreesWithNegotiateEncryption(t *testing.T) {
	requests := []Encryption{EncryptOff, EncryptOn, EncryptNotSup, EncryptReq, EncryptOn | EncryptClientCert}
	servers := []Encryption{EncryptOff, EncryptOn, EncryptNotSup, EncryptReq}
	for _, c := range requests {
		for _, s := range servers {
			reply, want := NegotiateEncryption(c, s)
			if got := ScopeOf(c, reply); got != want {
				t.Errorf("client %v, server %v: reply %v, ScopeOf = %v, NegotiateEncryption scope = %v", c, s, reply, got, want)
			}
		}
	}
}

func TestPreloginOddities(t *testing.T) {
	ver := []byte{16, 0, 0x10, 0x00, 0, 0}
	normal := (&Prelogin{Options: []PreloginOption{{PreloginVersion, ver}, {PreloginEncryption, []byte{0}}}}).Marshal()
	// Two options whose data overlap: VERSION at 11+6, ENCRYPTION at 12+1.
	overlap := []byte{0x00, 0, 11, 0, 6, 0x01, 0, 12, 0, 1, 0xFF, 16, 0, 0x10, 0, 0, 0}
	cases := []struct {
		name    string
		payload []byte
		want    []string
	}{
		{"normal", normal, nil},
		{"encryption first", (&Prelogin{Options: []PreloginOption{{PreloginEncryption, []byte{0}}, {PreloginVersion, ver}}}).Marshal(),
			[]string{"VERSION is not the first option"}},
		{"twice", (&Prelogin{Options: []PreloginOption{{PreloginVersion, ver}, {PreloginEncryption, []byte{0}}, {PreloginEncryption, []byte{1}}}}).Marshal(),
			[]string{"option ENCRYPTION appears more than once (the first is used)"}},
		{"overlap", overlap, []string{"data of options VERSION and ENCRYPTION overlap"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePrelogin(tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Oddities(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Oddities = %q, want %q", got, tc.want)
			}
		})
	}
	// A hostile table repeating one option is reported a bounded number of times.
	many := &Prelogin{}
	for range 100 {
		many.Options = append(many.Options, PreloginOption{PreloginVersion, ver})
	}
	p, err := ParsePrelogin(many.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.Oddities()); n > maxOddities+1 {
		t.Errorf("%d oddities for 100 repeats, want at most %d", n, maxOddities+1)
	}
}
