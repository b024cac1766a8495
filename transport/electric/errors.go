package electric

import (
	"encoding/json"
	"net/http"
)

// paramError is a request parameter this endpoint cannot serve: a 400 in
// Electric's shape, {"message":"Invalid request","errors":{param:[why]}},
// which the client raises as a FetchError and does not retry.
type paramError struct {
	param string // the query parameter at fault: table, where, offset…
	why   string
}

func (e *paramError) Error() string { return e.param + ": " + e.why }

// writeParamError answers a paramError.
func writeParamError(w http.ResponseWriter, e *paramError) {
	writeJSONError(w, http.StatusBadRequest, "Invalid request", map[string][]string{e.param: {e.why}})
}

// writeJSONError answers status with Electric's error body, never cached.
func writeJSONError(w http.ResponseWriter, status int, message string, errs map[string][]string) {
	body := map[string]any{"message": message}
	if errs != nil {
		body["errors"] = errs
	}
	b, _ := json.Marshal(body)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Surrogate-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}
