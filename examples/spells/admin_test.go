package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidings/tidings/admin"
)

// The example serves the operators' view at /admin/, which its banner
// shows, to this machine: here, the test.
func TestAdminView(t *testing.T) {
	_, s := startExample(t, "")
	if !strings.Contains(banner(s), s.url+"/admin/") {
		t.Errorf("the banner does not show the view:\n%s", banner(s))
	}
	resp, err := http.Get(s.url + "/admin/?format=json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep admin.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %v", resp.Status, err)
	}
	if rep.Broker.Commits != 1 || rep.Transport == nil { // the seeding
		t.Fatalf("the view: %+v", rep)
	}
}

// Without a token, only loopback addresses see the view; with one, only
// those who give it as basic auth's password, from anywhere.
func TestOperatorsOnly(t *testing.T) {
	view := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "the view") })
	for _, c := range []struct {
		token, remote, password string
		status                  int
	}{
		{"", "127.0.0.1:1234", "", http.StatusOK},
		{"", "[::1]:1234", "", http.StatusOK},
		{"", "192.0.2.7:1234", "", http.StatusForbidden},
		{"", "192.0.2.7:1234", "anything", http.StatusForbidden},
		{"s3cret", "192.0.2.7:1234", "s3cret", http.StatusOK},
		{"s3cret", "127.0.0.1:1234", "", http.StatusUnauthorized}, // a token is asked of everyone
		{"s3cret", "192.0.2.7:1234", "s3cre", http.StatusUnauthorized},
		{"s3cret", "192.0.2.7:1234", "s3cret!", http.StatusUnauthorized},
	} {
		r := httptest.NewRequest("GET", "/admin/", nil)
		r.RemoteAddr = c.remote
		if c.password != "" {
			r.SetBasicAuth("admin", c.password)
		}
		w := httptest.NewRecorder()
		operatorsOnly(c.token, view).ServeHTTP(w, r)
		if w.Code != c.status {
			t.Errorf("token %q, from %s with password %q: %d, want %d", c.token, c.remote, c.password, w.Code, c.status)
		}
		if w.Code == http.StatusUnauthorized && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("401 without a Basic challenge: %v", w.Header())
		}
		if (w.Code == http.StatusOK) != (w.Body.String() == "the view") {
			t.Errorf("token %q, from %s: %d %q", c.token, c.remote, w.Code, w.Body)
		}
	}
}
