package tds

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestTokenEncodersMatchFixtures(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{
			"login response",
			func() []byte {
				b := AppendEnvChange(nil, EnvDatabase, "master", "")
				b = AppendLoginAck(b, LoginAck{Interface: LoginAckInterfaceTSQL, TDSVersion: VersionTDS74,
					ProgName: "Microsoft SQL Server", ProgVersion: [4]byte{15, 0, 0x07, 0xD0}})
				return AppendDone(b, TokenDone, DoneFinal, 0, 0)
			}(),
			fixtureLoginResponse(t),
		},
		{
			"login failed",
			AppendDone(AppendError(nil, ServerMessage{Number: 18456, State: 1, Class: 14,
				Message: "Login failed for user 'sa'.", ServerName: "emu1", Line: 1}), TokenDone, DoneError, 0, 0),
			fixtureLoginFailed(t),
		},
		{
			"select 1",
			func() []byte {
				cols := []Column{{Type: ColInt4}}
				b := AppendColMetadata(nil, cols)
				b, err := AppendRow(b, cols, []any{int32(1)})
				if err != nil {
					t.Fatal(err)
				}
				return AppendDone(b, TokenDone, DoneCount, CurCmdSelect, 1)
			}(),
			fixtureSelect1Result(t),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Equal(tt.got, tt.want) {
				t.Errorf("encoded\n% X\nwant\n% X", tt.got, tt.want)
			}
		})
	}
}

func TestParseLoginResponseFixtures(t *testing.T) {
	t.Run("success", func(t *testing.T) {
		r, err := ParseLoginResponse(fixtureLoginResponse(t))
		if err != nil {
			t.Fatal(err)
		}
		want := &LoginResponse{
			Ack: &LoginAck{Interface: 1, TDSVersion: VersionTDS74, ProgName: "Microsoft SQL Server",
				ProgVersion: [4]byte{15, 0, 7, 0xD0}},
			EnvChanges: []EnvChange{{Type: EnvDatabase, New: "master"}},
			Done:       &Done{Token: TokenDone},
			Tokens:     []TokenType{TokenEnvChange, TokenLoginAck, TokenDone},
		}
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("got  %+v\nwant %+v", r, want)
		}
	})
	t.Run("failure", func(t *testing.T) {
		r, err := ParseLoginResponse(fixtureLoginFailed(t))
		if err != nil {
			t.Fatal(err)
		}
		if r.Ack != nil || len(r.Errors) != 1 || r.Errors[0].Number != 18456 || r.Errors[0].Message != "Login failed for user 'sa'." {
			t.Fatalf("got %+v", r)
		}
		if r.Done == nil || r.Done.Status != DoneError {
			t.Fatalf("Done = %+v", r.Done)
		}
	})
}

