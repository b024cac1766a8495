package cors

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSet: the exact origin when listed, with credentials only then; "*"
// for an open policy, never with credentials; nothing for others.
func TestSet(t *testing.T) {
	for _, c := range []struct {
		name        string
		p           Policy
		origin      string
		allow, cred string
	}{
		{"none", Policy{}, "https://a.example", "", ""},
		{"listed", Policy{Origins: []string{"https://a.example"}, Credentials: true}, "https://a.example", "https://a.example", "true"},
		{"unlisted", Policy{Origins: []string{"https://a.example"}, Credentials: true}, "https://b.example", "", ""},
		{"any", Policy{Origins: []string{"*"}, Credentials: true}, "https://b.example", "*", ""},
		{"no origin", Policy{Origins: []string{"*"}}, "", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if c.origin != "" {
				r.Header.Set("Origin", c.origin)
			}
			w := httptest.NewRecorder()
			c.p.ExposeHeaders = "X-Txn-Time"
			c.p.Set(w, r)
			h := w.Header()
			if h.Get("Access-Control-Allow-Origin") != c.allow || h.Get("Access-Control-Allow-Credentials") != c.cred {
				t.Fatalf("got %v", h)
			}
			if c.allow != "" && h.Get("Access-Control-Expose-Headers") != "X-Txn-Time" {
				t.Fatalf("no expose list: %v", h)
			}
			if vary := h.Get("Vary") == "Origin"; vary != (len(c.p.Origins) > 0) {
				t.Fatalf("Vary: %v", h)
			}
		})
	}
}

// TestPreflight: an OPTIONS request is answered with 204, the methods and
// the headers; any other is left to the handler.
func TestPreflight(t *testing.T) {
	p := Policy{Origins: []string{"*"}, AllowHeaders: "Authorization, X-Format"}
	w := httptest.NewRecorder()
	if p.Preflight(w, httptest.NewRequest(http.MethodPost, "/", nil), "POST") {
		t.Fatal("a POST taken for a preflight")
	}
	r := httptest.NewRequest(http.MethodOptions, "/", nil)
	r.Header.Set("Origin", "https://a.example")
	if !p.Preflight(w, r, "POST, OPTIONS") {
		t.Fatal("an OPTIONS not answered")
	}
	h := w.Header()
	if w.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Methods") != "POST, OPTIONS" ||
		h.Get("Access-Control-Allow-Headers") != "Authorization, X-Format" || h.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("got %d %v", w.Code, h)
	}
}
