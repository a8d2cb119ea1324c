//go:build !linux

package proxy

import "net"

// relayBursts and waitReadable are Linux-only (relay_linux.go); elsewhere
// the relay is io.Copy and the negotiation loop reads directly.
func (s *session) relayBursts(Direction, net.Conn, net.Conn) bool { return false }

func waitReadable(net.Conn) (bool, error) { return false, nil }
