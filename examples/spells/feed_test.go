package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The feed command printed on start shows spell 1's history, not an empty
// page.
func TestPrintedFeedURL(t *testing.T) {
	b, err := newBroker("")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mux, _, _ := handler(b, nil)
	ts := httptest.NewServer(mux)
	defer ts.Close()
	resp, err := http.Get(feedURL(ts.URL, b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Events []struct {
			Type string `json:"type"`
		} `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: %v", resp.Status, err)
	}
	if len(page.Events) == 0 || page.Events[0].Type != "version" {
		t.Fatalf("the printed feed shows %+v", page.Events)
	}
}
