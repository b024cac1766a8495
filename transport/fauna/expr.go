package fauna

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// parseTarget reads the FQL v4 expression of a stream request, in its JSON
// wire form, as a target. Only the subset the package doc lists is read;
// anything else is an error that names it, never a guess.
func parseTarget(body []byte) (subscription.Target, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return subscription.Target{}, fmt.Errorf("the body is not an FQL expression in JSON: %v", err)
	}
	switch {
	case has(m, "match"):
		return parseMatch(m)
	case has(m, "documents"):
		if err := only(m, "documents"); err != nil {
			return subscription.Target{}, err
		}
		var inner map[string]json.RawMessage
		if err := json.Unmarshal(m["documents"], &inner); err != nil || !has(inner, "collection") || len(inner) != 1 {
			return subscription.Target{}, fmt.Errorf("Documents takes Collection(name), got %s", compact(m["documents"]))
		}
		name, err := str(inner["collection"], "Collection")
		if err != nil {
			return subscription.Target{}, err
		}
		return subscription.Collection(name), nil
	case has(m, "collection") && len(m) == 1:
		return subscription.Target{}, fmt.Errorf("Collection(...) alone streams the collection's definition, which is not supported; stream Documents(Collection(...)) for its documents")
	}
	ref, err := parseRefMap(m)
	if err != nil {
		return subscription.Target{}, err
	}
	return subscription.Document(ref), nil
}

// parseRef reads a document ref expression in any of its spellings.
func parseRef(raw []byte) (txlog.Ref, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return txlog.Ref{}, fmt.Errorf("expected a document ref, got %s", compact(raw))
	}
	return parseRefMap(m)
}

func parseRefMap(m map[string]json.RawMessage) (txlog.Ref, error) {
	switch {
	case has(m, "ref") && has(m, "id") && len(m) == 2:
		// Ref(Collection("spells"), "1")
		var coll map[string]json.RawMessage
		if err := json.Unmarshal(m["ref"], &coll); err != nil || len(coll) != 1 || !has(coll, "collection") {
			return txlog.Ref{}, fmt.Errorf("Ref takes Collection(name) and an id, got %s", compact(m["ref"]))
		}
		name, err := str(coll["collection"], "Collection")
		if err != nil {
			return txlog.Ref{}, err
		}
		id, err := str(m["id"], "the id of Ref")
		if err != nil {
			return txlog.Ref{}, err
		}
		return txlog.Ref{Collection: name, ID: id}, nil
	case has(m, "@ref") && len(m) == 1:
		var path string
		if json.Unmarshal(m["@ref"], &path) == nil {
			// Ref("collections/spells/1")
			parts := strings.Split(path, "/")
			if len(parts) != 3 || parts[0] != "collections" || parts[1] == "" || parts[2] == "" {
				return txlog.Ref{}, fmt.Errorf("only document refs collections/<collection>/<id> are supported, got %q", path)
			}
			return txlog.Ref{Collection: parts[1], ID: parts[2]}, nil
		}
		// A ref value: {"@ref":{"id":"1","collection":{"@ref":{"id":"spells","collection":{"@ref":{"id":"collections"}}}}}}
		var r struct {
			ID         string `json:"id"`
			Collection *struct {
				Ref struct {
					ID         string `json:"id"`
					Collection *struct {
						Ref struct {
							ID         string          `json:"id"`
							Collection json.RawMessage `json:"collection"`
						} `json:"@ref"`
					} `json:"collection"`
				} `json:"@ref"`
			} `json:"collection"`
		}
		if err := json.Unmarshal(m["@ref"], &r); err != nil || r.Collection == nil || r.Collection.Ref.Collection == nil ||
			r.Collection.Ref.Collection.Ref.ID != "collections" || r.Collection.Ref.Collection.Ref.Collection != nil ||
			r.ID == "" || r.Collection.Ref.ID == "" {
			return txlog.Ref{}, fmt.Errorf("only refs of documents in a collection are supported, got %s", compact(m["@ref"]))
		}
		return txlog.Ref{Collection: r.Collection.Ref.ID, ID: r.ID}, nil
	}
	return txlog.Ref{}, fmt.Errorf("unsupported expression %s: a stream takes a document ref, Match(Index(name), terms) or Documents(Collection(name))", compact(mustJSON(m)))
}

// parseMatch reads Match(Index(name), terms): terms absent or [] for a
// term-less index, a scalar for one term, an array for several.
func parseMatch(m map[string]json.RawMessage) (subscription.Target, error) {
	for k := range m {
		if k != "match" && k != "terms" {
			return subscription.Target{}, fmt.Errorf("unsupported argument %q to Match", k)
		}
	}
	var idx map[string]json.RawMessage
	if err := json.Unmarshal(m["match"], &idx); err != nil || len(idx) != 1 || !has(idx, "index") {
		return subscription.Target{}, fmt.Errorf("Match takes Index(name), got %s", compact(m["match"]))
	}
	name, err := str(idx["index"], "Index")
	if err != nil {
		return subscription.Target{}, err
	}
	var terms []json.RawMessage
	if raw := bytes.TrimSpace(m["terms"]); len(raw) > 0 {
		if raw[0] == '[' {
			if err := json.Unmarshal(raw, &terms); err != nil {
				return subscription.Target{}, fmt.Errorf("the terms of Match: %v", err)
			}
		} else {
			terms = []json.RawMessage{raw}
		}
	}
	t := subscription.Target{Kind: subscription.KindIndex, Index: name}
	for _, raw := range terms {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || raw[0] == '{' || raw[0] == '[' {
			return subscription.Target{}, fmt.Errorf("only strings, numbers, booleans and null are supported as terms of Match, got %s", compact(raw))
		}
		v, err := index.ParseValue(raw)
		if err != nil {
			return subscription.Target{}, fmt.Errorf("the terms of Match: %v", err)
		}
		t.Terms = append(t.Terms, v)
	}
	return t, nil
}

func has(m map[string]json.RawMessage, k string) bool { _, ok := m[k]; return ok }

func only(m map[string]json.RawMessage, k string) error {
	for key := range m {
		if key != k {
			return fmt.Errorf("unsupported argument %q beside %q", key, k)
		}
	}
	return nil
}

// str reads a name given as a plain string, which is how the drivers
// write Collection("spells") and Index("spells_by_element").
func str(raw json.RawMessage, what string) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || s == "" {
		return "", fmt.Errorf("%s takes a name, got %s", what, compact(raw))
	}
	return s, nil
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// compact shortens an expression for an error message.
func compact(raw []byte) string {
	const max = 200
	s := string(bytes.TrimSpace(raw))
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
