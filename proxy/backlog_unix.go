//go:build unix

package proxy

import (
	"net"
	"syscall"

	"go.uber.org/zap"
)

// setBacklog calls listen(2) again on a listening socket to change the size
// of its accept queue. Linux allows this (and the tests check it there); the
// BSDs and macOS update the queue limit the same way.
func setBacklog(ln net.Listener, n int, log *zap.Logger) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return
	}
	if n <= 0 {
		n = defaultBacklog
	}
	rc, err := tl.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) { err = syscall.Listen(int(fd), n) })
		if cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		log.Warn("cannot change the listen backlog", zap.Int("backlog", n), zap.Error(err))
	}
}
