package tds

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"testing"
)

// Fuzz targets. Each has named seeds (real fixtures and edge cases) and
// checks two properties: decoding never panics, and whatever decodes
// re-encodes to something that decodes to the same value.

func FuzzParseHeader(f *testing.F) {
	seeds := map[string][]byte{
		"spec prelogin header": fixtureSpecPreloginPacket(f)[:HeaderLen],
		"spec login7 header":   fixtureSpecLogin7Packet(f)[:HeaderLen],
		"length 0":             {0x01, 0x01, 0x00, 0x00, 0, 0, 1, 0},
		"length 7":             {0x01, 0x01, 0x00, 0x07, 0, 0, 1, 0},
		"length 8":             {0x01, 0x01, 0x00, 0x08, 0, 0, 1, 0},
		"length 32768":         {0x04, 0x00, 0x80, 0x00, 0, 0, 1, 0},
		"length 32769":         {0x04, 0x00, 0x80, 0x01, 0, 0, 1, 0},
		"short":                {0x12, 0x01, 0x00},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		if h.PayloadLen() < 0 || int(h.Length) > MaxPacketLen {
			t.Fatalf("accepted length %d", h.Length)
		}
		if !bytes.Equal(h.Bytes(), b[:HeaderLen]) {
			t.Fatalf("Bytes() = % X, input % X", h.Bytes(), b[:HeaderLen])
		}
	})
}

func FuzzReadMessage(f *testing.F) {
	multi := append(packet(PacketSQLBatch, StatusResetConnection, 1, []byte("abc")), packet(PacketSQLBatch, StatusEOM, 2, []byte("de"))...)
	seeds := map[string][]byte{
		"spec prelogin":       fixtureSpecPreloginPacket(f),
		"spec login7":         fixtureSpecLogin7Packet(f),
		"multi-packet":        multi,
		"type change":         append(packet(PacketSQLBatch, 0, 1, []byte("a")), packet(PacketRPC, StatusEOM, 2, nil)...),
		"truncated payload":   fixtureSpecLogin7Packet(f)[:40],
		"no EOM":              packet(PacketReply, 0, 1, []byte{1}),
		"empty":               {},
		"header length 7":     {0x12, 0x01, 0x00, 0x07, 0, 0, 1, 0},
		"two empty messages":  append(packet(PacketAttention, StatusEOM, 1, nil), packet(PacketAttention, StatusEOM, 2, nil)...),
		"status 0x08 not EOM": append(packet(PacketSQLBatch, StatusResetConnection, 1, []byte("x")), packet(PacketSQLBatch, StatusEOM, 2, []byte("y"))...),
	}
	for _, s := range seeds {
		f.Add(s, uint16(0))
		f.Add(s, uint16(3))
	}
	f.Fuzz(func(t *testing.T, stream []byte, max uint16) {
		r := NewReader(bytes.NewReader(stream))
		r.MaxMessage = int(max)
		for range 64 { // bounded: a stream of empty packets is 8 bytes each
			m, err := r.ReadMessage()
			if err != nil {
				return
			}
			if len(m.Payload) > r.maxMessage() {
				t.Fatalf("payload %d > cap %d", len(m.Payload), r.maxMessage())
			}
			// Re-framing the message and reading it back gives the same message.
			var buf bytes.Buffer
			w := &Writer{W: &buf, PacketSize: 512}
			if err := w.WriteMessage(m.Type, m.Payload); err != nil {
				t.Fatal(err)
			}
			back, err := NewReader(&buf).ReadMessage()
			if err != nil || back.Type != m.Type || !bytes.Equal(back.Payload, m.Payload) {
				t.Fatalf("re-framed message differs: %v", err)
			}
		}
	})
}

