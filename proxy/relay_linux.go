//go:build linux

package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
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
	// relaying: negotiation is over, read without looking at it.
	relaying bool

	// Parking (park_linux.go): token names the direction to the idle
	// poller; inEpoll says its socket is in the poller's set; parked is
	// set while no goroutine runs the direction.
	token   uint64
	inEpoll bool
	noPark  bool
	parked  atomic.Bool

	// bulk is set while the relay streams (its last read filled the
	// buffer): a wake-up then splices what is queued into a pooled pipe
	// instead of reading it (relayBursts).
	bulk bool

	// Results of the last callback.
	bp    *[]byte
	n     int
	pipe  *splicePipe // bulk: n bytes wait in it
	errno syscall.Errno
	relay bool // negotiation ended while waiting: nothing was read
}

// bulkSplice is the callback's work in bulk mode: what is queued goes into
// a pipe from the pool, taken only once there is something to move.
func (r *dirReader) bulkSplice(fd uintptr) bool {
	p, _ := pipePool.Get().(*splicePipe)
	if p == nil {
		r.bulk = false
		return r.callback(fd)
	}
	for {
		n, err := rawSplice(fd, uintptr(p.w), p.size)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			pipePool.Put(p)
			return false
		case 0:
		default:
			pipePool.Put(p)
			r.errno = err
			return true
		}
		if n == 0 { // end of stream
			pipePool.Put(p)
			return true
		}
		r.pipe, r.n = p, n
		return true
	}
}

