//go:build !unix

package main

import "syscall"

func raiseFileLimit() {}

func fileLimit() uint64 { return 0 }

func receiveBuffer(int) func(network, address string, c syscall.RawConn) error { return nil }

func sendBuffer(int) func(network, address string, c syscall.RawConn) error { return nil }
