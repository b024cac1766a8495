package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/tidings/tidings/internal/jsondoc"
	"github.com/tidings/tidings/txlog"
)

// The Fauna v4 variant: the events Fauna's v4 stream endpoint sent, in its
// tagged JSON (refs as {"@ref":…}, ts as µs numbers, user objects whose
// keys start with "@" escaped as {"@obj":…}), which the faunadb drivers
// decode. It is made from an event's native line, so that the broker's
// guarantees (order, fields, the ending error event) carry over as they are.

// AppendFaunaRef appends ref as Fauna's tagged ref of a document.
func AppendFaunaRef(dst []byte, ref txlog.Ref) []byte {
	dst = append(dst, `{"@ref":{"id":`...)
	dst = jsondoc.AppendString(dst, ref.ID)
	dst = append(dst, `,"collection":`...)
	dst = AppendFaunaCollectionRef(dst, ref.Collection)
	return append(dst, "}}"...)
}

// AppendFaunaCollectionRef appends the tagged ref of a collection.
func AppendFaunaCollectionRef(dst []byte, name string) []byte {
	dst = append(dst, `{"@ref":{"id":`...)
	dst = jsondoc.AppendString(dst, name)
	return append(dst, `,"collection":{"@ref":{"id":"collections"}}}}`...)
}

// AppendFaunaValue appends the JSON value v with every object that has a
// key starting with "@" wrapped in {"@obj":…}, so that a driver does not
// read a user's {"@ref":…} as a ref. Values without an "@" are copied
// as they are.
func AppendFaunaValue(dst, v []byte) ([]byte, error) {
	v = bytes.TrimSpace(v)
	if bytes.IndexByte(v, '@') < 0 || len(v) == 0 {
		return append(dst, v...), nil
	}
	switch v[0] {
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(v, &items); err != nil {
			return dst, err
		}
		dst = append(dst, '[')
		for i, it := range items {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = AppendFaunaValue(dst, it); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case '{':
		dec := json.NewDecoder(bytes.NewReader(v))
		if _, err := dec.Token(); err != nil {
			return dst, err
		}
		var keys []string
		var vals []json.RawMessage
		escape := false
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return dst, err
			}
			k, _ := t.(string)
			var val json.RawMessage
			if err := dec.Decode(&val); err != nil {
				return dst, err
			}
			keys, vals = append(keys, k), append(vals, val)
			escape = escape || (len(k) > 0 && k[0] == '@')
		}
		if escape {
			dst = append(dst, `{"@obj":`...)
		}
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsondoc.AppendString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = AppendFaunaValue(dst, vals[i]); err != nil {
				return dst, err
			}
		}
		dst = append(dst, '}')
		if escape {
			dst = append(dst, '}')
		}
		return dst, nil
	}
	return append(dst, v...), nil
}

