// Package cors sets the CORS headers of the HTTP fronts (the native
// transport and the Fauna front) by one rule, so that the two cannot
// drift apart on what they let another origin do.
package cors

import (
	"net/http"
	"slices"
)

// Policy is who may call a front from another origin, and what they may
// send and read. The zero Policy allows no other origin.
type Policy struct {
	// Origins are the allowed origins; "*" allows any, without
	// credentials.
	Origins []string
	// Credentials lets the origins listed by name (never "*") send
	// cookies and Authorization.
	Credentials bool
	// AllowHeaders lists the request headers a preflight allows.
	AllowHeaders string
	// ExposeHeaders lists the response headers a page may read.
	ExposeHeaders string
}

// Set sets the CORS headers of a response, errors included: the exact
// origin when it is listed (with credentials only then), "*" for an open
// policy without credentials, nothing otherwise; and Vary: Origin whenever
// the policy lets any origin in. An arbitrary Origin is never reflected
// with credentials.
func (p *Policy) Set(w http.ResponseWriter, r *http.Request) {
	if len(p.Origins) == 0 {
		return
	}
	// Vary: Origin on every response of a policy that lets origins in,
	// those without an Origin too: a cache that kept a same-origin answer,
	// without CORS headers, must not hand it to a cross-origin page.
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	switch {
	case slices.Contains(p.Origins, origin):
		h.Set("Access-Control-Allow-Origin", origin)
		if p.Credentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
	case slices.Contains(p.Origins, "*"):
		h.Set("Access-Control-Allow-Origin", "*")
	default:
		return
	}
	if p.ExposeHeaders != "" {
		h.Set("Access-Control-Expose-Headers", p.ExposeHeaders)
	}
}

// Preflight answers a CORS preflight (an OPTIONS request) with 204, the
// methods given and the headers allowed; it reports whether r was one. A
// preflight from an origin the policy does not allow gets no
// Access-Control-Allow-Origin, which the browser takes as a refusal.
func (p *Policy) Preflight(w http.ResponseWriter, r *http.Request, methods string) bool {
	if r.Method != http.MethodOptions {
		return false
	}
	p.Set(w, r)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", methods)
	h.Set("Access-Control-Allow-Headers", p.AllowHeaders)
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}
