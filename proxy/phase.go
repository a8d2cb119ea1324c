package proxy

// Direction is which way bytes travel through the proxy.
type Direction uint8

// Directions.
const (
	ClientToServer Direction = iota
	ServerToClient
)

func (d Direction) String() string {
	if d == ClientToServer {
		return "client->server"
	}
	return "server->client"
}

// sender is the side that sends in direction d.
func (d Direction) sender() Side {
	if d == ClientToServer {
		return SideClient
	}
	return SideServer
}