// AppendFaunaDoc appends a document (or a diff, or a prev) as Fauna's v4
// streams carry it: {"ref":{"@ref":…},"ts":T,"data":{…}}, data left out
// when nil.
func AppendFaunaDoc(dst []byte, ref txlog.Ref, ts txlog.Txn, data []byte) ([]byte, error) {
	dst = append(dst, `{"ref":`...)
	dst = AppendFaunaRef(dst, ref)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendUint(dst, uint64(ts), 10)
	if data != nil {
		dst = append(dst, `,"data":`...)
		var err error
		if dst, err = AppendFaunaValue(dst, data); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

type nativeLine struct {
	Type  string          `json:"type"`
	Txn   txlog.Txn       `json:"txn"`
	Event json.RawMessage `json:"event"`
}

type nativeDoc struct {
	Ref  txlog.Ref       `json:"ref"`
	TS   txlog.Txn       `json:"ts"`
	Data json.RawMessage `json:"data"`
}

type nativeBody struct {
	Action      *string         `json:"action"`
	Document    *nativeDoc      `json:"document"`
	Diff        *nativeDoc      `json:"diff"`
	Prev        json.RawMessage `json:"prev"`
	Index       *nativeIndex    `json:"index"`
	Code        string          `json:"code"`
	Description string          `json:"description"`
}

type nativeIndex struct {
	Terms  []json.RawMessage `json:"terms"`
	Values []json.RawMessage `json:"values"`
}

// ErrNoFaunaForm: an event type Fauna's v4 streams have no counterpart
// for (snapshot pages); the caller leaves it out.
var ErrNoFaunaForm = errors.New("wire: no Fauna v4 form")

// AppendFaunaV4 appends the Fauna v4 form of the native event line
// native, without a line ending:
//
//	{"type":"start","txn":T,"event":T}
//	{"type":"version","txn":T,"event":{"action":…,"document":…,"diff":…,"prev":…}}
//	{"type":"set","txn":T,"event":{"action":…,"document":…,"index":{"terms":[…],"values":[…]}}}
//	{"type":"history_rewrite","txn":T,"event":{…}}
//	{"type":"status","txn":T}
//	{"type":"error","txn":T,"event":{"code":…,"description":…}}
//
// Cursors are left out (the v4 drivers never resume). collection, when
// not empty, is the collection of a Documents(Collection) stream, whose
// index terms Fauna gave as [Ref(Collection)].
func AppendFaunaV4(dst, native []byte, collection string) ([]byte, error) {
	var l nativeLine
	if err := json.Unmarshal(native, &l); err != nil {
		return dst, err
	}
	head := func(dst []byte) []byte {
		dst = append(dst, `{"type":`...)
		dst = jsondoc.AppendString(dst, l.Type)
		dst = append(dst, `,"txn":`...)
		return strconv.AppendUint(dst, uint64(l.Txn), 10)
	}
	switch l.Type {
	case "start":
		dst = head(dst)
		dst = append(dst, `,"event":`...)
		dst = strconv.AppendUint(dst, uint64(l.Txn), 10)
		return append(dst, '}'), nil
	case "status":
		return append(head(dst), '}'), nil
	case "version", "set", "history_rewrite", "error":
	default:
		return dst, fmt.Errorf("%w: %s", ErrNoFaunaForm, l.Type)
	}
	var b nativeBody
	if err := json.Unmarshal(l.Event, &b); err != nil {
		return dst, err
	}
	dst = head(dst)
	dst = append(dst, `,"event":{`...)
	if l.Type == "error" {
		dst = append(dst, `"code":`...)
		dst = jsondoc.AppendString(dst, b.Code)
		dst = append(dst, `,"description":`...)
		dst = jsondoc.AppendString(dst, b.Description)
		return append(dst, "}}"...), nil
	}
	n := len(dst)
	var err error
	if b.Action != nil {
		dst = appendField(dst, n, "action")
		dst = jsondoc.AppendString(dst, *b.Action)
	}
	if d := b.Document; d != nil {
		dst = appendField(dst, n, "document")
		if dst, err = AppendFaunaDoc(dst, d.Ref, d.TS, d.Data); err != nil {
			return dst, err
		}
	}
	if d := b.Diff; d != nil {
		dst = appendField(dst, n, "diff")
		if dst, err = AppendFaunaDoc(dst, d.Ref, d.TS, d.Data); err != nil {
			return dst, err
		}
	}
	if p := bytes.TrimSpace(b.Prev); len(p) > 0 {
		dst = appendField(dst, n, "prev")
		if string(p) == "null" {
			dst = append(dst, "null"...)
		} else {
			var d nativeDoc
			if err := json.Unmarshal(p, &d); err != nil {
				return dst, err
			}
			if dst, err = AppendFaunaDoc(dst, d.Ref, d.TS, d.Data); err != nil {
				return dst, err
			}
		}
	}
	if ix := b.Index; ix != nil {
		dst = appendField(dst, n, "index")
		dst = append(dst, `{"terms":[`...)
		if collection != "" {
			dst = AppendFaunaCollectionRef(dst, collection)
		} else if dst, err = appendFaunaList(dst, ix.Terms); err != nil {
			return dst, err
		}
		dst = append(dst, `],"values":[`...)
		if dst, err = appendFaunaList(dst, ix.Values); err != nil {
			return dst, err
		}
		dst = append(dst, "]}"...)
	}
	return append(dst, "}}"...), nil
}

func appendFaunaList(dst []byte, vs []json.RawMessage) ([]byte, error) {
	for i, v := range vs {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = AppendFaunaValue(dst, v); err != nil {
			return dst, err
		}
	}
	return dst, nil
}
