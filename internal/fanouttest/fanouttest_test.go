package fanouttest

import (
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestWait: Wait returns once every client has reached the mark, and at
// once for a mark reached before.
func TestWait(t *testing.T) {
	tr := New(3)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for n := 1; n <= 5; n++ {
				tr.Reached(n)
			}
		})
	}
	tr.Wait(t, 5, nil)
	tr.Wait(t, 2, nil)
	wg.Wait()
	if len(tr.marks) != 0 || tr.complete != 5 {
		t.Fatalf("marks %v, complete %d", tr.marks, tr.complete)
	}
}