func FuzzParsePrelogin(f *testing.F) {
	seeds := map[string][]byte{
		"spec §4.1 request":     fixtureSpecPreloginPacket(f)[HeaderLen:],
		"go-mssqldb request":    fixtureGoMssqldbPrelogin(f),
		"server response":       fixtureServerPreloginResponse(f),
		"terminator only":       {0xFF},
		"empty":                 {},
		"offset past end":       {0x00, 0xFF, 0xFF, 0x00, 0x01, 0xFF},
		"offset+length wraps":   {0x00, 0xFF, 0xFF, 0x00, 0x02, 0xFF},
		"duplicates unknown":    {0x01, 0x00, 0x10, 0x00, 0x01, 0x42, 0x00, 0x11, 0x00, 0x02, 0x01, 0x00, 0x13, 0x00, 0x01, 0xFF, 0x03, 0xAB, 0xCD, 0x00},
		"table cut":             {0x00, 0x00},
		"overlapping data":      {0x00, 0x00, 0x0B, 0x00, 0x06, 0x05, 0x00, 0x0B, 0x00, 0x24, 0xFF},
		"trace id short":        {0x05, 0x00, 0x06, 0x00, 0x04, 0xFF, 1, 2, 3, 4},
		"data before the table": {0x01, 0x00, 0x00, 0x00, 0x01, 0xFF},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePrelogin(b)
		if err != nil {
			return
		}
		// Accessors must not panic on any data.
		p.Version()
		p.Encryption()
		p.Instance()
		p.ThreadID()
		p.MARS()
		p.TraceID()
		p.FedAuthRequired()
		p.Nonce()
		if tr, ok := p.TraceID(); ok {
			_ = tr.ConnectionID.String()
		}
		enc, err := p.Append(nil)
		if err != nil {
			return // overlapping options can exceed 64 KiB once laid out
		}
		q, err := ParsePrelogin(enc)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !reflect.DeepEqual(normOptions(q.Options), normOptions(p.Options)) {
			t.Fatalf("round trip:\n%v\n%v", q.Options, p.Options)
		}
		// Data laid out in table order right after the table re-encodes byte for byte.
		if isCanonicalPrelogin(b, p) && !bytes.Equal(enc, b) {
			t.Fatalf("canonical input re-encodes differently:\n% X\n% X", enc, b)
		}
	})
}

// isCanonicalPrelogin reports whether b's option data follow the table in
// table order with no gaps and nothing after them.
func isCanonicalPrelogin(b []byte, p *Prelogin) bool {
	off := 5*len(p.Options) + 1
	for i, o := range p.Options {
		if int(binary.BigEndian.Uint16(b[5*i+1:])) != off {
			return false
		}
		off += len(o.Data)
	}
	return off == len(b)
}

// normOptions maps empty Data to nil so nil-vs-empty does not count.
func normOptions(o []PreloginOption) []PreloginOption {
	out := make([]PreloginOption, len(o))
	for i, x := range o {
		out[i] = x
		if len(x.Data) == 0 {
			out[i].Data = nil
		}
	}
	return out
}

func FuzzParseLogin7(f *testing.F) {
	seeds := map[string][]byte{
		"spec §4.2":       fixtureSpecLogin7Packet(f)[HeaderLen:],
		"sample 7.4":      sampleLogin7().Marshal(),
		"zero 7.4":        (&Login7{TDSVersion: VersionTDS74}).Marshal(),
		"7.1":             (&Login7{TDSVersion: VersionTDS71, UserName: "u", Password: NewPassword("p")}).Marshal(),
		"feature ext odd": (&Login7{TDSVersion: VersionTDS74, FeatureExt: []byte{0x02, 0xFF, 0xFF, 0, 0, 1}}).Marshal(),
		"short":           {0x08, 0, 0, 0, 0, 0, 0, 0x74},
		"length huge":     {0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0x74},
		"sspi long":       func() []byte { b := sampleLogin7().Marshal(); binary.LittleEndian.PutUint16(b[80:], 0xFFFF); return b }(),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLogin7(b)
		if err != nil {
			return
		}
		_ = fmt.Sprintf("%v %+v %#v %s", l, l, l, l.ClientProgVersion())
		enc, err := l.Append(nil)
		if err != nil {
			return // overlapping fields can exceed 16-bit offsets once laid out
		}
		back, err := ParseLogin7(enc)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		want := *l
		if len(want.FeatureExt) > 0 {
			want.OptionFlags3 |= OptionFlags3Extension
		}
		if !reflect.DeepEqual(back, &want) {
			t.Fatalf("round trip:\n%#v\n%#v", back, &want)
		}
		if back.Password.Reveal() != l.Password.Reveal() || back.ChangePassword.Reveal() != l.ChangePassword.Reveal() {
			t.Fatal("password changed in round trip")
		}
	})
}

