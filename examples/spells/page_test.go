package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
	bin := findChromium()
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no chromium: .ci/run installs Debian's chromium")
		}
		t.Skip("no chromium installed")
	}
	b, err := newBroker("")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mux, srv := handler(b)

	var mu sync.Mutex
	var last map[string]string
	test := http.NewServeMux()
	test.Handle("/tidings/", mux)
	test.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(bytes.Replace(page, []byte("</body>"), []byte(observer+"</body>"), 1))
	})
	test.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		var state map[string]string
		if err := json.NewDecoder(r.Body).Decode(&state); err == nil {
			mu.Lock()
			last = state
			mu.Unlock()
		}
	})
	ts := httptest.NewServer(test)
	defer ts.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.ShutdownWindow = 1
		srv.Shutdown(ctx)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stop := startChromium(t, bin, t.TempDir(), ts.URL+"/")
	defer stop()

	// waitFor polls the page's last report until cond holds.
	waitFor := func(what string, cond func(map[string]string) bool) map[string]string {
		t.Helper()
		for {
			mu.Lock()
			state := last
			mu.Unlock()
			if state != nil && cond(state) {
				return state
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the page never showed %s; it shows %q", what, state)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitFor("the seeded sets", func(s map[string]string) bool {
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
	state := waitFor("Fire Beak moved to water", func(s map[string]string) bool {
		return !strings.Contains(s["fire"], "Fire Beak") && strings.Contains(s["water"], "Fire Beak (1)") &&
			strings.Contains(s["history"], `diff {"element":"water"}`)
	})
	t.Logf("the page shows: %q", state)
	screenshot(t, bin, ts.URL+"/")
}

func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// startChromium runs headless chromium on url in a process group of its
// own; the returned stop kills the group and waits.
func startChromium(t *testing.T, bin, dir string, args ...string) (stop func()) {
	t.Helper()
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--disable-dev-shm-usage", "--user-data-dir=" + filepath.Join(dir, "profile")}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	return func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

// screenshot keeps a picture of the page as the artifact spells.png.
func screenshot(t *testing.T, bin, url string) {
	png := filepath.Join(t.ArtifactDir(), "spells.png")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--window-size=1100,700", "--timeout=3000",
		"--screenshot="+png, url)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if b, rerr := os.ReadFile(png); err != nil || rerr != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Logf("no screenshot: %v %v\n%s", err, rerr, out)
		return
	}
	t.Logf("screenshot: %s", png)
}
