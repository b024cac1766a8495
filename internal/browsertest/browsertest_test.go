package browsertest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A value POSTed to a Report wakes a test waiting for it; a body that is
// not JSON is refused and changes nothing.
func TestReport(t *testing.T) {
	var r Report[map[string]string]
	ts := httptest.NewServer(&r)
	defer ts.Close()
	if _, ok := r.Last(); ok {
		t.Fatal("a new Report has a value")
	}
	post := func(body string) int {
		resp, err := http.Post(ts.URL, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(`{"status":"connecting"}`); code != http.StatusNoContent {
		t.Fatalf("POST: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		if resp, err := http.Post(ts.URL, "application/json", strings.NewReader(`{"status":"live"}`)); err == nil {
			resp.Body.Close()
		}
	}()
	got := r.Wait(t, ctx, "live", func(s map[string]string) bool { return s["status"] == "live" })
	if got["status"] != "live" {
		t.Fatalf("Wait returned %v", got)
	}
	if code := post(`not json`); code != http.StatusBadRequest {
		t.Fatalf("a bad body: %d", code)
	}
	if last, _ := r.Last(); last["status"] != "live" {
		t.Fatalf("after a bad body the last value is %v", last)
	}
}

// Stop ends the whole process group: what chromium started (its zygote and
// renderers) goes with it. A shell script stands in for chromium.
func TestStopKillsTheGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	script := filepath.Join(dir, "fake-chromium")
	err := os.WriteFile(script, []byte("#!/bin/sh\nsleep 600 &\necho $! > "+pidFile+".tmp\nmv "+pidFile+".tmp "+pidFile+"\nwait\n"), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	b := Start(t, script, "http://127.0.0.1:1/")
	var child int
	for deadline := time.Now().Add(10 * time.Second); child == 0; {
		if out, err := os.ReadFile(pidFile); err == nil {
			child, _ = strconv.Atoi(strings.TrimSpace(string(out)))
		} else if time.Now().After(deadline) {
			t.Fatalf("the script never started its child: %v\n%s", err, b.Output())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	select {
	case <-b.Exited():
		t.Fatalf("the script exited by itself: %v", b.Err())
	default:
	}
	b.Stop()
	// The child, orphaned, is dead once it is gone or a zombie (reaping
	// it is init's business).
	for deadline := time.Now().Add(10 * time.Second); ; {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(child) + "/stat")
		if err != nil || zombie(stat) {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("the script's child %d outlived Stop: %s", child, stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.Stop(); err == nil {
		t.Error("a second Stop says the script exited cleanly; want the kill")
	}
}

// zombie reports whether /proc/PID/stat says the process is a zombie: its
// state follows the command name in parentheses.
func zombie(stat []byte) bool {
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && strings.HasPrefix(string(stat[i+1:]), " Z")
}

// Requests records a request as soon as its status is written, while a
// stream's handler still runs, and the stream can still flush.
func TestRequests(t *testing.T) {
	var log Requests
	flushed := make(chan struct{})
	release := make(chan struct{})
	h := log.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refused" {
			w.Header().Set("X-Why", "teapot")
			w.WriteHeader(http.StatusTeapot)
			return
		}
		w.Write([]byte("first\n"))
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush through the recorder: %v", err)
		}
		close(flushed)
		<-release
	}))
	ts := httptest.NewServer(h)
	defer ts.Close()

	resp, err := http.Get(ts.URL + "/refused?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Get(ts.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-flushed
	got := log.List()
	close(release)
	if len(got) != 2 || got[0].Status != http.StatusTeapot || got[0].Answer.Get("X-Why") != "teapot" ||
		got[0].URL.Query().Get("x") != "1" || got[1].Status != http.StatusOK || got[1].URL.Path != "/stream" {
		t.Fatalf("recorded %v", got)
	}
}
