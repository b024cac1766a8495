// Package browsertest drives headless chromium for the tests of what
// tidings serves to browsers, with the standard library only and no
// driver protocol: a test serves a page, starts chromium on its URL, and
// the page reports what it sees by POSTing JSON back to a test server,
// where a Report keeps the latest and lets the test wait on it.
//
//	bin := browsertest.Chromium(t) // skips without chromium, fails in CI
//	var seen browsertest.Report[map[string]string]
//	mux.Handle("POST /report", &seen)
//	browsertest.Start(t, bin, ts.URL+"/")
//	state := seen.Wait(t, ctx, "the page's first state", func(s map[string]string) bool { return s["status"] == "live" })
//
// Requests records what the page asked of a handler and what it was
// answered, for what the page itself cannot see (a preflight, a status
// that EventSource hides).
//
// It is for tests only, and needs a Unix system: chromium runs in a
// process group of its own, killed whole.
package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// Chromium returns the path of a chromium binary: $CHROMIUM, or chromium
// or chromium-browser on the PATH. Without one it skips the test, or,
// where the environment variable CI is set, fails it (.ci/run installs
// Debian's chromium, so a missing one there is a broken setup, not a
// reason to pass).
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI is set and no chromium binary was found (.ci/run installs Debian's chromium)")
	}
	t.Skip("no chromium binary (apt-get install chromium; .ci/run does); CI is not set")
	return ""
}

// Flags run chromium headless, as root, on a machine with no network but
// loopback, without anything that reaches out. Start passes them first.
var Flags = []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
	"--no-first-run", "--disable-background-networking", "--disable-component-update",
	"--disable-sync", "--disable-extensions", "--disable-dev-shm-usage"}

// Browser is a chromium started by Start.
type Browser struct {
	pid     int
	log     string
	exited  chan struct{}
	waitErr error
}

// Start runs chromium with Flags, a fresh profile and HOME in a temporary
// directory of the test, and args (flags, then usually a URL to open). It
// runs in a process group of its own, so that Stop ends its zygote,
// renderer and utility processes too; its output goes to a file, so that
// no goroutine copies it. The test's cleanup stops it and, if the test
// failed, logs the tail of what it said.
func Start(t testing.TB, bin string, args ...string) *Browser {
	t.Helper()
	dir := t.TempDir() // removed after the cleanup below has stopped chromium
	b := &Browser{log: filepath.Join(dir, "chromium.log"), exited: make(chan struct{})}
	out, err := os.Create(b.log)
	if err != nil {
		t.Fatal(err)
	}
	args = append(append(append([]string(nil), Flags...), "--user-data-dir="+filepath.Join(dir, "profile")), args...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	out.Close()
	if err != nil {
		t.Fatal(err)
	}
	b.pid = cmd.Process.Pid
	go func() { b.waitErr = cmd.Wait(); close(b.exited) }()
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			t.Logf("chromium %v said:\n%s", args, b.Output())
		}
	})
	return b
}

// Stop kills chromium's process group and waits for chromium. It returns
// how chromium exited, and may be called more than once.
func (b *Browser) Stop() error {
	syscall.Kill(-b.pid, syscall.SIGKILL) // ESRCH once the group is gone
	<-b.exited
	return b.waitErr
}

// Exited is closed when chromium has exited, by itself or by Stop.
func (b *Browser) Exited() <-chan struct{} { return b.exited }

// Err is how chromium exited; it is valid once Exited is closed.
func (b *Browser) Err() error {
	<-b.exited
	return b.waitErr
}

// Output is the tail of what chromium wrote.
func (b *Browser) Output() string {
	out, _ := os.ReadFile(b.log)
	if len(out) > 4000 {
		out = out[len(out)-4000:]
	}
	return string(out)
}

