// Package nodetest is what the tests that run real JavaScript clients in
// Node share: the check that Node and the pinned packages are there.
package nodetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Need skips the test without node, or without one of the packages in
// dir's node_modules, except in CI (CI set), where .ci/run installs them
// (npm ci from the lockfile in dir) and their absence is a failure.
func Need(t testing.TB, dir string, packages ...string) {
	t.Helper()
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not installed"
	}
	for _, p := range packages {
		if missing != "" {
			break
		}
		if _, err := os.Stat(filepath.Join(dir, "node_modules", filepath.FromSlash(p), "package.json")); err != nil {
			missing = p + " is not installed: run npm ci in " + filepath.ToSlash(dir)
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal(missing)
	}
	t.Skip(missing)
}
