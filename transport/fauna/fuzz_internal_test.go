package fauna

// Fuzz targets of the decoders of outside input: the FQL v4 expression of
// POST /stream (parseTarget), v10 event source tokens (parseToken), and the
// bodies of POST /query/1 and /feed/1, the last two through the Handler
// with a recorder, since their parsing is inline. Their seeds run in plain
// go test; fuzz one with, for example:
//
//	go test -run '^$' -fuzz FuzzParseTarget -fuzztime 45s ./transport/fauna/

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

// fuzzKey signs the tokens of the fuzz targets' Handler, so that tokens
// in seed files stay valid from one run to the next.
var fuzzKey = []byte("tidings fuzz key")

// fuzzHandler is a Handler with a fixed TokenKey over a fresh broker of
// the spells collection, the byElement index (one term, element) and the
// term-less all_spells index, closed when f ends.
func fuzzHandler(f *testing.F) (*Handler, *broker.Broker) {
	f.Helper()
	b, err := broker.New(broker.Options{Schema: index.Schema{
		Collections: []string{"spells"},
		Indexes: []index.Definition{
			{Name: "byElement", Collection: "spells", Terms: []string{"element"}},
			{Name: "all_spells", Collection: "spells"},
		},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	return &Handler{Server: &transport.Server{Broker: b}, TokenKey: fuzzKey}, b
}

// sameTarget reports whether a and b follow the same thing (terms
// compared as JSON values; no terms and an empty list are the same).
func sameTarget(a, b subscription.Target) bool {
	if a.Kind != b.Kind || a.Ref != b.Ref || a.Collection != b.Collection || a.Index != b.Index || len(a.Terms) != len(b.Terms) {
		return false
	}
	for i := range a.Terms {
		if !a.Terms[i].Equal(b.Terms[i]) {
			return false
		}
	}
	return true
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

// ---------------------------------------------------------------------------
// POST /stream: parseTarget.

// v4Spellings writes t in every FQL v4 spelling the package doc lists for
// its kind: a document ref as Ref(Collection(c), id), as a ref value, and
// as Ref("collections/c/id") where c and id have no slash; a match with
// its terms as an array, and also as a scalar (one term) or absent (none).
func v4Spellings(t subscription.Target) []string {
	switch t.Kind {
	case subscription.KindDocument:
		c, id := jsonString(t.Ref.Collection), jsonString(t.Ref.ID)
		out := []string{
			`{"ref":{"collection":` + c + `},"id":` + id + `}`,
			`{"id":` + id + `,"ref":{"collection":` + c + `}}`,
			`{"@ref":{"id":` + id + `,"collection":{"@ref":{"id":` + c + `,"collection":{"@ref":{"id":"collections"}}}}}}`,
		}
		if t.Ref.Collection != "" && t.Ref.ID != "" && !strings.Contains(t.Ref.Collection+t.Ref.ID, "/") {
			out = append(out, `{"@ref":`+jsonString("collections/"+t.Ref.Collection+"/"+t.Ref.ID)+`}`)
		}
		return out
	case subscription.KindCollection:
		return []string{`{"documents":{"collection":` + jsonString(t.Collection) + `}}`}
	case subscription.KindIndex:
		match := `{"match":{"index":` + jsonString(t.Index) + `}`
		terms := make([]string, len(t.Terms))
		for i, v := range t.Terms {
			terms[i] = v.String()
		}
		out := []string{match + `,"terms":[` + strings.Join(terms, ",") + `]}`}
		switch len(terms) {
		case 0:
			out = append(out, match+`}`)
		case 1:
			out = append(out, match+`,"terms":`+terms[0]+`}`, `{"terms":`+terms[0]+`,"match":{"index":`+jsonString(t.Index)+`}}`)
		}
		return out
	}
	return nil
}

// v4Seeds are the spellings of the package doc, accepted and refused.
var v4Seeds = []string{
	// Document refs, in the three spellings.
	`{"ref":{"collection":"spells"},"id":"1"}`,
	`{"@ref":{"id":"1","collection":{"@ref":{"id":"spells","collection":{"@ref":{"id":"collections"}}}}}}`,
	`{"@ref":"collections/spells/1"}`,
	// Match: a scalar term, an array of terms, none, an empty array.
	`{"match":{"index":"spells_by_element"},"terms":"fire"}`,
	`{"match":{"index":"spells_by_element"},"terms":["fire"]}`,
	`{"match":{"index":"by_two"},"terms":["fire",1.50,true,null]}`,
	`{"match":{"index":"all_spells"}}`,
	`{"match":{"index":"all_spells"},"terms":[]}`,
	`{"match":{"index":"x"},"terms":null}`,
	`{"match":{"index":"x"},"terms":-0.0e+1}`,
	`{"match":{"index":"x"},"terms":"\u2028\ud800"}`,
	// Documents(Collection(c)).
	`{"documents":{"collection":"spells"}}`,
	// Refused: a bare Collection, objects and arrays as terms, the rest.
	`{"collection":"spells"}`,
	`{"match":{"index":"spells_by_element"},"terms":{"element":"fire"}}`,
	`{"match":{"index":"spells_by_element"},"terms":[{"element":"fire"}]}`,
	`{"match":{"index":"spells_by_element"},"terms":[["fire"]]}`,
	`{"match":{"index":"spells_by_element"},"terms":"fire","x":1}`,
	`{"match":{"index":""}}`,
	`{"match":{"index":1}}`,
	`{"match":{"collection":"spells"}}`,
	`{"documents":{"collection":"spells"},"terms":1}`,
	`{"documents":{"index":"spells"}}`,
	`{"documents":{"collection":""}}`,
	`{"ref":{"collection":"spells"},"id":""}`,
	`{"ref":{"collection":"spells"},"id":1}`,
	`{"ref":{"collection":"spells","x":1},"id":"1"}`,
	`{"ref":{"index":"spells"},"id":"1"}`,
	`{"@ref":"collections/spells"}`,
	`{"@ref":"collections/spells/1/2"}`,
	`{"@ref":"indexes/spells/1"}`,
	`{"@ref":"collections//1"}`,
	`{"@ref":{"id":"1","collection":{"@ref":{"id":"spells"}}}}`,
	`{"@ref":{"id":"1","collection":{"@ref":{"id":"spells","collection":{"@ref":{"id":"indexes"}}}}}}`,
	`{"@ref":{"id":"1","collection":{"@ref":{"id":"spells","collection":{"@ref":{"id":"collections","collection":null}}}}}}`,
	`{"@ref":null}`,
	`{"get":{"@ref":"collections/spells/1"}}`,
	`{}`, `[]`, `null`, `"fire"`, `Ref(Collection("spells"), "1")`, ``, `{"match":`, "{\"@ref\":\"collections/sp\xffells/1\"}",
}

// FuzzParseTarget: parseTarget never panics; what it accepts is a target
// of a known kind, with names that are non-empty valid UTF-8 and terms
// that are scalars, that the broker does not refuse as malformed (only as
// unknown), and that every spelling of it parses back to; and a bare
// Collection(c), or terms that are objects or arrays, are refused.
func FuzzParseTarget(f *testing.F) {
	for _, s := range v4Seeds {
		f.Add([]byte(s))
	}
	_, b := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		target, err := parseTarget(body)
		var g map[string]any
		generic := json.Unmarshal(body, &g) == nil && g != nil
		if generic {
			if _, ok := g["collection"]; ok && len(g) == 1 && err == nil {
				t.Fatalf("parseTarget(%s) accepted a bare Collection as %v", body, target)
			}
			if terms, ok := g["terms"]; ok && err == nil && !scalarTerms(terms) {
				t.Fatalf("parseTarget(%s) accepted terms that are not scalars as %v", body, target)
			}
		}
		if err != nil {
			if !sameTarget(target, subscription.Target{}) {
				t.Fatalf("parseTarget(%s) = %v with error %v", body, target, err)
			}
			return
		}
		if !generic {
			t.Fatalf("parseTarget(%s) accepted what is not a JSON object, as %v", body, target)
		}
		checkV4Target(t, body, target, g)
		// Unknown names are the broker's to refuse, but never as a
		// malformed target (an empty id, a term that is no value).
		if _, err := b.ReadPage(context.Background(), target, subscription.Options{}, 1, false); err != nil &&
			!errors.Is(err, broker.ErrUnknownCollection) && !errors.Is(err, broker.ErrUnknownIndex) && !errors.Is(err, broker.ErrTermCount) {
			t.Fatalf("parseTarget(%s) = %v, which the broker refuses: %v", body, target, err)
		}
		for _, s := range v4Spellings(target) {
			again, err := parseTarget([]byte(s))
			if err != nil || !sameTarget(again, target) {
				t.Fatalf("parseTarget(%s) = %v, but its spelling %s parses to %v, %v", body, target, s, again, err)
			}
		}
	})
}

// scalarTerms reports whether the terms of a Match, decoded generically,
// are a scalar or an array of scalars.
func scalarTerms(terms any) bool {
	switch v := terms.(type) {
	case map[string]any:
		return false
	case []any:
		for _, e := range v {
			switch e.(type) {
			case map[string]any, []any:
				return false
			}
		}
	}
	return true
}

func checkV4Target(t *testing.T, body []byte, target subscription.Target, g map[string]any) {
	t.Helper()
	name := func(what, s string) {
		if s == "" || !utf8.ValidString(s) {
			t.Fatalf("parseTarget(%s) = %v: the %s %q is empty or not UTF-8", body, target, what, s)
		}
	}
	has := func(k string) bool { _, ok := g[k]; return ok }
	switch target.Kind {
	case subscription.KindDocument:
		if !has("@ref") && !(has("ref") && has("id")) {
			t.Fatalf("parseTarget(%s) = %v without a ref", body, target)
		}
		name("collection", target.Ref.Collection)
		name("id", target.Ref.ID)
	case subscription.KindCollection:
		if !has("documents") {
			t.Fatalf("parseTarget(%s) = %v without Documents", body, target)
		}
		name("collection", target.Collection)
	case subscription.KindIndex:
		if !has("match") {
			t.Fatalf("parseTarget(%s) = %v without Match", body, target)
		}
		name("index", target.Index)
		for _, v := range target.Terms {
			if text := v.String(); text == "" || text[0] == '{' || text[0] == '[' || !json.Valid([]byte(text)) {
				t.Fatalf("parseTarget(%s) = %v: the term %s is not a scalar", body, target, text)
			}
		}
	default:
		t.Fatalf("parseTarget(%s) = %v, of no kind", body, target)
	}
}

// ---------------------------------------------------------------------------
// v10 tokens: Token and parseToken.

// fuzzTokenTarget makes the target of a FuzzToken input: a document
// (name its id), the collection, a match of byElement on name as a string
// or as JSON text, the term-less index, or a collection named name.
func fuzzTokenTarget(kind uint8, name string) (subscription.Target, bool) {
	switch kind % 6 {
	case 0:
		return subscription.Document(txlog.Ref{Collection: "spells", ID: name}), true
	case 1:
		return subscription.Collection("spells"), true
	case 2:
		t, err := subscription.Match("byElement", name)
		return t, err == nil
	case 3:
		v, err := index.ParseValue([]byte(name))
		return subscription.Target{Kind: subscription.KindIndex, Index: "byElement", Terms: []index.Value{v}}, err == nil
	case 4:
		return subscription.Target{Kind: subscription.KindIndex, Index: "all_spells"}, true
	default:
		return subscription.Collection(name), true
	}
}

// tokenBytes decodes both halves of a token as parseToken does.
func tokenBytes(tok string) (body, sig []byte, ok bool) {
	b, s, ok := strings.Cut(tok, ".")
	if !ok {
		return nil, nil, false
	}
	body, err1 := base64.RawURLEncoding.Strict().DecodeString(b)
	sig, err2 := base64.RawURLEncoding.Strict().DecodeString(s)
	return body, sig, err1 == nil && err2 == nil
}

// FuzzToken: parseToken never panics and refuses with errBadToken what
// does not carry an HMAC-SHA256 of its payload under the key; a token
// minted by Token for a target decodes to that target and a cursor of the
// broker; the same token minted under another key is refused; and a token
// with any one byte changed is refused, or (see below) decodes to exactly
// the bytes of the original.
func FuzzToken(f *testing.F) {
	h, b := fuzzHandler(f)
	other := &Handler{Server: h.Server, TokenKey: []byte("another key")}
	for kind, name := range []string{"1", "", "fire", `{"a":[1,2.5]}`, "", "spells"} {
		t, _ := fuzzTokenTarget(uint8(kind), name)
		tok, err := h.Token(t)
		if err != nil && kind != 0 {
			f.Fatalf("Token(%v): %v", t, err)
		}
		f.Add(tok, uint8(kind), name, uint16(7*kind), byte('A'+kind))
		f.Add(tok, uint8(kind), name, uint16(len(tok)-1), byte('B'))
		f.Add(tok, uint8(kind), name, uint16(strings.IndexByte(tok, '.')), byte('x'))
		if tok != "" {
			// The unused low bits of the signature's last character
			// flipped: the case the tolerance below is for.
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			f.Add(tok, uint8(kind), name, uint16(len(tok)-1), alphabet[strings.IndexByte(alphabet, tok[len(tok)-1])^1])
		}
	}
	for _, s := range []string{"", ".", "..", "a.b", "eyJrIjoiYyIsImMiOiJzcGVsbHMiLCJwIjoiIn0.", "eyJrIjoiYyJ9.AAAA", "!!!.???", "e30.e30", "e30\n.e30\r"} {
		f.Add(s, uint8(1), "fire", uint16(0), byte('.'))
	}
	f.Fuzz(func(t *testing.T, tok string, kind uint8, name string, pos uint16, c byte) {
		// Any string.
		target, cursor, err := h.parseToken(tok)
		if err != nil {
			if !errors.Is(err, errBadToken) || !sameTarget(target, subscription.Target{}) || cursor != "" {
				t.Fatalf("parseToken(%q) = %v, %q, %v", tok, target, cursor, err)
			}
		} else {
			body, sig, ok := tokenBytes(tok)
			mac := hmac.New(sha256.New, fuzzKey)
			mac.Write(body)
			if !ok || !bytes.Equal(sig, mac.Sum(nil)) {
				t.Fatalf("parseToken(%q) accepted a token not signed under the key, as %v", tok, target)
			}
			if target.Kind < subscription.KindDocument || target.Kind > subscription.KindIndex {
				t.Fatalf("parseToken(%q) = %v, of no kind", tok, target)
			}
		}

		// A minted token.
		want, ok := fuzzTokenTarget(kind, name)
		if !ok {
			return
		}
		minted, err := h.Token(want)
		if err != nil {
			if !errors.Is(err, subscription.ErrInvalidTarget) {
				t.Fatalf("Token(%v): %v, not ErrInvalidTarget", want, err)
			}
			return
		}
		got, cursor, err := h.parseToken(minted)
		if err != nil || !sameTarget(got, want) {
			t.Fatalf("Token(%v) = %q, which decodes to %v, %v", want, minted, got, err)
		}
		if c, err := txlog.ParseCursor(cursor); err != nil || c.Pos.Txn != b.Head() {
			t.Fatalf("Token(%v) carries the cursor %q (%v), not the head %d", want, cursor, err, b.Head())
		}
		if got, _, err := other.parseToken(minted); err == nil {
			t.Fatalf("a Handler with another key accepts the token %q of %v, as %v", minted, want, got)
		}
		if theirs, err := other.Token(want); err != nil {
			t.Fatal(err)
		} else if got, _, err := h.parseToken(theirs); err == nil {
			t.Fatalf("the token %q of %v, minted under another key, is accepted as %v", theirs, want, got)
		}

		// The minted token, one byte changed.
		i := int(pos) % len(minted)
		if minted[i] == c {
			return
		}
		changed := minted[:i] + string(c) + minted[i+1:]
		got, gotCursor, err := h.parseToken(changed)
		if err == nil {
			t.Fatalf("the token %q of %v, changed at %d to %q, is accepted as %v, %q", minted, want, i, changed, got, gotCursor)
		} else if !errors.Is(err, errBadToken) {
			t.Fatalf("parseToken(%q): %v, not errBadToken", changed, err)
		}
	})
}

// ---------------------------------------------------------------------------
// POST /query/1.

// serveFuzz runs one request through h with a recorder and checks what
// every answer must be: a JSON body; a 2xx, or a 4xx in v10's error shape
// with a code that goes with its status. It returns the status, and the
// body decoded, or the error's code.
func serveFuzz(t *testing.T, h *Handler, path, body string) (int, map[string]json.RawMessage, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if ct := w.Header().Get("Content-Type"); ct != "application/json;charset=utf-8" {
		t.Fatalf("POST %s %q: %d with Content-Type %q", path, body, w.Code, ct)
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("POST %s %q: %d %q is not a JSON object: %v", path, body, w.Code, w.Body, err)
	}
	if w.Code >= 200 && w.Code < 300 {
		return w.Code, out, ""
	}
	var e struct {
		Code    *string `json:"code"`
		Message *string `json:"message"`
	}
	var inner map[string]json.RawMessage
	if len(out) != 1 || json.Unmarshal(out["error"], &inner) != nil || len(inner) != 2 ||
		json.Unmarshal(out["error"], &e) != nil || e.Code == nil || e.Message == nil || *e.Message == "" {
		t.Fatalf("POST %s %q: %d %s is not v10's error shape", path, body, w.Code, w.Body)
	}
	statusOf := map[string]int{
		"invalid_request": 400, "invalid_argument": 400, "invalid_query": 400, "invalid_cursor": 400, "not_found": 404,
	}
	if want, ok := statusOf[*e.Code]; !ok || want != w.Code && !(w.Code == 413 && *e.Code == "invalid_request") {
		t.Fatalf("POST %s %q: %d with code %q", path, body, w.Code, *e.Code)
	}
	return w.Code, out, *e.Code
}

var fqlIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// fqlOf writes the query for a target /query/1 answered, with literals:
// strings JSON-quoted, which FQL reads alike, with # escaped so that no
// #{ is read as an interpolation.
func fqlOf(t subscription.Target, schema index.Schema) string {
	lit := func(v string) string { return strings.ReplaceAll(v, "#", `\#`) }
	switch t.Kind {
	case subscription.KindCollection:
		return t.Collection + ".all().eventSource()"
	case subscription.KindDocument:
		return "Set.single(" + t.Ref.Collection + ".byId(" + lit(jsonString(t.Ref.ID)) + ")).eventSource()"
	}
	coll := ""
	for _, d := range schema.Indexes {
		if d.Name == t.Index {
			coll = d.Collection
		}
	}
	var terms []string
	for _, v := range t.Terms {
		terms = append(terms, lit(v.String()))
	}
	return coll + "." + t.Index + "(" + strings.Join(terms, ", ") + ").eventSource()"
}

// sourceOf reads the event source of a /query/1 answer: its token's target.
func sourceOf(h *Handler, out map[string]json.RawMessage) (subscription.Target, error) {
	var data struct {
		Stream string `json:"@stream"`
	}
	var typ string
	if json.Unmarshal(out["data"], &data) != nil || json.Unmarshal(out["static_type"], &typ) != nil || typ != "EventSource" {
		b, _ := json.Marshal(out)
		return subscription.Target{}, errors.New(string(b) + " is not an event source")
	}
	t, _, err := h.parseToken(data.Stream)
	return t, err
}

// FuzzQueryV10: POST /query/1 never panics and answers 200 with a token,
// or a 4xx in v10's error shape; it answers what parseEventSource reads:
// a query outside the forms served is invalid_query, an index not on the
// collection named not_found, and any other refusal is the broker's
// (Token's); a token answered decodes to the target read, and the query
// for that target, written with literals, answers the same target.
func FuzzQueryV10(f *testing.F) {
	for _, s := range []string{
		`{"query":"spells.all().eventSource()"}`,
		`{"query":{"fql":["spells.all().eventSource()"]}}`,
		`{"query":{"fql":["spells.byId(\"","1","\").eventSource()"]}}`,
		`{"query":{"fql":["spells.byId(",{"value":"1"},").eventSource()"]}}`,
		`{"query":"spells.byId(\"1\").eventSource()"}`,
		`{"query":"  spells.byElement(\"fire\").eventSource()\n"}`,
		`{"query":"other.byElement(\"fire\").eventSource()"}`,
		`{"query":"spells.all_spells(\"x\").eventSource()"}`,
		`{"query":"spells.all(\"x\").eventSource()"}`,
		`{"query":"spells.byId(\"\").eventSource()"}`,
		`{"query":"spells.byId(\"a b/c\u00e9\").eventSource()"}`,
		`{"query":"nope.all().eventSource()"}`,
		`{"query":"spells.nope(\"fire\").eventSource()"}`,
		// Near misses.
		`{"query":"spells.all()"}`,
		`{"query":"spells.all().eventSource"}`,
		`{"query":"spells.all().eventSource().map(.x)"}`,
		`{"query":"spells.all().where(.element == \"fire\").eventSource()"}`,
		`{"query":"spells.byId('1').eventSource()"}`,
		`{"query":"spells.byId(1).eventSource()"}`,
		`{"query":"spells.byId(\"1\\\"\").eventSource()"}`,
		`{"query":"spells.byId(\"1\").eventsOn(.name)"}`,
		`{"query":"Spells .all().eventSource()"}`,
		`{"query":"1spells.all().eventSource()"}`,
		`{"query":"spells.all().eventSource();spells.all().eventSource()"}`,
		`{"query":"spells.byElement(\"fire\", \"water\").eventSource()"}`,
		`{"query":{"fql":"spells.all().eventSource()"}}`,
		`{"query":{"fql":null}}`,
		`{"query":{"FQL":["spells.all().eventSource()"]}}`,
		`{"Query":"spells.all().eventSource()"}`,
		`{"query":"spells.all().eventSource()","arguments":{}}`,
		`{"query":null}`, `{"query":1}`, `{}`, `[]`, `null`, ``, `spells.all().eventSource()`, `{"query":"`,
	} {
		f.Add(s)
	}
	for _, s := range []string{
		`{"query":{"fql":["Set.single(spells.byId(",{"value":{"@int":"7"}},")).eventSource()"]}}`,
		`{"query":{"fql":["Set.single(",{"value":{"@ref":{"id":"1","coll":{"@mod":"spells"}}}},").eventSource()"]}}`,
		`{"query":{"fql":["spells.byElement(x).eventSource()"]},"arguments":{"x":"fi#{re"}}`,
		`{"query":{"fql":[{"fql":["spells"]},".byElement('a\\'b').eventSource()"]}}`,
		`{"query":"spells.byElement(\"\\u{1F525}\").eventSource()"}`,
	} {
		f.Add(s)
	}
	h, b := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body string) {
		status, out, code := serveFuzz(t, h, "/query/1", body)
		schema := b.Schema()
		want, err := parseEventSource([]byte(body), schema)
		switch {
		case errors.Is(err, errQuery):
			if status != 400 || code != "invalid_query" {
				t.Fatalf("POST /query/1 %q: %d %s, want invalid_query (%v)", body, status, code, err)
			}
			return
		case errors.Is(err, errNoIndex):
			if status != 404 || code != "not_found" {
				t.Fatalf("POST /query/1 %q: %d %s, want not_found (%v)", body, status, code, err)
			}
			return
		case err != nil:
			t.Fatalf("POST /query/1 %q: parseEventSource: %v", body, err)
		}
		if _, err := h.Token(want); err != nil {
			if status != 400 && status != 404 {
				t.Fatalf("POST /query/1 %q: %d, but Token(%v) refuses: %v", body, status, want, err)
			}
			return
		}
		if status != 200 {
			t.Fatalf("POST /query/1 %q: %d %s, want 200 for %v", body, status, code, want)
		}
		target, err := sourceOf(h, out)
		if err != nil || !sameTarget(target, want) {
			t.Fatalf("POST /query/1 %q: 200 %v (%v), want %v", body, target, err, want)
		}
		q := fqlOf(target, schema)
		if status, out, _ := serveFuzz(t, h, "/query/1", `{"query":`+jsonString(q)+`}`); status != 200 {
			t.Fatalf("POST /query/1 %q answered %v, but %s answers %d", body, target, q, status)
		} else if again, err := sourceOf(h, out); err != nil || !sameTarget(again, target) {
			t.Fatalf("POST /query/1 %q answered %v, but %s answers %v, %v", body, target, q, again, err)
		}
	})
}

