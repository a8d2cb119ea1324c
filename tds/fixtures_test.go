package tds

import (
	"encoding/hex"
	"strings"
	"testing"
)

// unhex decodes an annotated hex dump: whitespace is ignored and "//" starts
// a comment that runs to the end of the line.
func unhex(tb testing.TB, dump string) []byte {
	tb.Helper()
	var sb strings.Builder
	for line := range strings.Lines(dump) {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		tb.Fatalf("bad fixture: %v", err)
	}
	return b
}

// fixtureSpecPreloginPacket is the PRELOGIN request of MS-TDS §4.1
// ("Pre-Login Request"), header included.
func fixtureSpecPreloginPacket(tb testing.TB) []byte {
	tb.Helper()
	return unhex(tb, `
		12 01 00 2F 00 00 01 00 // §2.2.3.1 header: PRELOGIN, EOM, length 47 (BE), SPID 0, packet 1, window 0
		00 00 1A 00 06          // §2.2.6.5 VERSION    at 26, 6 bytes (offsets and lengths big-endian)
		01 00 20 00 01          //          ENCRYPTION at 32, 1 byte
		02 00 21 00 01          //          INSTOPT    at 33, 1 byte
		03 00 22 00 04          //          THREADID   at 34, 4 bytes
		04 00 26 00 01          //          MARS       at 38, 1 byte
		FF                      //          terminator
		09 00 00 00 00 00       // VERSION 9.0.0.0 (UL_VERSION, US_SUBBUILD)
		01                      // ENCRYPTION ON
		00                      // INSTOPT "" (just the NUL)
		B8 0D 00 00             // THREADID 3512, little-endian
		01                      // MARS on
	`)
}

// fixtureGoMssqldbPrelogin is the PRELOGIN payload go-mssqldb v1.11.2 sends
// with encrypt=disable and no instance, built by reading session.go
// (preparePreloginFields) and tds.go (writePrelogin writes options in key
// order, data right after the table). The connection id is fixed here to
// the GUID 6F9619FF-8B86-D011-B42D-00C04FC964FF; go-mssqldb draws a random
// one per connection. TestGoMssqldbLive checks the shape against the real
// client.
func fixtureGoMssqldbPrelogin(tb testing.TB) []byte {
	tb.Helper()
	return unhex(tb, `
		00 00 1F 00 06    // VERSION    at 31, 6 bytes
		01 00 25 00 01    // ENCRYPTION at 37, 1
		02 00 26 00 01    // INSTOPT    at 38, 1
		03 00 27 00 04    // THREADID   at 39, 4
		04 00 2B 00 01    // MARS       at 43, 1
		05 00 2C 00 24    // TRACEID    at 44, 36
		FF                // terminator
		02 00 0B 01 00 00 // VERSION: getDriverVersion("v1.11.2") = 0x010B0002 written little-endian, sub-build 0
		02                // ENCRYPTION NOT_SUP (encrypt=disable)
		00                // INSTOPT "" + NUL
		00 00 00 00       // THREADID 0
		00                // MARS disabled
		FF 19 96 6F 86 8B 11 D0 B4 2D 00 C0 4F C9 64 FF // TRACEID connection id (first 3 groups little-endian)
		00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 // activity id (not set)
		00 00 00 00                                     // activity sequence
	`)
}

// fixtureServerPreloginResponse is a PRELOGIN response shaped like SQL
// Server 2019's (type 0x04 payload): VERSION 15.0.2000.0 written major
// first with the build big-endian, ENCRYPTION OFF, INSTOPT "", an empty
// THREADID, MARS off.
func fixtureServerPreloginResponse(tb testing.TB) []byte {
	tb.Helper()
	return unhex(tb, `
		00 00 1A 00 06    // VERSION    at 26, 6
		01 00 20 00 01    // ENCRYPTION at 32, 1
		02 00 21 00 01    // INSTOPT    at 33, 1
		03 00 22 00 00    // THREADID   at 34, 0 (servers send it empty)
		04 00 22 00 01    // MARS       at 34, 1
		FF
		0F 00 07 D0 00 00 // 15.0.2000.0
		00                // ENCRYPTION OFF
		00                // INSTOPT ""
		00                // MARS off
	`)
}

