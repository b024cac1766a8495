package jetstream

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		// A server of the fault tests, in a process of its own.
		runChildServer(cfg)
		return
	}
	goleak.VerifyTestMain(m)
}