func (r *dirReader) callback(fd uintptr) bool {
	if !r.relaying && !r.s.watching.Load() && r.s.stagesFor(r.dir) == nil {
		// The other direction ended the negotiation while this one
		// waited: go to the relay without reading.
		r.relay = true
		return true
	}
	if r.bulk {
		return r.bulkSplice(fd)
	}
	bp := bufPool.Get().(*[]byte)
	for {
		n, err := rawRead(fd, *bp) // rawio_linux.go: why raw
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			bufPool.Put(bp)
			return false
		case 0:
		default:
			bufPool.Put(bp)
			r.errno = err
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
	r := s.reader(dir, src)
	if r.rc == nil {
		bp = bufPool.Get().(*[]byte)
		n, err = src.Read(*bp)
		return bp, n, err, false
	}
	return r.read(src)
}

func (s *session) reader(dir Direction, src net.Conn) *dirReader {
	// Only dir's own goroutine creates its reader; session.wake reads it
	// from others.
	r := s.readers[dir].Load()
	if r == nil {
		r = &dirReader{s: s, dir: dir, rc: tcpRawConn(src)}
		r.cb = r.callback
		s.readers[dir].Store(r)
	}
	return r
}

func (r *dirReader) read(src net.Conn) (bp *[]byte, n int, err error, relay bool) {
	r.bp, r.n, r.pipe, r.errno, r.relay = nil, 0, nil, 0, false
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

// relayBursts is the relay after negotiation on Linux. It holds nothing
// while idle, and moves bulk kernel to kernel:
//   - each wake-up reads what is there into a pooled 32 KiB buffer and
//     writes it on (one read(2) and one write(2) per message, like
//     HAProxy; for small messages cheaper than splicing through a pipe);
//   - when that read fills the buffer, the stream is moving bulk: from the
//     next wake-up on, what is queued goes with splice(2), through a pipe
//     taken from a pool for that wake-up only (bulkSplice), until a
//     wake-up finds less than a buffer's worth;
//   - a wait for the next message that lasts idleAfter parks the direction:
//     its goroutine ends and the idle poller resumes it (park_linux.go).
//
// Every call is made raw (rawio_linux.go). Plain io.Copy between two
// *net.TCPConn also splices, but Go's internal/poll.Splice holds its pipe
// pair for the whole copy, i.e. for the life of the connection: 2 more
// descriptors per direction, 6 per proxied connection, so a file limit of
// 20,000 ran out at about 3,300 connections (BENCHMARKS.md). Here pipes are
// shared by the connections that move bulk, and an idle connection holds
// its two sockets only.
//
// It reports ok=false when src or dst is not a TCP socket (the caller then
// falls back to io.Copy), and parked=true when the direction parked: the
// caller's goroutine then ends without ending the direction.
func (s *session) relayBursts(dir Direction, src, dst net.Conn) (ok, parked bool) {
	wrc := s.dstRawConn(dir, dst)
	if wrc == nil {
		return false, false
	}
	r := s.reader(dir, src)
	if r.rc == nil {
		return false, false
	}
	r.relaying = true
	for {
		r.idleDeadline(src)
		bp, n, err, _ := r.read(src)
		if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) && !(dir == ClientToServer && s.finWait.Load()) {
			// Idle for idleAfter: give the goroutine up. If parking is
			// refused, wait again (the next deadline, or the closer).
			if r.park() {
				return true, true
			}
			// Refused (the connection is closing, or epoll said no): wait
			// the ordinary way from now on.
			r.noPark = true
			_ = src.SetReadDeadline(time.Time{})
			if dir == ClientToServer && s.finWait.Load() {
				// finClient's bound on the drain, which the line above may
				// have cleared.
				_ = src.SetReadDeadline(time.Unix(0, s.finAt.Load()).Add(finLinger))
			}
			continue
		}
		if dir == ClientToServer && s.finWait.Load() {
			// The proxy closed first: the caller drains the client.
			if bp != nil {
				bufPool.Put(bp)
			}
			r.pipe = nil // with bytes in it, if any: for the GC, not the pool
			return true, false
		}
		if p := r.pipe; p != nil {
			// Bulk mode: n bytes wait in the pipe.
			r.pipe = nil
			m, werr := flushPipe(dst, wrc, p, n)
			s.bytes[dir].Add(m)
			if werr != nil {
				s.writeFailed(dir, werr)
				return true, false
			}
			pipePool.Put(p)
			// A wake-up that found less than a buffer's worth is a message,
			// not a stream: read the next one (cheaper for small ones).
			r.bulk = n >= negotiationBuf
			continue
		}
		if n > 0 {
			full := n == len(*bp)
			_, werr := writeAll(dst, wrc, (*bp)[:n])
			bufPool.Put(bp)
			if werr != nil {
				s.writeFailed(dir, werr)
				return true, false
			}
			s.bytes[dir].Add(int64(n))
			// A read that fills the buffer means a stream: what else is
			// queued, and what comes next, is spliced (bulkSplice).
			r.bulk = full
			continue
		}
		if bp != nil {
			bufPool.Put(bp)
		}
		if err == nil {
			err = io.EOF
		}
		s.readEnded(dir, err)
		return true, false
	}
}

// tcpStateClose is TCP_CLOSE in linux/include/net/tcp_states.h.
const tcpStateClose = 7

// tcpReset reports whether c is in TCP_CLOSE, which an RST from its peer
// leads to, where the peer's FIN leaves it in CLOSE_WAIT. (A FIN exchange
// the proxy began also ends there, in TIME_WAIT's place: session.peerReset
// asks only about sockets the proxy has not half-closed.) The state is
// TCP_INFO's first byte, tcpi_state (tcp(7)).
func tcpReset(c net.Conn) bool {
	rc := tcpRawConn(c)
	if rc == nil {
		return false
	}
	var info [8]byte // tcpi_state is byte 0 of struct tcp_info
	var serr error
	if err := rc.Control(func(fd uintptr) {
		l := uint32(len(info))
		_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&l)), 0)
		if errno != 0 {
			serr = errno
		}
	}); err != nil || serr != nil {
		return false
	}
	return info[0] == tcpStateClose
}

// unreadBytes is how many received bytes wait unread on c (SIOCINQ), or -1
// when unknown.
func unreadBytes(c net.Conn) int {
	rc := tcpRawConn(c)
	if rc == nil {
		return -1
	}
	n := -1
	if rc.Control(func(fd uintptr) { n = inq(fd) }) != nil {
		return -1
	}
	return n
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

// dstRawConn is dir's destination socket for raw writes (rawio_linux.go),
// fetched once; nil when dst is not a TCP socket. Only dir's goroutine
// (negotiating, then relaying) uses it.
func (s *session) dstRawConn(dir Direction, dst net.Conn) syscall.RawConn {
	if rc := s.dstRC[dir]; rc != nil {
		return rc
	}
	rc := tcpRawConn(dst)
	s.dstRC[dir] = rc
	return rc
}

// tcpRawConn is c's socket for raw system calls, or nil when c is not a
// TCP socket.
func tcpRawConn(c net.Conn) syscall.RawConn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// writeTo writes a negotiation chunk of dir to dst: raw on a TCP socket
// (rawio_linux.go: the scheduler need not hear of it), else dst.Write.
func (s *session) writeTo(dir Direction, dst net.Conn, b []byte) (int, error) {
	if wrc := s.dstRawConn(dir, dst); wrc != nil {
		return writeAll(dst, wrc, b)
	}
	return dst.Write(b)
}
