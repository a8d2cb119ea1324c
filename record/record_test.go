package record

import (
	"encoding/json"
	"testing"
)

// The typed names keep the record's JSON as it was: plain strings.
func TestRecordJSONNames(t *testing.T) {
	r := Record{Protocol: ProtocolStrict, Phase: PhaseLoginResponse, Login: &LoginInfo{Outcome: LoginFailed},
		Close: &CloseInfo{By: SideServer, Kind: CloseRST, Phase: PhaseTLSClientHello}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["protocol"] != "tds8-strict" || m["phase"] != "login.response" {
		t.Errorf("protocol, phase = %v, %v", m["protocol"], m["phase"])
	}
	if l := m["login"].(map[string]any); l["outcome"] != "failed" {
		t.Errorf("login.outcome = %v", l["outcome"])
	}
	if c := m["close"].(map[string]any); c["by"] != "server" || c["kind"] != "rst" || c["phase"] != "tls.client_hello" {
		t.Errorf("close = %v", c)
	}
}

func TestActed(t *testing.T) {
	for _, a := range []string{"", ActionPass, ActionSkip, ActionArmed} {
		if (FaultEvent{Action: a}).Acted() {
			t.Errorf("%q counted as an injection", a)
		}
	}
	if !(FaultEvent{Action: "close:rst"}).Acted() {
		t.Error("close:rst not counted as an injection")
	}
}