// appendLoginResponse re-encodes a LoginResponse (token order aside).
func appendLoginResponse(b []byte, r *LoginResponse) []byte {
	for _, e := range r.EnvChanges {
		b = e.AppendTo(b)
	}
	for _, m := range r.Infos {
		b = AppendInfo(b, m)
	}
	for _, m := range r.Errors {
		b = AppendError(b, m)
	}
	if r.SSPI != nil {
		b = append(b, TokenSSPI)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(r.SSPI)))
		b = append(b, r.SSPI...)
	}
	if r.FedAuthInfo != nil {
		b = append(b, TokenFedAuthInfo)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(r.FedAuthInfo)))
		b = append(b, r.FedAuthInfo...)
	}
	if r.FeatureExtAck != nil {
		b = AppendFeatureExtAck(b, r.FeatureExtAck)
	}
	if r.Ack != nil {
		b = AppendLoginAck(b, *r.Ack)
	}
	if r.Done != nil {
		b = AppendDone(b, byte(r.Done.Token), r.Done.Status, r.Done.CurCmd, r.Done.RowCount)
	}
	return b
}

func FuzzParseLoginResponse(f *testing.F) {
	seeds := map[string][]byte{
		"success":         fixtureLoginResponse(f),
		"login failed":    fixtureLoginFailed(f),
		"select 1":        fixtureSelect1Result(f),
		"envchange kinds": appendLoginResponse(nil, &LoginResponse{EnvChanges: []EnvChange{{Type: EnvRouting, NewBytes: []byte{0, 1, 2}}, {Type: EnvPromoteTran, NewBytes: []byte{9}}, {Type: 0x63, NewBytes: []byte{1}}}}),
		"feature ack":     AppendFeatureExtAck(nil, []FeatureAck{{ID: 1, Data: []byte{1, 2}}}),
		"unknown":         {0xC3},
		"fedauth huge":    {TokenFedAuthInfo, 0xFF, 0xFF, 0xFF, 0xFF},
		"loginack short":  {TokenLoginAck, 3, 0, 1, 0x74, 0},
		"empty":           {},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseLoginResponse(b)
		if r == nil {
			t.Fatal("nil response")
		}
		if err != nil {
			return
		}
		back, err := ParseLoginResponse(appendLoginResponse(nil, r))
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		back.Tokens, r.Tokens = nil, nil
		if !reflect.DeepEqual(normLogin(back), normLogin(r)) {
			t.Fatalf("round trip:\n%+v\n%+v", back, r)
		}
	})
}

