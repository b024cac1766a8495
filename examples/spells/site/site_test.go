package site

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tidings/tidings/broker"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSeed: the seed creates the six spells once; seeding again (a node
// joining others, a restart) writes nothing; the page is served at /.
func TestSeed(t *testing.T) {
	b, err := broker.New(broker.Options{Schema: Schema()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := Seed(ctx, b); err != nil {
		t.Fatal(err)
	}
	head := b.Head()
	if err := Seed(ctx, b); err != nil || b.Head() != head {
		t.Fatalf("seeding again: %v, head %d, was %d", err, b.Head(), head)
	}
	if n := b.Stats().Commits; n != 1 {
		t.Fatalf("%d commits, want 1", n)
	}
	mux, _, _ := Mux(b, nil)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != string(Page) {
		t.Fatalf("GET /: %d, %d bytes", rec.Code, rec.Body.Len())
	}
}