// Screenshot keeps a picture of url as the test artifact name (a .png in
// t.ArtifactDir(), kept with go test -artifacts), from a chromium run of
// its own with args added (a --window-size, a --timeout in ms to let the
// page load what it streams). It is only an artifact: a failure is
// logged, not a test failure.
func Screenshot(t testing.TB, ctx context.Context, bin, url, name string, args ...string) {
	t.Helper()
	png := filepath.Join(t.ArtifactDir(), name)
	b := Start(t, bin, append(append([]string{"--screenshot=" + png, "--hide-scrollbars"}, args...), url)...)
	select {
	case <-b.Exited():
	case <-ctx.Done():
		t.Logf("screenshot: %v\n%s", context.Cause(ctx), b.Output())
		return
	}
	img, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(img, []byte("\x89PNG")) {
		t.Logf("no screenshot: %v\n%s", err, b.Output())
		return
	}
	t.Logf("screenshot: %s (%d bytes)", png, len(img))
}

// Report is an http.Handler that keeps the last JSON value POSTed to it
// (by the page under test, reporting what it sees) and lets a test wait
// until that value says what it wants. Its zero value is ready to use.
type Report[T any] struct {
	mu   sync.Mutex
	last T
	n    int           // values received
	wake chan struct{} // closed on the next value
}

// ServeHTTP decodes the body as a T and keeps it: 204, or 400 for a body
// that does not decode (and keeps nothing).
func (r *Report[T]) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var v T
	if err := json.NewDecoder(req.Body).Decode(&v); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Set(v)
	w.WriteHeader(http.StatusNoContent)
}

// Set keeps v as the last value, as a POST of it would.
func (r *Report[T]) Set(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = v
	r.n++
	if r.wake != nil {
		close(r.wake)
		r.wake = nil
	}
}

// Last returns the last value and whether there was one.
func (r *Report[T]) Last() (T, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last, r.n > 0
}

// Wait returns the last value as soon as there is one for which ok
// holds, or fails the test, with what and the last value, when ctx ends
// first.
func (r *Report[T]) Wait(t testing.TB, ctx context.Context, what string, ok func(T) bool) T {
	t.Helper()
	for {
		r.mu.Lock()
		last, n := r.last, r.n
		if n > 0 && ok(last) {
			r.mu.Unlock()
			return last
		}
		if r.wake == nil {
			r.wake = make(chan struct{})
		}
		wake := r.wake
		r.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; the page reported %s", what, context.Cause(ctx), describe(last, n))
		}
	}
}

func describe(v any, n int) string {
	if n == 0 {
		return "nothing"
	}
	if s, ok := v.(fmt.Stringer); ok {
		return s.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// Requests records the requests a handler gets (from the page under test)
// with the status and headers of each answer, so that a test can check
// what the browser sent and what the server said. Its zero value is ready
// to use.
type Requests struct {
	mu   sync.Mutex
	list []Request
}

// Request is one request that Requests recorded.
type Request struct {
	Method string
	URL    *url.URL
	Header http.Header // the request's
	Status int
	Answer http.Header // the answer's, as the status was written
}

// Wrap returns h, recording each request when its status is written: at
// once for a stream, whose handler returns only when the stream ends.
// The response writer keeps http.ResponseController working (Flush,
// deadlines) by Unwrap.
func (l *Requests) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, note: func(status int) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.list = append(l.list, Request{Method: r.Method, URL: r.URL, Header: r.Header.Clone(),
				Status: status, Answer: w.Header().Clone()})
		}}
		h.ServeHTTP(sw, r)
		sw.writeHeader(http.StatusOK) // a handler that wrote nothing
	})
}

// List returns the requests recorded so far, in the order their status
// was written.
func (l *Requests) List() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Request(nil), l.list...)
}

func (r Request) String() string {
	return fmt.Sprintf("%s %s %d", r.Method, r.URL, r.Status)
}

type statusWriter struct {
	http.ResponseWriter
	note  func(status int)
	wrote bool
}

func (w *statusWriter) writeHeader(status int) {
	if !w.wrote {
		w.wrote = true
		w.note(status)
	}
}

func (w *statusWriter) WriteHeader(status int) {
	w.writeHeader(status)
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.writeHeader(http.StatusOK)
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