// normLogin maps empty byte slices to nil so nil-vs-empty does not count.
func normLogin(r *LoginResponse) *LoginResponse {
	c := *r
	c.EnvChanges = nil
	for _, e := range r.EnvChanges {
		e.NewBytes, e.OldBytes = nilIfEmpty(e.NewBytes), nilIfEmpty(e.OldBytes)
		c.EnvChanges = append(c.EnvChanges, e)
	}
	c.FeatureExtAck = nil
	for _, a := range r.FeatureExtAck {
		a.Data = nilIfEmpty(a.Data)
		c.FeatureExtAck = append(c.FeatureExtAck, a)
	}
	c.SSPI, c.FedAuthInfo = nilIfEmpty(r.SSPI), nilIfEmpty(r.FedAuthInfo)
	return &c
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func FuzzParseResult(f *testing.F) {
	cols := []Column{{Name: "a", Type: ColIntN, Size: 4, Nullable: true}, {Name: "b", Type: ColNVarChar, Size: 8}, {Name: "c", Type: ColBigVarBinary, Size: 4}}
	rowed, _ := AppendRow(AppendColMetadata(nil, cols), cols, []any{int32(7), "ab", []byte{1}})
	seeds := map[string][]byte{
		"select 1":       fixtureSelect1Result(f),
		"three columns":  AppendDone(rowed, TokenDone, DoneCount, CurCmdSelect, 1),
		"nbcrow":         append(AppendColMetadata(nil, cols), TokenNBCRow, 0x06, 4, 7, 0, 0, 0),
		"no metadata":    {TokenColMetadata, 0xFF, 0xFF, TokenRow},
		"login response": fixtureLoginResponse(f),
		"nvarchar max":   {TokenColMetadata, 1, 0, 0, 0, 0, 0, 0, 0, 0xE7, 0xFF, 0xFF, 9, 4, 0xD0, 0, 0x34, 0},
		"row cut":        append(AppendColMetadata(nil, []Column{{Type: ColInt4}}), TokenRow, 1, 0),
		"return status":  {TokenReturnStatus, 1, 0, 0, 0},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResult(b)
		if r == nil {
			t.Fatal("nil result")
		}
		if err != nil {
			return
		}
		metas := 0
		for _, tok := range r.Tokens {
			if tok == TokenColMetadata {
				metas++
			}
		}
		for _, row := range r.Rows {
			if len(row) != len(r.Columns) {
				return // rows from before the (only) COLMETADATA
			}
			for i, v := range row {
				// An NBCROW can null a fixed-length column (MS-TDS §2.2.7.17),
				// even one whose flags say nullable (INT4/INT8 with fNullable
				// set, which no server sends: it uses INTN); ROW cannot encode
				// that, so there is nothing to round-trip.
				fixed := r.Columns[i].Type == ColInt4 || r.Columns[i].Type == ColInt8
				if v == nil && (!r.Columns[i].Nullable || fixed) {
					return
				}
			}
		}
		if metas > 1 {
			return
		}
		enc := AppendColMetadata(nil, r.Columns)
		for _, row := range r.Rows {
			enc, err = AppendRow(enc, r.Columns, row)
			if err != nil {
				t.Fatalf("AppendRow of decoded row %v: %v", row, err)
			}
		}
		for _, m := range r.Infos {
			enc = AppendInfo(enc, m)
		}
		for _, m := range r.Errors {
			enc = AppendError(enc, m)
		}
		for _, e := range r.EnvChanges {
			enc = e.AppendTo(enc)
		}
		for _, v := range r.ReturnStatus {
			enc = binary.LittleEndian.AppendUint32(append(enc, TokenReturnStatus), uint32(v))
		}
		for _, d := range r.Done {
			enc = AppendDone(enc, byte(d.Token), d.Status, d.CurCmd, d.RowCount)
		}
		back, err := ParseResult(enc)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if len(back.Columns) != len(r.Columns) || (len(r.Columns) > 0 && !reflect.DeepEqual(back.Columns, r.Columns)) {
			t.Fatalf("columns:\n%+v\n%+v", back.Columns, r.Columns)
		}
		if !reflect.DeepEqual(back.Rows, r.Rows) || !reflect.DeepEqual(back.Infos, r.Infos) ||
			!reflect.DeepEqual(back.Errors, r.Errors) || !reflect.DeepEqual(back.Done, r.Done) ||
			!reflect.DeepEqual(back.ReturnStatus, r.ReturnStatus) {
			t.Fatalf("round trip:\n%+v\n%+v", back, r)
		}
		if !reflect.DeepEqual(normLogin(&LoginResponse{EnvChanges: back.EnvChanges}), normLogin(&LoginResponse{EnvChanges: r.EnvChanges})) {
			t.Fatalf("env changes:\n%+v\n%+v", back.EnvChanges, r.EnvChanges)
		}
	})
}

func FuzzParseSQLBatch(f *testing.F) {
	seeds := map[string][]byte{
		"select 1":         fixtureSQLBatchSelect1(f),
		"in transaction":   AppendSQLBatch(nil, "UPDATE t SET x = 1", 0x0102030405060708),
		"unicode":          AppendSQLBatch(nil, "SELECT N'日本語 🌍'", 0),
		"no headers":       {0x04, 0, 0, 0, 0x41, 0},
		"total past end":   {0xFF, 0, 0, 0},
		"header wraps":     {0x0A, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 2, 0},
		"odd text":         {0x04, 0, 0, 0, 0x41},
		"lone surrogate":   {0x04, 0, 0, 0, 0x00, 0xD8},
		"bare 7.1 text":    {0x53, 0x00, 0x45, 0x00},
		"empty":            {},
		"header length 6":  {0x0A, 0, 0, 0, 0x06, 0, 0, 0, 9, 0},
		"header length 5":  {0x09, 0, 0, 0, 0x05, 0, 0, 0, 9},
		"two headers 0x03": append([]byte{0x1C, 0, 0, 0, 0x12, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x06, 0, 0, 0, 3, 0}, 0x41, 0),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		text, err := ParseSQLBatch(b)
		if err != nil {
			return
		}
		back, err := ParseSQLBatch(AppendSQLBatch(nil, text, 0))
		if err != nil || back != text {
			t.Fatalf("round trip: %q, %v; want %q", back, err, text)
		}
	})
}
