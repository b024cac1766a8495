package nodetest

import (
	"testing"

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
