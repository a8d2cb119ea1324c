package proxy

import (
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	"github.com/tdsproxy/tdsproxy/tlsbridge"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// TestKeyExchangeInfoNamesDHGroup: the record of a DHE handshake names the
// group of the ServerKeyExchange's p and g (dh_group), or "custom".
func TestKeyExchangeInfoNamesDHGroup(t *testing.T) {
	for _, name := range dhe.Groups() {
		g, err := dhe.GroupByName(name)
		if err != nil {
			t.Fatal(err)
		}
		ki := keyExchangeInfo(&tlsbridge.ServerKeyExchange{Kind: "DHE", Prime: g.P.Bytes(), Generator: g.G, PrimeBits: g.P.BitLen()})
		if ki.DHGroup != name || ki.DHPrimeBits != g.P.BitLen() {
			t.Errorf("%s: dh_group %q, %d bits", name, ki.DHGroup, ki.DHPrimeBits)
		}
		b, _ := json.Marshal(ki)
		if !strings.Contains(string(b), `"dh_group":"`+name+`"`) {
			t.Errorf("%s: JSON %s", name, b)
		}
	}
	// 2^127 - 1, a prime no built-in group uses.
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 127), big.NewInt(1))
	ki := keyExchangeInfo(&tlsbridge.ServerKeyExchange{Kind: "DHE", Prime: p.Bytes(), Generator: big.NewInt(3), PrimeBits: 127})
	if ki.DHGroup != "custom" {
		t.Errorf("custom prime: dh_group %q", ki.DHGroup)
	}
	if ki := keyExchangeInfo(&tlsbridge.ServerKeyExchange{Kind: "ECDHE", CurveID: 29}); ki.DHGroup != "" {
		t.Errorf("ECDHE: dh_group %q", ki.DHGroup)
	}
}
