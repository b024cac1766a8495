package txlog_test

import (
	"testing"

	"github.com/tidings/tidings/txlog"
	"github.com/tidings/tidings/txlog/logtest"
)

func TestMemoryConformance(t *testing.T) {
	logtest.Run(t, func(t *testing.T, opt logtest.Options) txlog.Log {
		if opt.Retention {
			return txlog.NewMemory(txlog.MemoryOptions{MaxRecords: 50})
		}
		return txlog.NewMemory(txlog.MemoryOptions{})
	})
}

func TestFileConformance(t *testing.T) {
	logtest.Run(t, func(t *testing.T, opt logtest.Options) txlog.Log {
		// Small segments, so that reads cross segment boundaries; with
		// Retention, a few segments' worth of bytes.
		fopt := txlog.FileOptions{SegmentSize: 4 << 10}
		if opt.Retention {
			fopt = txlog.FileOptions{SegmentSize: 1 << 10, MaxBytes: 4 << 10}
		}
		dir := t.TempDir()
		if opt.Reopen != nil {
			dir = opt.Reopen.(*txlog.FileLog).Dir()
		}
		l, err := txlog.OpenFile(dir, fopt)
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}