// ---------------------------------------------------------------------------
// POST /feed/1 (and /stream/1, whose body is read by the same code).

// feedSources are the event sources of FuzzFeedV10: their tokens are
// minted before fuzzFeedWrites, so that a feed from the token reads them.
var feedSources = []struct {
	target subscription.Target
	events int // the events of fuzzFeedWrites it has
}{
	{subscription.Collection("spells"), 6},
	{subscription.Document(txlog.Ref{Collection: "spells", ID: "1"}), 3},
	{subscription.Target{Kind: subscription.KindIndex, Index: "byElement", Terms: []index.Value{mustValue(`"fire"`)}}, 3},
	{subscription.Target{Kind: subscription.KindIndex, Index: "all_spells"}, 6},
}

func mustValue(s string) index.Value {
	v, err := index.ParseValue([]byte(s))
	if err != nil {
		panic(err)
	}
	return v
}

// fuzzFeedWrites: spells/1 fire, spells/2 water, spells/1 to water and
// spells/3 fire, spells/2 deleted, spells/1 deleted.
func fuzzFeedWrites(f *testing.F, b *broker.Broker) {
	f.Helper()
	ref := func(id string) txlog.Ref { return txlog.Ref{Collection: "spells", ID: id} }
	for _, w := range []func(tx *broker.Tx) error{
		func(tx *broker.Tx) error {
			return tx.Create(ref("1"), []byte(`{"element":"fire","id":"own","o":{"@x":1}}`))
		},
		func(tx *broker.Tx) error { return tx.Create(ref("2"), []byte(`{"element":"water"}`)) },
		func(tx *broker.Tx) error {
			if err := tx.Update(ref("1"), []byte(`{"element":"water"}`)); err != nil {
				return err
			}
			return tx.Create(ref("3"), []byte(`{"element":"fire"}`))
		},
		func(tx *broker.Tx) error { return tx.Delete(ref("2")) },
		func(tx *broker.Tx) error { return tx.Delete(ref("1")) },
	} {
		if _, err := b.Commit(context.Background(), w); err != nil {
			f.Fatal(err)
		}
	}
}

