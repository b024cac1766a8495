package nodetest

import (
	"io"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestNeed: a package that is not there skips the test (outside CI).
func TestNeed(t *testing.T) {
	t.Setenv("CI", "")
	skipped := false
	t.Run("missing", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Need(t, t.TempDir(), "no-such-package")
	})
	if !skipped {
		t.Fatal("a missing package did not skip")
	}
}

// TestStart: node's lines come in order, stdin reaches it, and it is gone
// at the end of the test.
func TestStart(t *testing.T) {
	Need(t, ".")
	p := Start(t, Options{Args: []string{"-e", `
		console.log("ready")
		process.stdin.on("data", d => { console.log("got " + String(d).trim()); process.exit(0) })`}})
	if l := p.Next(t, 30*time.Second); l != "ready" {
		t.Fatalf("first line %q", l)
	}
	io.WriteString(p.Stdin, "hello\n")
	if l := p.Next(t, 30*time.Second); l != "got hello" {
		t.Fatalf("second line %q", l)
	}
	<-p.Done()
}
