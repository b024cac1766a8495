package electric

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/tidings/tidings/internal/jsondoc"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// Rows are documents passed through: {"id": <the ref's id>, …the
// document's top-level fields}, a data field named id shadowed by the ref's.
// The schema names id alone (as text, the primary key): the client leaves
// the columns the schema does not name as they are, so rows equal the
// documents, numbers, objects and all (PROTOCOL.md, "Electric").
const schemaHeader = `{"id":{"type":"text","pk_index":0}}`

// The operations of change messages.
const (
	opInsert = "insert"
	opUpdate = "update"
	opDelete = "delete"
)

// nativeChange is what a change message is made of, read from the
// broker's event: set events with data and, for updates, diff; version
// events with document and diff.
type nativeChange struct {
	Event struct {
		Action   string `json:"action"`
		Document struct {
			Ref  txlog.Ref       `json:"ref"`
			Data json.RawMessage `json:"data"`
		} `json:"document"`
		Diff *struct {
			Data json.RawMessage `json:"data"`
		} `json:"diff"`
	} `json:"event"`
}

// appendChange appends the change message of a broker event, or nothing
// (false) for an event that changes no row of the shape: a history
// rewrite, an update of fields outside the projection, or, with only set,
// a document of another id.
//
//	{"headers":{"operation":"update","lsn":"T","op_position":N},"key":"\"spells\"/\"1\"","value":{"id":"1",…}}
func appendChange(dst []byte, e *subscription.Event, cols []string, only string) ([]byte, bool, error) {
	if e.Type != subscription.TypeSet && e.Type != subscription.TypeVersion {
		return dst, false, nil
	}
	var c nativeChange
	if err := json.Unmarshal(e.JSON, &c); err != nil {
		return dst, false, err
	}
	ref, data := c.Event.Document.Ref, c.Event.Document.Data
	if only != "" && ref.ID != only {
		return dst, false, nil
	}
	var op string
	var value []byte
	var err error
	switch c.Event.Action {
	case "add", "create":
		op = opInsert
		value, err = appendRow(nil, ref, data, cols)
	case "update":
		if c.Event.Diff == nil {
			return dst, false, errors.New("electric: an update without its diff")
		}
		op = opUpdate
		value, err = appendUpdate(nil, ref, data, c.Event.Diff.Data, cols)
	case "remove", "delete":
		op = opDelete
		value = appendID(nil, ref)
		value = append(value, '}')
	default:
		return dst, false, nil
	}
	if err != nil || value == nil {
		return dst, false, err
	}
	dst = append(dst, `{"headers":{"operation":"`...)
	dst = append(dst, op...)
	dst = append(dst, `","lsn":"`...)
	dst = strconv.AppendUint(dst, uint64(e.Txn), 10)
	dst = append(dst, `","op_position":`...)
	dst = strconv.AppendUint(dst, uint64(e.Cursor.Pos.Op), 10)
	dst = append(dst, '}')
	return appendKeyValue(dst, ref, value), true, nil
}

// appendInsert appends the insert message of a row of the initial
// snapshot, which carries no lsn (as Electric's do not).
func appendInsert(dst []byte, ref txlog.Ref, data []byte, cols []string) ([]byte, error) {
	value, err := appendRow(nil, ref, data, cols)
	if err != nil {
		return dst, err
	}
	dst = append(dst, `{"headers":{"operation":"insert"}`...)
	return appendKeyValue(dst, ref, value), nil
}

func appendKeyValue(dst []byte, ref txlog.Ref, value []byte) []byte {
	dst = append(dst, `,"key":`...)
	dst = jsondoc.AppendString(dst, rowKey(ref))
	dst = append(dst, `,"value":`...)
	dst = append(dst, value...)
	return append(dst, '}')
}