// feedRequest is a /feed/1 or /stream/1 body as the package doc has it;
// feedPageSize and feedPageMax are its default and largest page_size.
type feedRequest struct {
	Token    string `json:"token"`
	Cursor   string `json:"cursor"`
	PageSize int    `json:"page_size"`
	StartTS  *int64 `json:"start_ts"`
}

const (
	feedPageSize = 16
	feedPageMax  = 16000
)

type feedEvent struct {
	Type   string `json:"type"`
	TxnTS  uint64 `json:"txn_ts"`
	Cursor string `json:"cursor"`
	Data   struct {
		Doc map[string]json.RawMessage `json:"@doc"`
	} `json:"data"`
}

type feedPage struct {
	Events  []feedEvent     `json:"events"`
	Cursor  *string         `json:"cursor"`
	HasNext *bool           `json:"has_next"`
	Stats   json.RawMessage `json:"stats"`
}

// FuzzFeedV10: POST /feed/1 never panics and answers a page or a 4xx in
// v10's error shape. A page has the shape of the package doc and at most
// page_size events (16 by default), each of v10's types with a document;
// they are a run, in order, of the events of its source (each source's
// whole history is read once at the start), starting right after the
// cursor asked for, when that is one of the source's; the page's cursor
// is its last event's; has_next means the page is full. The same body
// sent to /stream/1 is refused the same way, unless only the page size
// was wrong, or starts with a status line at that cursor.
func FuzzFeedV10(f *testing.F) {
	h, b := fuzzHandler(f)
	toks := make([]string, len(feedSources))
	for i, s := range feedSources {
		var err error
		if toks[i], err = h.Token(s.target); err != nil {
			f.Fatal(err)
		}
	}
	fuzzFeedWrites(f, b)
	// Each source's history, read whole.
	histories := make([][]feedEvent, len(feedSources))
	var pairs []string
	for i, s := range feedSources {
		req := httptest.NewRequest(http.MethodPost, "/feed/1", strings.NewReader(`{"token":"`+toks[i]+`","page_size":100}`))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var p feedPage
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != 200 || len(p.Events) != s.events || p.HasNext == nil || *p.HasNext {
			f.Fatalf("the whole feed of %v: %d %s, want %d events", s.target, w.Code, w.Body, s.events)
		}
		histories[i] = p.Events
		n := strconv.Itoa(i)
		pairs = append(pairs, "$T"+n, toks[i], "$C"+n, p.Events[1].Cursor)
	}
	// A token minted now carries the head's cursor.
	tok, err := h.Token(feedSources[0].target)
	if err != nil {
		f.Fatal(err)
	}
	_, headCursor, _ := h.parseToken(tok)
	pairs = append(pairs, "$H", headCursor)
	subst := strings.NewReplacer(pairs...)

	for _, s := range []string{
		`{"token":"$T0"}`, `{"token":"$T1"}`, `{"token":"$T2"}`, `{"token":"$T3"}`,
		`{"token":"$T0","page_size":2}`, `{"token":"$T2","page_size":1,"cursor":"$C2"}`,
		`{"token":"$T3","cursor":"$C3","page_size":16000}`, `{"token":"$T0","cursor":"$H"}`,
		`{"token":"$T1","cursor":"$C0"}`, `{"token":"$T0","page_size":0}`, `{"token":"$T0","page_size":-1}`,
		`{"token":"$T0","page_size":16001}`, `{"token":"$T0","page_size":1.5}`, `{"token":"$T0","page_size":"2"}`,
		`{"token":"$T0","start_ts":1}`, `{"token":"$T0","start_ts":null}`, `{"token":"$T0","cursor":"x"}`,
		`{"token":"$T0","cursor":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`,
		`{"token":"$T0","cursor":"$C0$C0"}`, `{"token":"$T0x"}`, `{"token":""}`, `{"token":1}`,
		`{"TOKEN":"$T0","Page_Size":3}`, `{"token":"$T0"}{}`, `{}`, `[]`, `null`, ``, `{"token":"$T0"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		// $T0 to $T3 are the tokens of feedSources, $C0 to $C3 the
		// cursors of their second event, $H the head's cursor.
		body := subst.Replace(input)
		status, out, code := serveFuzz(t, h, "/feed/1", body)
		var req feedRequest
		json.Unmarshal([]byte(body), &req)
		if status != 200 {
			if status != 400 && status != 404 {
				t.Fatalf("POST /feed/1 %q: %d", body, status)
			}
			checkStreamRefusal(t, h, body, code, req)
			return
		}
		raw, _ := json.Marshal(out)
		var p feedPage
		if err := json.Unmarshal(raw, &p); err != nil || len(out) != 4 || p.Cursor == nil || p.HasNext == nil || p.Stats == nil {
			t.Fatalf("POST /feed/1 %q: %s is not a page", body, raw)
		}
		n := req.PageSize
		if n <= 0 {
			n = feedPageSize
		}
		if len(p.Events) > n || *p.HasNext && len(p.Events) != n {
			t.Fatalf("POST /feed/1 %q (page size %d): %d events, has_next %t", body, n, len(p.Events), *p.HasNext)
		}
		if _, err := txlog.ParseCursor(*p.Cursor); err != nil {
			t.Fatalf("POST /feed/1 %q: the cursor %q: %v", body, *p.Cursor, err)
		}
		if len(p.Events) > 0 && *p.Cursor != p.Events[len(p.Events)-1].Cursor {
			t.Fatalf("POST /feed/1 %q: the page's cursor %q is not its last event's", body, *p.Cursor)
		}
		if req.StartTS != nil {
			// From a start_ts: the events of txns after it, in order (the
			// history of a source starts at its minting, so this page may
			// hold older ones).
			for i, e := range p.Events {
				if int64(e.TxnTS) <= *req.StartTS || i > 0 && e.TxnTS < p.Events[i-1].TxnTS {
					t.Fatalf("POST /feed/1 %q: event %d at %d is not after start_ts, in order", body, i, e.TxnTS)
				}
			}
			checkStreamStart(t, h, body, req)
			return
		}
		source := -1
		for i, tok := range toks {
			if tok == req.Token {
				source = i
			}
		}
		if source < 0 {
			// Another spelling of a token: no history to compare with.
			return
		}
		hist := histories[source]
		from := -1 // where the page must start, if known
		switch {
		case req.Cursor == "":
			from = 0
		default:
			for i, e := range hist {
				if e.Cursor == req.Cursor {
					from = i + 1
				}
			}
		}
		start := from
		if start < 0 && len(p.Events) > 0 {
			// A cursor of another source: the page is still a run.
			for i, e := range hist {
				if e.Cursor == p.Events[0].Cursor {
					start = i
				}
			}
		}
		for i, e := range p.Events {
			if start < 0 || start+i >= len(hist) || !sameFeedEvent(e, hist[start+i]) {
				t.Fatalf("POST /feed/1 %q: event %d %+v is not event %d of the source's history %+v", body, i, e, start+i, hist)
			}
		}
		if from >= 0 && len(p.Events) < n && from+len(p.Events) != len(hist) {
			t.Fatalf("POST /feed/1 %q: %d events from %d of %d, with room for %d", body, len(p.Events), from, len(hist), n)
		}
		checkStreamStart(t, h, body, req)
	})
}

func sameFeedEvent(a, b feedEvent) bool {
	if a.Type != b.Type || a.TxnTS != b.TxnTS || a.Cursor != b.Cursor || len(a.Data.Doc) != len(b.Data.Doc) || a.Data.Doc == nil {
		return false
	}
	for k, v := range a.Data.Doc {
		if !bytes.Equal(v, b.Data.Doc[k]) {
			return false
		}
	}
	return true
}

// checkStreamRefusal: a body /feed/1 refused, /stream/1 refuses with the
// same code, but for a page size, which only a feed has.
func checkStreamRefusal(t *testing.T, h *Handler, body, code string, req feedRequest) {
	t.Helper()
	if req.PageSize > feedPageMax {
		return
	}
	if status, _, got := serveFuzz(t, h, "/stream/1", body); got != code {
		t.Fatalf("POST /feed/1 %q is %s, but /stream/1 answers %d %q", body, code, status, got)
	}
}

// cancelOnWrite is a recorder that ends its request's context at the
// first write of a 200, so that a stream returns after its first line.
type cancelOnWrite struct {
	*httptest.ResponseRecorder
	cancel context.CancelFunc
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	n, err := w.ResponseRecorder.Write(p)
	if w.Code == 200 {
		w.cancel()
	}
	return n, err
}

// checkStreamStart: a body /feed/1 answered with a page, /stream/1
// starts with a status line at the cursor it was asked for (after
// start_ts, or the token's, when none).
func checkStreamStart(t *testing.T, h *Handler, body string, req feedRequest) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/stream/1", strings.NewReader(body))
	w := &cancelOnWrite{httptest.NewRecorder(), cancel}
	h.ServeHTTP(w, r)
	line, _, _ := bytes.Cut(w.Body.Bytes(), []byte("\r\n"))
	var e feedEvent
	want := req.Cursor
	switch {
	case want == "" && req.StartTS != nil:
		b := h.Server.Broker
		want = txlog.Cursor{Log: b.LogID(), Pos: txlog.AfterTxn(min(txlog.Txn(*req.StartTS), b.Head()))}.String()
	case want == "":
		_, want, _ = h.parseToken(req.Token)
	}
	if w.Code != 200 || json.Unmarshal(line, &e) != nil || e.Type != "status" || e.Cursor != want {
		t.Fatalf("POST /stream/1 %q: %d %q, want a status line at %q", body, w.Code, w.Body, want)
	}
}