// fixtureSpecLogin7Packet is the LOGIN7 of MS-TDS §4.2 ("Login Request"),
// header included: a TDS 7.2 login by OSQL-32 as "sa" with no password.
func fixtureSpecLogin7Packet(tb testing.TB) []byte {
	tb.Helper()
	return unhex(tb, `
		10 01 00 90 00 00 01 00 // header: LOGIN7, EOM, length 144
		88 00 00 00             // §2.2.6.4 Length 136 (all LOGIN7 integers little-endian)
		02 00 09 72             // TDSVersion 0x72090002 (7.2)
		00 10 00 00             // PacketSize 4096
		00 00 00 07             // ClientProgVer 0x07000000
		00 01 00 00             // ClientPID 256
		00 00 00 00             // ConnectionID 0
		E0                      // OptionFlags1: fUseDB|fDatabase|fSetLang
		03                      // OptionFlags2: fLanguage|fODBC
		00                      // TypeFlags
		00                      // OptionFlags3
		00 00 00 00             // ClientTimeZone 0
		09 04 00 00             // ClientLCID 0x0409
		5E 00 08 00             // ibHostName 94, 8 chars
		6E 00 02 00             // ibUserName 110, 2
		72 00 00 00             // ibPassword 114, 0
		72 00 07 00             // ibAppName 114, 7
		80 00 00 00             // ibServerName 128, 0
		80 00 00 00             // ibUnused/ibExtension 128, 0
		80 00 04 00             // ibCltIntName 128, 4
		88 00 00 00             // ibLanguage 136, 0
		88 00 00 00             // ibDatabase 136, 0
		00 50 8B E2 B7 8F       // ClientID (MAC)
		88 00 00 00             // ibSSPI 136, 0
		88 00 00 00             // ibAtchDBFile 136, 0
		88 00 00 00             // ibChangePassword 136, 0
		00 00 00 00             // cbSSPILong 0
		73 00 6B 00 6F 00 73 00 74 00 6F 00 76 00 31 00 // "skostov1"
		73 00 61 00                                     // "sa"
		4F 00 53 00 51 00 4C 00 2D 00 33 00 32 00       // "OSQL-32"
		4F 00 44 00 42 00 43 00                         // "ODBC"
	`)
}

// fixtureLoginResponse is a successful login response as the emulator writes
// it (MS-TDS §2.2.7): ENVCHANGE database, LOGINACK, DONE.
func fixtureLoginResponse(tb testing.TB) []byte {
	tb.Helper()
	return unhex(tb, `
		E3 0F 00                // §2.2.7.9 ENVCHANGE, length 15
		01                      //   type 1 DATABASE
		06 6D 00 61 00 73 00 74 00 65 00 72 00 // new B_VARCHAR "master"
		00                      //   old B_VARCHAR ""
		AD 32 00                // §2.2.7.14 LOGINACK, length 50
		01                      //   interface T-SQL
		74 00 00 04             //   TDS version 7.4, big-endian here
		14                      //   ProgName, 20 chars: "Microsoft SQL Server"
		4D 00 69 00 63 00 72 00 6F 00 73 00 6F 00 66 00 74 00 20 00
		53 00 51 00 4C 00 20 00 53 00 65 00 72 00 76 00 65 00 72 00
		0F 00 07 D0             //   ProgVersion 15.0.2000
		FD 00 00 00 00 00 00 00 00 00 00 00 00 // §2.2.7.6 DONE final, curcmd 0, 8-byte row count 0
	`)
}

// fixtureLoginFailed is the failure response for a bad password: ERROR
// 18456 then DONE with the error bit (MS-TDS §2.2.7.10, §2.2.7.6).
func fixtureLoginFailed(tb testing.TB) []byte {
	tb.Helper()
	return unhex(tb, `
		AA 4C 00                // ERROR, length 76
		18 48 00 00             //   number 18456
		01                      //   state 1
		0E                      //   class 14
		1B 00                   //   US_VARCHAR, 27 chars: "Login failed for user 'sa'."
		4C 00 6F 00 67 00 69 00 6E 00 20 00 66 00 61 00 69 00 6C 00 65 00 64 00 20 00
		66 00 6F 00 72 00 20 00 75 00 73 00 65 00 72 00 20 00 27 00 73 00 61 00 27 00 2E 00
		04 65 00 6D 00 75 00 31 00 // server name "emu1"
		00                      //   proc name ""
		01 00 00 00             //   line 1 (4 bytes since TDS 7.2)
		FD 02 00 00 00 00 00 00 00 00 00 00 00 // DONE status ERROR
	`)
}

// fixtureSelect1Result is the reply to "SELECT 1": COLMETADATA with one
// unnamed INT4, ROW 1, DONE with COUNT, curcmd 0xC1 (SELECT), 1 row.
func fixtureSelect1Result(tb testing.TB) []byte {
	tb.Helper()
	return unhex(tb, `
		81 01 00                // §2.2.7.4 COLMETADATA, 1 column
		00 00 00 00             //   UserType (4 bytes since TDS 7.2)
		00 00                   //   Flags
		38                      //   INT4TYPE
		00                      //   name ""
		D1 01 00 00 00          // §2.2.7.19 ROW: int 1
		FD 10 00 C1 00 01 00 00 00 00 00 00 00 // DONE COUNT, SELECT, 1 row
	`)
}

// fixtureSQLBatchSelect1 is a SQL batch "SELECT 1" outside a transaction
// (MS-TDS §2.2.6.7 with §2.2.5.3 ALL_HEADERS).
func fixtureSQLBatchSelect1(tb testing.TB) []byte {
	tb.Helper()
	return unhex(tb, `
		16 00 00 00             // ALL_HEADERS TotalLength 22
		12 00 00 00             //   HeaderLength 18
		02 00                   //   HeaderType 2: transaction descriptor
		00 00 00 00 00 00 00 00 //   TransactionDescriptor 0
		01 00 00 00             //   OutstandingRequestCount 1
		53 00 45 00 4C 00 45 00 43 00 54 00 20 00 31 00 // "SELECT 1"
	`)
}
