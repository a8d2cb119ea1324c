package record

// Phase names a point in a connection's negotiation (docs/architecture.md,
// "One connection, start to end"). A connection may skip phases: NOT_SUP has no TLS, and TDS 8.0
// strict starts at tls.client_hello and carries PRELOGIN inside TLS.
type Phase string

// The phases, in the order a TDS 7.x connection with TLS meets them.
const (
	PhaseAccept            Phase = "tcp.accept"
	PhasePreloginRequest   Phase = "prelogin.request"
	PhasePreloginResponse  Phase = "prelogin.response"
	PhaseTLSClientHello    Phase = "tls.client_hello"
	PhaseTLSServerHello    Phase = "tls.server_hello"
	PhaseTLSClientFinished Phase = "tls.client_finished"
	PhaseTLSServerFinished Phase = "tls.server_finished"
	PhaseLogin7            Phase = "login7"
	PhaseLoginResponse     Phase = "login.response"
	PhaseEstablished       Phase = "established"
	PhaseClosed            Phase = "closed"
)

// Phases lists every phase in its nominal order.
var Phases = []Phase{
	PhaseAccept, PhasePreloginRequest, PhasePreloginResponse,
	PhaseTLSClientHello, PhaseTLSServerHello, PhaseTLSClientFinished, PhaseTLSServerFinished,
	PhaseLogin7, PhaseLoginResponse, PhaseEstablished, PhaseClosed,
}

// Valid reports whether p is one of the defined phases.
func (p Phase) Valid() bool {
	for _, q := range Phases {
		if p == q {
			return true
		}
	}
	return false
}

// Side names a party to the connection.
type Side string

// Sides.
const (
	SideClient Side = "client"
	SideServer Side = "server"
	SideProxy  Side = "proxy"
)
