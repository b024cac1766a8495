//go:build !unix

package txlog

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir opens dir's LOCK file. Without flock it cannot keep a second
// process out: on these systems, open a directory from one process only.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("txlog: %w", err)
	}
	return f, nil
}

// syncDir does nothing where directories cannot be fsynced.
func syncDir(string) error { return nil }
