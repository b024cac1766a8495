package txlog

import (
	"fmt"
	"sync"
	"testing"
)

// benchWrites is a typical small transaction: one update of a 100-byte
// document.
func benchWrites() []Write {
	img := []byte(`{"name":"Fireball","element":["fire","air"],"cost":15,"level":3,"description":"a ball of fire"}`)
	return []Write{{Ref: Ref{"spells", "1234567890"}, Action: ActionUpdate, BeforeTxn: 1, Before: img, After: img}}
}

func BenchmarkMemoryAppend(b *testing.B) {
	l := NewMemory(MemoryOptions{})
	defer l.Close()
	ws := benchWrites()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Append(ws); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}

// BenchmarkFileAppend compares an fsync per commit (serial) with group
// commit at 1, 16 and 64 concurrent committers, all under SyncBatch: every
// Append returns after an fsync covers its record. Compare commits/s of
// serial and group at the same committer count, from one run.
func BenchmarkFileAppend(b *testing.B) {
	for _, mode := range []string{"serial", "group"} {
		for _, committers := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/committers=%d", mode, committers), func(b *testing.B) {
				l, err := OpenFile(b.TempDir(), FileOptions{})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				l.serialSync = mode == "serial"
				ws := benchWrites()
				b.ReportAllocs()
				b.ResetTimer()
				var wg sync.WaitGroup
				for c := range committers {
					n := b.N / committers
					if c < b.N%committers {
						n++
					}
					wg.Go(func() {
						for range n {
							if _, err := l.Append(ws); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
				b.ReportMetric(float64(b.N)/float64(max(l.syncs.Load(), 1)), "commits/fsync")
			})
		}
	}
}

const benchReadRecords = 100_000

// BenchmarkRead reads 100,000 records from the start, from memory and from
// segment files (in the page cache: this measures decoding and framing,
// not the disk).
func BenchmarkRead(b *testing.B) {
	for _, kind := range []string{"memory", "file"} {
		b.Run(kind, func(b *testing.B) {
			var l appendLog
			if kind == "memory" {
				l = NewMemory(MemoryOptions{MaxRecords: benchReadRecords})
			} else {
				fl, err := OpenFile(b.TempDir(), FileOptions{Sync: SyncNever})
				if err != nil {
					b.Fatal(err)
				}
				l = fl
			}
			defer l.Close()
			ws := benchWrites()
			for range benchReadRecords {
				if _, err := l.Append(ws); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				for _, err := range l.Read(Cursor{Log: l.ID()}) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != benchReadRecords {
					b.Fatalf("read %d records", n)
				}
			}
			b.ReportMetric(float64(b.N)*benchReadRecords/b.Elapsed().Seconds(), "records/s")
		})
	}
}
