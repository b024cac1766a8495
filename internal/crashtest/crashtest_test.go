package crashtest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// childEnv makes this test binary the child: its value says what to do.
const childEnv = "CRASHTEST_TEST_CHILD"

func TestMain(m *testing.M) {
	if what := os.Getenv(childEnv); what != "" {
		child(what)
		return
	}
	goleak.VerifyTestMain(m)
}

// child is what the tests below start: it writes lines and waits to be
// killed (or, for "exit", exits on its own).
func child(what string) {
	switch what {
	case "count":
		// Numbered lines forever, and something on stderr.
		fmt.Fprintln(os.Stderr, "child here")
		for i := 1; ; i++ {
			fmt.Printf("line %d\n", i)
			time.Sleep(time.Millisecond)
		}
	case "cut":
		// Two lines and the start of a third, in one write, then nothing.
		os.Stdout.WriteString("line 1\nline 2\ncut")
	case "exit":
		fmt.Println("line 1")
		os.Exit(0)
	case "quiet":
	}
	time.Sleep(time.Minute)
	os.Exit(3)
}

func start(t *testing.T, what string, watchdog time.Duration) *Child {
	t.Helper()
	c, err := Start(Options{Run: "^$", Env: []string{childEnv + "=" + what}, Watchdog: watchdog})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The child is killed on a line the parent reads; the lines it wrote
// before the kill took effect are handed over after it, each once, in
// order.
func TestKillOnLine(t *testing.T) {
	c := start(t, "count", 0)
	var got []string
	afterKill := 0
	res, err := c.Watch(func(line string) error {
		got = append(got, line)
		if c.Killed() {
			afterKill++
		} else if line == "line 10" {
			c.Kill()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 10 || len(got) != 10+afterKill {
		t.Fatalf("%d lines, %d of them after the kill", len(got), afterKill)
	}
	for i, line := range got {
		if want := fmt.Sprintf("line %d", i+1); line != want {
			t.Fatalf("line %d is %q, want %q", i, line, want)
		}
	}
	if res.Stderr != "child here\n" {
		t.Fatalf("stderr %q", res.Stderr)
	}
}

// A line cut by the kill is not handed over; its length is reported.
func TestPartialLine(t *testing.T) {
	c := start(t, "cut", 0)
	var got []string
	res, err := c.Watch(func(line string) error {
		got = append(got, line)
		if line == "line 2" {
			c.Kill()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "line 1,line 2" || res.Partial != len("cut") {
		t.Fatalf("lines %q, partial %d", got, res.Partial)
	}
}

// KillAfter and KillWhen kill the child without a line asking for it.
func TestKillAfterAndWhen(t *testing.T) {
	c := start(t, "quiet", 0)
	c.KillAfter(10 * time.Millisecond)
	if _, err := c.Watch(func(string) error { return nil }); err != nil || !c.Killed() {
		t.Fatalf("after KillAfter: %v, killed %v", err, c.Killed())
	}

	c = start(t, "quiet", 0)
	ready := make(chan struct{})
	time.AfterFunc(10*time.Millisecond, func() { close(ready) })
	c.KillWhen(ready)
	if _, err := c.Watch(func(string) error { return nil }); err != nil || !c.Killed() {
		t.Fatalf("after KillWhen: %v, killed %v", err, c.Killed())
	}
}

// Watch fails if the child ends on its own, if the watchdog expires, and
// with the errors the line function returns.
func TestWatchFails(t *testing.T) {
	c := start(t, "exit", 0)
	_, err := c.Watch(func(string) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "ended its output before it was killed") || !strings.Contains(err.Error(), "did not die of SIGKILL") {
		t.Fatalf("a child that exits: %v", err)
	}

	c = start(t, "quiet", 50*time.Millisecond)
	_, err = c.Watch(func(string) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "still running after 50ms") {
		t.Fatalf("a child past the watchdog: %v", err)
	}

	c = start(t, "count", 0)
	_, err = c.Watch(func(line string) error {
		if line == "line 3" {
			c.Kill()
			return fmt.Errorf("bad %s", line)
		}
		return nil
	})
	if err == nil || err.Error() != "bad line 3" {
		t.Fatalf("a line function's error: %v", err)
	}
}
