//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
)

// raiseFileLimit raises the soft limit of open files to the hard limit:
// every subscriber over HTTP holds a descriptor in the server and one in
// the client process.
func raiseFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			fmt.Fprintln(os.Stderr, "bench: raising the open files limit:", err)
		}
	}
}

// fileLimit is the soft limit of open files.
func fileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return l.Cur
}

// setBuffer returns a net.Dialer or net.ListenConfig Control function that
// sets the socket's buffer (SO_RCVBUF or SO_SNDBUF) before it connects or
// listens, so that TCP's window follows it (accepted sockets inherit the
// listener's).
func setBuffer(opt, size int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, size) })
		if err != nil {
			return err
		}
		return serr
	}
}

// receiveBuffer and sendBuffer set SO_RCVBUF and SO_SNDBUF.
func receiveBuffer(size int) func(network, address string, c syscall.RawConn) error {
	return setBuffer(syscall.SO_RCVBUF, size)
}

func sendBuffer(size int) func(network, address string, c syscall.RawConn) error {
	return setBuffer(syscall.SO_SNDBUF, size)
}
