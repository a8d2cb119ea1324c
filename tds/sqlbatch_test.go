package tds

import (
	"bytes"
	"errors"
	"testing"
)

func TestSQLBatchFixture(t *testing.T) {
	raw := fixtureSQLBatchSelect1(t)
	if got := AppendSQLBatch(nil, "SELECT 1", 0); !bytes.Equal(got, raw) {
		t.Fatalf("AppendSQLBatch =\n% X\nwant\n% X", got, raw)
	}
	text, err := ParseSQLBatch(raw)
	if err != nil || text != "SELECT 1" {
		t.Fatalf("ParseSQLBatch = %q, %v", text, err)
	}
}

func TestSQLBatchRoundTrip(t *testing.T) {
	for _, text := range []string{"", "SELECT 1", "SELECT N'日本語 🌍' AS [x];\r\nGO", string(make([]byte, 40000))} {
		for _, txn := range []uint64{0, 0x0102030405060708} {
			raw := AppendSQLBatch([]byte{0xAA}, text, txn)[1:]
			got, err := ParseSQLBatch(raw)
			if err != nil || got != text {
				t.Fatalf("round trip of %d chars: %q, %v", len(text), got[:min(len(got), 20)], err)
			}
		}
	}
}

func TestParseSQLBatchErrors(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		bad  bool
	}{
		{"empty", ``, true},
		{"short total", `16 00 00`, true},
		{"total below 4", `03 00 00 00`, true},
		{"total past end", `FF 00 00 00 00 00`, true},
		{"header length below 6", `0C 00 00 00 05 00 00 00 02 00 00 00`, true},
		{"header past total", `0A 00 00 00 20 00 00 00 02 00`, true},
		{"header length wraps", `0A 00 00 00 FF FF FF FF 02 00`, true},
		{"odd text", `04 00 00 00 41 00 42`, true},
		{"no headers, just the total", `04 00 00 00 41 00`, false},
		{"unknown header type kept skipped", `0A 00 00 00 06 00 00 00 09 00 41 00`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSQLBatch(unhex(t, tt.raw))
			if tt.bad && err == nil {
				t.Fatal("accepted")
			}
			if !tt.bad && err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, err := ParseSQLBatch(unhex(t, `FF 00 00 00 00 00`)); !errors.Is(err, ErrBadAllHeaders) {
		t.Errorf("err = %v", err)
	}
}
