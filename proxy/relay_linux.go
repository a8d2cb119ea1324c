//go:build linux

package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// relayBursts is the relay after negotiation on Linux: it moves each burst
// the kernel has queued with splice(2), and holds nothing while idle.
//
// Plain io.Copy between two *net.TCPConn also splices, but Go's
// internal/poll.Splice takes a pipe pair from its pool for the whole copy,
// i.e. for the life of the connection: 2 more descriptors per direction,
// 6 per proxied connection, so a file limit of 20,000 ran out at about
// 3,300 connections (BENCHMARKS.md). Here each burst is an io.Copy of an
// io.LimitedReader of exactly the queued bytes: (*net.TCPConn).ReadFrom
// splices it and returns the pipe to the pool as soon as the burst is
// through, so pipes are shared by the connections that move data and an
// idle connection holds its two sockets only.
//
// It reports false when src or dst is not a TCP socket (the caller then
// falls back to io.Copy).
func (s *session) relayBursts(dir Direction, src, dst net.Conn) bool {
	tsrc, ok := src.(*net.TCPConn)
	if !ok {
		return false
	}
	if _, ok := dst.(*net.TCPConn); !ok {
		return false
	}
	rc, err := tsrc.SyscallConn()
	if err != nil {
		return false
	}
	var queued int
	var pending syscall.Errno
	// wait is the netpoller callback of rc.Read: it returns false (wait
	// for readability and call again) while nothing is queued and the
	// stream has not ended. One closure per relay, not per burst.
	wait := func(fd uintptr) bool {
		for range 2 { // a second pass only when bytes raced the peek
			queued = inq(fd)
			if queued > 0 {
				return true
			}
			// SIOCINQ says 0 both when the queue is empty and at EOF; a
			// non-blocking one-byte peek tells which (0: FIN; EAGAIN:
			// empty; another error, e.g. ECONNRESET: kept in pending,
			// because the kernel hands a socket error out once, peek or
			// not, and the next read would see a mere EOF).
			switch n, errno := peek(fd); {
			case errno == syscall.EAGAIN:
				return false
			case errno != 0:
				pending = errno
				return true
			case n == 0:
				return true
			}
		}
		return true
	}
	for {
		queued, pending = 0, 0
		// An error here (closed by us, a deadline) leaves queued at 0: the
		// Read below reports it, exactly as io.Copy would have.
		_ = rc.Read(wait)
		if pending != 0 {
			s.readEnded(dir, readError(src, pending))
			return true
		}
		if queued == 0 {
			// End of stream or an error; a byte that arrived since the
			// peek is forwarded like any other.
			var one [1]byte
			n, err := src.Read(one[:])
			if n > 0 {
				if _, werr := dst.Write(one[:n]); werr != nil {
					s.readEnded(dir, werr)
					return true
				}
				s.bytes[dir].Add(int64(n))
			}
			if err != nil {
				s.readEnded(dir, err)
				return true
			}
			continue
		}
		n, err := io.Copy(dst, &io.LimitedReader{R: src, N: int64(queued)})
		s.bytes[dir].Add(n)
		if err != nil {
			s.readEnded(dir, err)
			return true
		}
	}
}

// readError is the error a Read of c would have returned for errno.
func readError(c net.Conn, errno syscall.Errno) error {
	return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", errno)}
}

// inq returns the bytes queued for reading on socket fd (SIOCINQ, which is
// FIONREAD on Linux, tcp(7)), 0 on error.
func inq(fd uintptr) int {
	var n int32
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	if errno != 0 {
		return 0
	}
	return int(n)
}

// peek looks at one byte without consuming it or blocking.
func peek(fd uintptr) (int, syscall.Errno) {
	var b [1]byte
	n, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return int(n), errno
}

// waitReadable blocks until c has bytes to read, has ended, or is closed,
// without holding a read buffer meanwhile: a connection that waits for
// its peer (a pooled, idle session) costs no buffer. ok is false when c is
// not a TCP socket (the caller just reads). err is a socket error the
// wait consumed (see relayBursts: the kernel reports it once), to be
// treated as the read's error.
func waitReadable(c net.Conn) (ok bool, err error) {
	tc, isTCP := c.(*net.TCPConn)
	if !isTCP {
		return false, nil
	}
	rc, rerr := tc.SyscallConn()
	if rerr != nil {
		return false, nil
	}
	var pending syscall.Errno
	// An error of the wait itself (closed, deadline) is left to the Read
	// that follows.
	_ = rc.Read(func(fd uintptr) bool {
		_, errno := peek(fd)
		if errno == syscall.EAGAIN {
			return false
		}
		pending = errno
		return true
	})
	if pending != 0 {
		return true, readError(c, pending)
	}
	return true, nil
}