// rowKey is a row's key in the client's Shape: "collection"/"id", with "
// doubled inside, as Electric writes a table's primary key.
func rowKey(ref txlog.Ref) string {
	return `"` + strings.ReplaceAll(ref.Collection, `"`, `""`) + `"/"` + strings.ReplaceAll(ref.ID, `"`, `""`) + `"`
}

// appendID appends {"id":<id> without its closing brace.
func appendID(dst []byte, ref txlog.Ref) []byte {
	dst = append(dst, `{"id":`...)
	return jsondoc.AppendString(dst, ref.ID)
}

// appendRow appends a document as a row: its id, then its top-level
// fields but id, within the projection.
func appendRow(dst []byte, ref txlog.Ref, data []byte, cols []string) ([]byte, error) {
	dst = appendID(dst, ref)
	err := eachMember(data, func(key string, raw, val []byte) {
		if key != "id" && (cols == nil || slices.Contains(cols, key)) {
			dst = append(dst, ',')
			dst = append(dst, raw...)
			dst = append(dst, ':')
			dst = append(dst, val...)
		}
	})
	return append(dst, '}'), err
}

// appendUpdate appends the value of an update: the id, then each
// top-level field the write changed, whole as it is now, or null when the
// write removed it (the client merges the value over the row it has, so a
// field left out would keep its old value). It returns nil when the write
// changed no field of the projection.
func appendUpdate(dst []byte, ref txlog.Ref, after, diff []byte, cols []string) ([]byte, error) {
	now := map[string][]byte{}
	if err := eachMember(after, func(key string, _, val []byte) { now[key] = val }); err != nil {
		return nil, err
	}
	dst = appendID(dst, ref)
	changed := false
	err := eachMember(diff, func(key string, raw, _ []byte) {
		if key == "id" || cols != nil && !slices.Contains(cols, key) {
			return
		}
		changed = true
		dst = append(dst, ',')
		dst = append(dst, raw...)
		dst = append(dst, ':')
		if v, ok := now[key]; ok {
			dst = append(dst, v...)
		} else {
			dst = append(dst, "null"...)
		}
	})
	if err != nil || !changed {
		return nil, err
	}
	return append(dst, '}'), nil
}

// eachMember calls fn with each member of a JSON object: its key decoded,
// the key as written (quoted), and its value. A null or absent object has
// no members.
func eachMember(obj []byte, fn func(key string, raw, val []byte)) error {
	i := jsondoc.SkipSpace(obj, 0)
	if i == len(obj) || string(obj[i:]) == "null" {
		return nil
	}
	if obj[i] != '{' {
		return jsondoc.SyntaxError(i, "expected an object")
	}
	i = jsondoc.SkipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return jsondoc.SyntaxError(i, "expected object key")
		}
		end, plain, err := jsondoc.ScanString(obj, i)
		if err != nil {
			return err
		}
		raw := obj[i:end]
		key := string(raw[1 : len(raw)-1])
		if !plain {
			if err := json.Unmarshal(raw, &key); err != nil {
				return err
			}
		}
		if i = jsondoc.SkipSpace(obj, end); i >= len(obj) || obj[i] != ':' {
			return jsondoc.SyntaxError(i, "expected ':'")
		}
		start := jsondoc.SkipSpace(obj, i+1)
		if i, err = jsondoc.SkipValue(obj, start, 1); err != nil {
			return err
		}
		fn(key, raw, obj[start:i])
		if i, err = jsondoc.NextMember(obj, i, '}'); err != nil || i < 0 {
			return err
		}
	}
}

// appendUpToDate appends the control message that closes a group: every
// txn up to h is in what the client has.
func appendUpToDate(dst []byte, h txlog.Txn) []byte {
	dst = append(dst, `{"headers":{"control":"up-to-date","global_last_seen_lsn":"`...)
	dst = strconv.AppendUint(dst, uint64(h), 10)
	return append(dst, `"}}`...)
}

// mustRefetchBody is the body of a 409, which the client ignores but
// Electric sends.
const mustRefetchBody = `[{"headers":{"control":"must-refetch"}}]`