func TestLoginResponseRoundTrip(t *testing.T) {
	want := &LoginResponse{
		Ack: &LoginAck{Interface: 1, TDSVersion: VersionTDS74, ProgName: "Microsoft SQL Server", ProgVersion: [4]byte{16, 0, 0x03, 0xE8}},
		Infos: []ServerMessage{
			{Number: 5701, State: 2, Class: 0, Message: "Changed database context to 'master'.", ServerName: "emu", Line: 1},
			{Number: 5703, State: 1, Class: 0, Message: "Changed language setting to us_english.", ServerName: "emu", ProcName: "p", Line: -1},
		},
		Errors: []ServerMessage{{Number: 4060, State: 1, Class: 11, Message: "Cannot open database \"x\" requested by the login. ✗", ServerName: "emu"}},
		EnvChanges: []EnvChange{
			{Type: EnvDatabase, New: "master", Old: ""},
			{Type: EnvSQLCollation, NewBytes: []byte{0x09, 0x04, 0xD0, 0x00, 0x34}, OldBytes: []byte{}},
			{Type: EnvLanguage, New: "us_english"},
			{Type: EnvPacketSize, New: "4096", Old: "4096"},
			{Type: EnvBeginTran, NewBytes: []byte{1, 2, 3, 4, 5, 6, 7, 8}, OldBytes: []byte{}},
		},
		FeatureExtAck: []FeatureAck{{ID: 0x0A, Data: []byte{1}}, {ID: 0x02, Data: []byte{}}},
		Done:          &Done{Token: TokenDone, Status: DoneFinal},
	}
	b := AppendEnvChange(nil, EnvDatabase, "master", "")
	coll := DefaultCollation()
	b = AppendEnvChangeBytes(b, EnvSQLCollation, coll[:], nil)
	b = AppendInfo(b, want.Infos[0])
	b = AppendEnvChange(b, EnvLanguage, "us_english", "")
	b = AppendInfo(b, want.Infos[1])
	b = AppendEnvChange(b, EnvPacketSize, "4096", "4096")
	b = AppendEnvChangeBytes(b, EnvBeginTran, want.EnvChanges[4].NewBytes, nil)
	b = AppendError(b, want.Errors[0])
	b = AppendLoginAck(b, *want.Ack)
	b = AppendFeatureExtAck(b, want.FeatureExtAck)
	b = AppendDone(b, TokenDone, DoneFinal, 0, 0)
	got, err := ParseLoginResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	want.Tokens = []TokenType{TokenEnvChange, TokenEnvChange, TokenInfo, TokenEnvChange, TokenInfo, TokenEnvChange,
		TokenEnvChange, TokenError, TokenLoginAck, TokenFeatureExtAck, TokenDone}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseLoginResponseStops(t *testing.T) {
	good := fixtureLoginResponse(t)
	t.Run("unknown token", func(t *testing.T) {
		b := append(AppendEnvChange(nil, EnvDatabase, "db", ""), 0xC3, 1, 2, 3)
		r, err := ParseLoginResponse(b)
		if !errors.Is(err, ErrUnknownToken) || !strings.Contains(err.Error(), "0xC3") {
			t.Fatalf("err = %v", err)
		}
		if len(r.EnvChanges) != 1 || r.EnvChanges[0].New != "db" {
			t.Errorf("partial result lost: %+v", r)
		}
	})
	t.Run("COLMETADATA is not a login token", func(t *testing.T) {
		_, err := ParseLoginResponse(fixtureSelect1Result(t))
		if !errors.Is(err, ErrUnknownToken) || !strings.Contains(err.Error(), "COLMETADATA") {
			t.Fatalf("err = %v", err)
		}
	})
	boundaries := map[int]bool{18: true, 71: true} // after ENVCHANGE, after LOGINACK
	for n := 1; n < len(good); n++ {
		if boundaries[n] {
			continue
		}
		r, err := ParseLoginResponse(good[:n])
		if !errors.Is(err, ErrTokenTruncated) {
			t.Fatalf("truncated to %d: err = %v", n, err)
		}
		if n >= 18 && len(r.EnvChanges) != 1 {
			t.Fatalf("truncated to %d: lost the complete ENVCHANGE", n)
		}
	}
	t.Run("LOGINACK shorter than its fields", func(t *testing.T) {
		_, err := ParseLoginResponse([]byte{TokenLoginAck, 3, 0, 1, 0x74, 0})
		if !errors.Is(err, ErrTokenTruncated) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ENVCHANGE of unknown type keeps the rest raw", func(t *testing.T) {
		r, err := ParseLoginResponse([]byte{TokenEnvChange, 4, 0, 0x63, 0xAA, 0xBB, 0xCC})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.EnvChanges[0]; got.Type != 0x63 || !bytes.Equal(got.NewBytes, []byte{0xAA, 0xBB, 0xCC}) {
			t.Errorf("EnvChange = %+v", got)
		}
	})
	t.Run("routing", func(t *testing.T) {
		// §2.2.7.9 ROUTING: US_VARBYTE new value (protocol 0 TCP, port 1433, US_VARCHAR server), old value 0x0000.
		val := []byte{0x00, 0x99, 0x05, 0x01, 0x00, 'h', 0}
		body := append([]byte{byte(EnvRouting), byte(len(val)), 0}, val...)
		body = append(body, 0, 0)
		b := append([]byte{TokenEnvChange, byte(len(body)), 0}, body...)
		r, err := ParseLoginResponse(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.EnvChanges[0].NewBytes, val) {
			t.Errorf("routing = % X", r.EnvChanges[0].NewBytes)
		}
	})
	t.Run("TDS 7.1 two-byte line number", func(t *testing.T) {
		b := AppendInfo(nil, ServerMessage{Number: 1, Message: "m", Line: 7})
		b = b[:len(b)-2] // keep only the low two bytes of the line number
		b[1] -= 2        // and shorten the token length to match
		r, err := ParseLoginResponse(b)
		if err != nil {
			t.Fatal(err)
		}
		if r.Infos[0].Line != 7 {
			t.Errorf("Line = %d", r.Infos[0].Line)
		}
	})
	t.Run("SSPI, FEDAUTHINFO, RETURNSTATUS, ORDER", func(t *testing.T) {
		b := []byte{TokenSSPI, 2, 0, 0xA1, 0xA2,
			TokenFedAuthInfo, 3, 0, 0, 0, 1, 2, 3,
			TokenReturnStatus, 0, 0, 0, 0,
			TokenOrder, 2, 0, 1, 0}
		b = AppendDone(b, TokenDoneProc, DoneMore, 0, 0)
		r, err := ParseLoginResponse(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.SSPI, []byte{0xA1, 0xA2}) || !bytes.Equal(r.FedAuthInfo, []byte{1, 2, 3}) ||
			r.Done.Token != TokenDoneProc || r.Done.Status != DoneMore {
			t.Errorf("%+v", r)
		}
	})
	t.Run("FEDAUTHINFO length past end", func(t *testing.T) {
		_, err := ParseLoginResponse([]byte{TokenFedAuthInfo, 0xFF, 0xFF, 0xFF, 0xFF, 1})
		if !errors.Is(err, ErrTokenTruncated) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestResultRoundTrip(t *testing.T) {
	cols := []Column{
		{Name: "id", Type: ColInt4},
		{Name: "big", Type: ColInt8},
		{Name: "tiny", Type: ColIntN, Size: 1, Nullable: true},
		{Name: "small", Type: ColIntN, Size: 2, Nullable: true},
		{Name: "n", Type: ColIntN, Size: 4, Nullable: true},
		{Name: "bign", Type: ColIntN, Size: 8, Nullable: true},
		{Name: "名前", Type: ColNVarChar, Size: 100, Nullable: true},
		{Name: "code", Type: ColBigVarChar, Size: 10},
		{Name: "blob", Type: ColBigVarBinary, Size: MaxVarLen, Nullable: true},
	}
	rows := [][]any{
		{int32(1), int64(-1 << 40), uint8(255), int16(-300), int32(70000), int64(1 << 62), "héllo 🌍", "ABC", bytes.Repeat([]byte{0xEE}, 8000)},
		{int32(-2147483648), int64(0), nil, nil, nil, nil, nil, "", nil},
		{int32(3), int64(3), uint8(0), int16(0), int32(0), int64(0), "", "x", []byte{}},
	}
	b := AppendColMetadata(nil, cols)
	for _, r := range rows {
		var err error
		if b, err = AppendRow(b, cols, r); err != nil {
			t.Fatal(err)
		}
	}
	b = AppendInfo(b, ServerMessage{Number: 1, Message: "hi"})
	b = AppendDone(b, TokenDoneInProc, DoneMore|DoneCount, CurCmdSelect, 3)
	b = append(b, TokenReturnStatus, 0xFE, 0xFF, 0xFF, 0xFF)
	b = AppendDone(b, TokenDoneProc, DoneFinal, 0, 0)
	res, err := ParseResult(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Columns) != len(cols) {
		t.Fatalf("Columns = %+v", res.Columns)
	}
	for i, c := range res.Columns {
		want := cols[i]
		if want.Type == ColInt4 || want.Type == ColInt8 {
			want.Size = 0
		}
		if c != want {
			t.Errorf("column %d = %+v, want %+v", i, c, want)
		}
	}
	if !reflect.DeepEqual(res.Rows, rows) {
		t.Errorf("Rows =\n%v\nwant\n%v", res.Rows, rows)
	}
	if len(res.Infos) != 1 || len(res.Done) != 2 || res.Done[0].RowCount != 3 || res.Done[0].Status != DoneMore|DoneCount ||
		!reflect.DeepEqual(res.ReturnStatus, []int32{-2}) {
		t.Errorf("result = %+v", res)
	}
}

func TestParseResultSelect1(t *testing.T) {
	res, err := ParseResult(fixtureSelect1Result(t))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Rows, [][]any{{int32(1)}}) || len(res.Done) != 1 ||
		res.Done[0] != (Done{Token: TokenDone, Status: DoneCount, CurCmd: CurCmdSelect, RowCount: 1}) {
		t.Fatalf("%+v", res)
	}
}

func TestParseResultNBCRow(t *testing.T) {
	cols := []Column{{Name: "a", Type: ColIntN, Size: 4}, {Name: "b", Type: ColNVarChar, Size: 8}, {Name: "c", Type: ColInt4}}
	b := AppendColMetadata(nil, cols)
	// §2.2.7.15 NBCROW: bitmap bit 1 set (column b NULL), then a and c.
	b = append(b, TokenNBCRow, 0x02, 4, 7, 0, 0, 0, 9, 0, 0, 0)
	res, err := ParseResult(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Rows, [][]any{{int32(7), nil, int32(9)}}) {
		t.Fatalf("Rows = %v", res.Rows)
	}
}

func TestAppendRowErrors(t *testing.T) {
	tests := []struct {
		name string
		col  Column
		v    any
	}{
		{"string in INT4", Column{Type: ColInt4}, "1"},
		{"NULL in INT4", Column{Type: ColInt4}, nil},
		{"INT4 overflow", Column{Type: ColInt4}, int64(1 << 31)},
		{"TINYINT negative", Column{Type: ColIntN, Size: 1}, -1},
		{"SMALLINT overflow", Column{Type: ColIntN, Size: 2}, 40000},
		{"uint64 overflow", Column{Type: ColInt8}, uint64(1 << 63)},
		{"bytes in NVARCHAR", Column{Type: ColNVarChar}, []byte("x")},
		{"string in VARBINARY", Column{Type: ColBigVarBinary}, "x"},
		{"too long", Column{Type: ColNVarChar, Size: 4}, "abc"},
		{"int in VARCHAR", Column{Type: ColBigVarChar}, 1},
		{"unsupported type", Column{Type: 0x3D}, int32(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte{0x42}
			b, err := AppendRow(prefix, []Column{tt.col}, []any{tt.v})
			if err == nil {
				t.Fatalf("no error, encoded % X", b)
			}
			if !bytes.Equal(b, prefix) {
				t.Errorf("b changed on error: % X", b)
			}
		})
	}
	if _, err := AppendRow(nil, []Column{{Type: ColInt4}}, nil); err == nil {
		t.Error("count mismatch accepted")
	}
	if _, err := AppendRow(nil, []Column{{Type: 0x3D}}, []any{1}); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("unsupported type err = %v", err)
	}
}

func TestParseResultErrors(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"unsupported column type", []byte{TokenColMetadata, 1, 0, 0, 0, 0, 0, 0, 0, 0x3D, 0}, ErrUnsupportedType},
		{"NVARCHAR(MAX)", []byte{TokenColMetadata, 1, 0, 0, 0, 0, 0, 0, 0, 0xE7, 0xFF, 0xFF, 9, 4, 0xD0, 0, 0x34, 0}, ErrUnsupportedType},
		{"COLMETADATA cut", []byte{TokenColMetadata, 2, 0, 0, 0, 0, 0, 0, 0, 0x38, 0}, ErrTokenTruncated},
		{"ROW cut", append(AppendColMetadata(nil, []Column{{Type: ColInt4}}), TokenRow, 1, 0), ErrTokenTruncated},
		{"DONE cut", []byte{TokenDone, 0, 0}, ErrTokenTruncated},
		{"unknown", []byte{0x01}, ErrUnknownToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseResult(tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseDone(t *testing.T) {
	d, err := ParseDone(AppendDone(nil, TokenDoneInProc, DoneMore|DoneCount, CurCmdSelect, 1<<40))
	if err != nil || d != (Done{Token: TokenDoneInProc, Status: DoneMore | DoneCount, CurCmd: CurCmdSelect, RowCount: 1 << 40}) {
		t.Fatalf("%+v, %v", d, err)
	}
	if _, err := ParseDone([]byte{TokenDone, 0}); !errors.Is(err, ErrTokenTruncated) {
		t.Errorf("short: %v", err)
	}
	if _, err := ParseDone([]byte{TokenRow}); !errors.Is(err, ErrUnknownToken) {
		t.Errorf("not a DONE: %v", err)
	}
	if _, err := ParseDone(nil); err == nil {
		t.Error("empty accepted")
	}
}

func TestStringers(t *testing.T) {
	tests := []struct{ got, want string }{
		{TokenType(TokenLoginAck).String(), "LOGINACK"},
		{TokenType(0x01).String(), "0x01"},
		{EnvPacketSize.String(), "PACKETSIZE"},
		{EnvChangeType(99).String(), "ENVCHANGE(99)"},
		{DoneFinal.String(), "FINAL"},
		{(DoneMore | DoneCount | 0x8000).String(), "MORE|COUNT|0x8000"},
		{ColNVarChar.String(), "NVARCHAR"},
		{ColumnType(0x3D).String(), "0x3D"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%q, want %q", tt.got, tt.want)
		}
	}
}

func TestBVarCharTruncation(t *testing.T) {
	long := strings.Repeat("é", 300)
	b := appendBVarChar(nil, long)
	if b[0] != 255 || len(b) != 1+510 {
		t.Fatalf("len byte %d, total %d", b[0], len(b))
	}
	// 254 BMP characters then an astral one: the pair would straddle the
	// limit, so it is dropped whole.
	b = appendBVarChar(nil, strings.Repeat("a", 254)+"🌍")
	if b[0] != 254 {
		t.Fatalf("len byte %d", b[0])
	}
}
