package tlsbridge

import (
	"bytes"
	"errors"
	"testing"
)

func TestAlertNames(t *testing.T) {
	tests := []struct {
		desc uint8
		name string
	}{
		{0, "close_notify"}, {10, "unexpected_message"}, {20, "bad_record_mac"},
		{40, "handshake_failure"}, {42, "bad_certificate"}, {47, "illegal_parameter"},
		{70, "protocol_version"}, {71, "insufficient_security"}, {80, "internal_error"},
		{86, "inappropriate_fallback"}, {109, "missing_extension"}, {116, "certificate_required"},
		{120, "no_application_protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AlertName(tt.desc); got != tt.name {
				t.Errorf("AlertName(%d) = %q", tt.desc, got)
			}
			if d, ok := AlertByName(tt.name); !ok || d != tt.desc {
				t.Errorf("AlertByName(%q) = %d, %v", tt.name, d, ok)
			}
		})
	}
	if got := AlertName(200); got != "alert(200)" {
		t.Errorf("AlertName(200) = %q", got)
	}
	for in, want := range map[string]uint8{"Handshake-Failure": 40, " PROTOCOL_VERSION ": 70, "40": 40, "insufficient security": 71} {
		if d, ok := AlertByName(in); !ok || d != want {
			t.Errorf("AlertByName(%q) = %d, %v; want %d", in, d, ok, want)
		}
	}
	for _, in := range []string{"", "handshake", "256", "-1"} {
		if _, ok := AlertByName(in); ok {
			t.Errorf("AlertByName(%q) accepted", in)
		}
	}
	if s := (Alert{Level: AlertLevelFatal, Description: AlertHandshakeFailure}).String(); s != "fatal handshake_failure(40)" {
		t.Errorf("String = %q", s)
	}
}

func TestAlertRecord(t *testing.T) {
	rec := AlertRecord(VersionTLS12, AlertLevelFatal, AlertProtocolVersion)
	if want := []byte{21, 3, 3, 0, 2, 2, 70}; !bytes.Equal(rec, want) {
		t.Fatalf("AlertRecord = % x, want % x", rec, want)
	}
	evs := feedAll(t, ServerToClient, rec)
	if len(evs) != 1 || evs[0].Kind != EventAlert || *evs[0].Alert != (Alert{2, 70}) {
		t.Fatalf("events %v", summary(evs))
	}
	a, err := ParseAlert(rec[RecordHeaderLen:])
	if err != nil || a != (Alert{2, 70}) {
		t.Fatalf("ParseAlert: %v, %v", a, err)
	}
	if _, err := ParseAlert([]byte{2}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ParseAlert short: %v", err)
	}
}

func TestFatalAlertRecord(t *testing.T) {
	rec := FatalAlertRecord(AlertHandshakeFailure)
	h, err := ParseRecordHeader(rec)
	if err != nil || h.Type != ContentAlert || h.Version != VersionTLS12 || h.Length != 2 {
		t.Fatalf("header %+v, %v", h, err)
	}
	a, err := ParseAlert(rec[RecordHeaderLen:])
	if err != nil || a.Level != AlertLevelFatal || a.Description != AlertHandshakeFailure {
		t.Fatalf("alert %+v, %v", a, err)
	}
}
