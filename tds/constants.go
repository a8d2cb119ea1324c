// Package tds implements the parts of the MS-TDS wire format that tdsproxy
// needs: the packet header, message reassembly, PRELOGIN, LOGIN7 and the
// server tokens the emulator writes. It imports nothing else of tdsproxy and
// does no I/O beyond the io.Reader/io.Writer it is handed.
package tds

import "fmt"

// PacketType is the first byte of a TDS packet header (MS-TDS §2.2.3.1.1).
type PacketType uint8

// Packet types, MS-TDS §2.2.3.1.1.
const (
	PacketSQLBatch     PacketType = 0x01
	PacketPreTDS7Login PacketType = 0x02
	PacketRPC          PacketType = 0x03
	PacketReply        PacketType = 0x04 // tabular result; also the PRELOGIN and login responses
	PacketAttention    PacketType = 0x06
	PacketBulkLoad     PacketType = 0x07
	PacketFedAuthToken PacketType = 0x08
	PacketTransMgrReq  PacketType = 0x0E
	PacketLogin7       PacketType = 0x10
	PacketSSPI         PacketType = 0x11
	PacketPrelogin     PacketType = 0x12
)

var packetTypeNames = map[PacketType]string{
	PacketSQLBatch:     "SQL_BATCH",
	PacketPreTDS7Login: "PRE_TDS7_LOGIN",
	PacketRPC:          "RPC",
	PacketReply:        "TABULAR_RESULT",
	PacketAttention:    "ATTENTION",
	PacketBulkLoad:     "BULK_LOAD",
	PacketFedAuthToken: "FEDAUTH_TOKEN",
	PacketTransMgrReq:  "TRANSACTION_MANAGER",
	PacketLogin7:       "LOGIN7",
	PacketSSPI:         "SSPI",
	PacketPrelogin:     "PRELOGIN",
}

// Known reports whether t is a packet type defined by MS-TDS.
func (t PacketType) Known() bool { _, ok := packetTypeNames[t]; return ok }

// String returns the spec name of the packet type, or 0xNN when unknown.
func (t PacketType) String() string {
	if n, ok := packetTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("0x%02X", uint8(t))
}

// Status is the second byte of a TDS packet header (MS-TDS §2.2.3.1.2).
// It is a bit set: EOM is bit 0x01 only. A proxy also sees RESETCONNECTION
// bits on non-final packets, so "status != 0" must never be read as EOM.
type Status uint8

// Status bits, MS-TDS §2.2.3.1.2.
const (
	StatusNormal                  Status = 0x00
	StatusEOM                     Status = 0x01
	StatusIgnore                  Status = 0x02
	StatusResetConnection         Status = 0x08
	StatusResetConnectionSkipTran Status = 0x10
)

// EOM reports whether the end-of-message bit is set.
func (s Status) EOM() bool { return s&StatusEOM != 0 }

// Header sizes and limits, MS-TDS §2.2.3.1.3.
const (
	HeaderLen = 8
	// MaxPacketLen is the largest packet length the protocol allows
	// (the negotiated packet size is 512..32767; 32768 is accepted as the
	// largest value real servers send).
	MaxPacketLen = 32768
	// DefaultPacketSize is the packet size in force before LOGIN7 negotiates
	// another one (MS-TDS §2.2.6.5: PRELOGIN uses 4096).
	DefaultPacketSize = 4096
)

// TDS versions as LOGIN7 carries them (MS-TDS §2.2.6.4), little-endian on the wire.
const (
	VersionTDS71  uint32 = 0x71000001
	VersionTDS72  uint32 = 0x72090002
	VersionTDS73A uint32 = 0x730A0003
	VersionTDS73B uint32 = 0x730B0003
	VersionTDS74  uint32 = 0x74000004
	VersionTDS80  uint32 = 0x08000000
)
