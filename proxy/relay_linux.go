//go:build linux

package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// dirReader reads one direction's chunks while the watcher looks, straight
// from the socket inside the netpoller's callback (syscall.RawConn.Read):
// the pooled buffer is taken just before the read(2) and handed back when
// the socket has nothing, so a direction parked waiting for its peer holds
// no buffer, and a chunk still costs one system call.
type dirReader struct {
	s   *session
	dir Direction
	rc  syscall.RawConn
	cb  func(fd uintptr) bool // r.callback, bound once

	// Results of the last callback.
	bp    *[]byte
	n     int
	errno syscall.Errno
	relay bool // negotiation ended while waiting: nothing was read
}

func (r *dirReader) callback(fd uintptr) bool {
	if !r.s.watching.Load() && r.s.stagesFor(r.dir) == nil {
		// The other direction ended the negotiation while this one
		// waited: go to the relay without reading.
		r.relay = true
		return true
	}
	bp := bufPool.Get().(*[]byte)
	for {
		n, err := syscall.Read(int(fd), *bp)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			bufPool.Put(bp)
			return false
		case err != nil:
			bufPool.Put(bp)
			r.errno = err.(syscall.Errno)
			return true
		}
		r.bp, r.n = bp, n
		return true
	}
}

// readChunk returns the next chunk of dir in a pooled buffer (put it back
// with bufPool.Put), or relay=true when the negotiation ended meanwhile.
// err is what src.Read would have returned (io.EOF at end of stream).
func (s *session) readChunk(dir Direction, src net.Conn) (bp *[]byte, n int, err error, relay bool) {
	r := s.readers[dir]
	if r == nil {
		r = &dirReader{s: s, dir: dir}
		if tc, ok := src.(*net.TCPConn); ok {
			r.rc, _ = tc.SyscallConn()
		}
		r.cb = r.callback
		s.readers[dir] = r
	}
	if r.rc == nil {
		bp = bufPool.Get().(*[]byte)
		n, err = src.Read(*bp)
		return bp, n, err, false
	}
	r.bp, r.n, r.errno, r.relay = nil, 0, 0, false
	if werr := r.rc.Read(r.cb); werr != nil && r.bp == nil && r.errno == 0 && !r.relay {
		// Closed by us, or a deadline: the wait's own error says which.
		return nil, 0, werr, false
	}
	switch {
	case r.relay:
		return nil, 0, nil, true
	case r.errno != 0:
		return nil, 0, readError(src, r.errno), false
	case r.n == 0:
		return r.bp, 0, io.EOF, false
	}
	return r.bp, r.n, nil, false
}

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
	var (
		queued  int
		pending syscall.Errno
		woken   bool // the callback runs again after a wait
	)
	// wait is the netpoller callback of rc.Read: false means wait for
	// readability and call again. One closure per relay, not per burst.
	//
	// rc.Read clears the socket's readiness before its first call, so the
	// first call must look for itself (an EOF or bytes that came before
	// would raise no new event): a one-byte non-blocking peek, which also
	// tells an empty queue (EAGAIN) from an end of stream (0) and catches a
	// pending error (e.g. ECONNRESET, kept in pending because the kernel
	// hands a socket error out once, peek or not, and the next read would
	// see a mere EOF). When the peek finds bytes, or after a wake-up,
	// SIOCINQ sizes the burst.
	wait := func(fd uintptr) bool {
		for range 3 { // more passes only when bytes race the checks
			if woken {
				if queued = inq(fd); queued > 0 {
					return true
				}
			}
			woken = true
			switch n, errno := peek(fd); {
			case errno == syscall.EAGAIN:
				return false
			case errno != 0:
				pending = errno
				return true
			case n == 0:
				return true // end of stream
			}
		}
		return true
	}
	for {
		queued, pending, woken = 0, 0, false
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
