package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain is also the client process of the tests that spawn one: the
// test binary started again with clientEnv set.
func TestMain(m *testing.M) {
	if spec := os.Getenv(clientEnv); spec != "" {
		os.Exit(clientMain(spec))
	}
	goleak.VerifyTestMain(m)
}
