package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidings/tidings/internal/browsertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// observer is added to the page under test: every 100 ms it POSTs the text
// of the four sets and of the history to /report, so that the test reads
// back what the page shows.
const observer = `<script>
setInterval(() => {
  const state = {};
  for (const id of ["fire", "water", "earth", "air", "history"]) {
    state[id] = document.getElementById(id).innerText;
  }
  fetch("/report", {method: "POST", body: JSON.stringify(state)});
}, 100);
</script>`

// TestPageInBrowser loads the spells page in headless Chromium, commits a
// change through the write endpoint, and reads back from the page's DOM
// that the spell left one set and entered another, and that its history
// shows the diff. A screenshot of the page is kept as a test artifact
// (go test -run TestPageInBrowser -artifacts -outputdir DIR ./examples/spells).
func TestPageInBrowser(t *testing.T) {
	bin := browsertest.Chromium(t)
	b, err := newBroker("")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mux, srv := handler(b)

	var shown browsertest.Report[map[string]string]
	test := http.NewServeMux()
	test.Handle("/tidings/", mux)
	test.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(bytes.Replace(page, []byte("</body>"), []byte(observer+"</body>"), 1))
	})
	test.Handle("POST /report", &shown)
	ts := httptest.NewServer(test)
	t.Cleanup(ts.Close) // after chromium has gone: cleanups run last first
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.ShutdownWindow = 1
		srv.Shutdown(ctx)
	})

	ctx, cancel := context.WithTimeoutCause(context.Background(), 60*time.Second, errors.New("the test's deadline"))
	defer cancel()
	browsertest.Start(t, bin, ts.URL+"/")

	shown.Wait(t, ctx, "the seeded sets", func(s map[string]string) bool {
		return strings.Contains(s["fire"], "Fire Beak (1)") && strings.Contains(s["water"], "Mist (6)")
	})

	resp, err := http.Post(ts.URL+"/tidings/write", "application/json",
		strings.NewReader(`{"writes":[{"action":"update","collection":"spells","id":"1","data":{"element":"water"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("write: %s", resp.Status)
	}
	state := shown.Wait(t, ctx, "Fire Beak moved to water", func(s map[string]string) bool {
		return !strings.Contains(s["fire"], "Fire Beak") && strings.Contains(s["water"], "Fire Beak (1)") &&
			strings.Contains(s["history"], `diff {"element":"water"}`)
	})
	t.Logf("the page shows: %q", state)
	browsertest.Screenshot(t, ctx, bin, ts.URL+"/", "spells.png", "--window-size=1100,700", "--timeout=3000")
}
