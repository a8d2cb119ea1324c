package proxy

import "github.com/tdsproxy/tdsproxy/record"

// The connection record and its names live in package record (so readers
// of records need not link the relay); these aliases keep proxy.Record and
// friends the same types.
type (
	Record          = record.Record
	PhaseMark       = record.PhaseMark
	PreloginInfo    = record.PreloginInfo
	PreloginSide    = record.PreloginSide
	TLSInfo         = record.TLSInfo
	ClientHelloInfo = record.ClientHelloInfo
	ServerHelloInfo = record.ServerHelloInfo
	CertificateInfo = record.CertificateInfo
	KeyExchangeInfo = record.KeyExchangeInfo
	AlertInfo       = record.AlertInfo
	LoginInfo       = record.LoginInfo
	CloseInfo       = record.CloseInfo
	ParseIssue      = record.ParseIssue
	FaultEvent      = record.FaultEvent
	Phase           = record.Phase
	Side            = record.Side
	CloseKind       = record.CloseKind
	Protocol        = record.Protocol
	LoginOutcome    = record.LoginOutcome
)

// The phases (record.Phase*).
const (
	PhaseAccept            = record.PhaseAccept
	PhasePreloginRequest   = record.PhasePreloginRequest
	PhasePreloginResponse  = record.PhasePreloginResponse
	PhaseTLSClientHello    = record.PhaseTLSClientHello
	PhaseTLSServerHello    = record.PhaseTLSServerHello
	PhaseTLSClientFinished = record.PhaseTLSClientFinished
	PhaseTLSServerFinished = record.PhaseTLSServerFinished
	PhaseLogin7            = record.PhaseLogin7
	PhaseLoginResponse     = record.PhaseLoginResponse
	PhaseEstablished       = record.PhaseEstablished
	PhaseClosed            = record.PhaseClosed
)

// Phases lists every phase in its nominal order (record.Phases).
var Phases = record.Phases

// Sides (record.Side*).
const (
	SideClient = record.SideClient
	SideServer = record.SideServer
	SideProxy  = record.SideProxy
)

// Close kinds (record.Close*).
const (
	CloseFIN        = record.CloseFIN
	CloseRST        = record.CloseRST
	CloseTimeout    = record.CloseTimeout
	CloseAlert      = record.CloseAlert
	CloseDialFailed = record.CloseDialFailed
	CloseShutdown   = record.CloseShutdown
	CloseLimit      = record.CloseLimit
	CloseError      = record.CloseError
)

// Protocols and login outcomes (record.Protocol*, record.Login*).
const (
	ProtocolTDS7      = record.ProtocolTDS7
	ProtocolStrict    = record.ProtocolStrict
	ProtocolTDS7Login = record.ProtocolTDS7Login
	ProtocolNotTDS    = record.ProtocolNotTDS

	LoginOK      = record.LoginOK
	LoginFailed  = record.LoginFailed
	LoginUnknown = record.LoginUnknown
)

// room reports whether a list of r of length n may grow, counting a drop
// if not.
func room(r *Record, n int) bool {
	if n < record.MaxListEntries {
		return true
	}
	r.Dropped++
	return false
}

// preloginOf, tlsOf and loginOf return r's section, creating it.
func preloginOf(r *Record) *PreloginInfo {
	if r.Prelogin == nil {
		r.Prelogin = &PreloginInfo{}
	}
	return r.Prelogin
}

func tlsOf(r *Record) *TLSInfo {
	if r.TLS == nil {
		r.TLS = &TLSInfo{}
	}
	return r.TLS
}

func loginOf(r *Record) *LoginInfo {
	if r.Login == nil {
		r.Login = &LoginInfo{}
	}
	return r.Login
}
