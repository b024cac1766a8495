package tcprelay

import (
	"bufio"
	"fmt"
	"net"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRelay: bytes go both ways; Pause cuts and refuses; Resume relays
// again on the same address.
func TestRelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "echo %s\n", sc.Text())
				}
			}()
		}
	}()
	r := Start(t, ln.Addr().String())
	defer r.Close()
	echo := func() (string, error) {
		c, err := net.Dial("tcp", r.Addr())
		if err != nil {
			return "", err
		}
		defer c.Close()
		fmt.Fprintln(c, "hi")
		return bufio.NewReader(c).ReadString('\n')
	}
	if got, err := echo(); err != nil || got != "echo hi\n" {
		t.Fatalf("through the relay: %q, %v", got, err)
	}
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, "one")
	br := bufio.NewReader(c)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	r.Pause()
	if _, err := br.ReadString('\n'); err == nil {
		t.Fatal("a connection outlived Pause")
	}
	if _, err := echo(); err == nil {
		t.Fatal("a connection was taken while paused")
	}
	if r.Cuts() == 0 {
		t.Fatal("no cut counted")
	}
	r.Resume()
	if got, err := echo(); err != nil || got != "echo hi\n" {
		t.Fatalf("after Resume: %q, %v", got, err)
	}
}
