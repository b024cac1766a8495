package wire

import (
	"strconv"

	"github.com/tidings/tidings/internal/canonical"
	"github.com/tidings/tidings/internal/jsondoc"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// The encoders below build the JSON line of each event type, appending to
// dst. They write straight into a byte slice, without reflection, because
// the broker calls them on every commit: once per write and field set,
// whatever the number of subscribers.

// Version is the input of a version event: one write to a document.
type Version struct {
	Action    string // create, update or delete
	Ref       txlog.Ref
	Txn       txlog.Txn
	Cursor    string
	BeforeTxn txlog.Txn
	Before    []byte // nil for a create
	After     []byte // nil for a delete
	Diff      []byte // DiffData(Before, After); needed only with subscription.FieldDiff
}

// AppendVersion appends a version event with the given fields:
//
//	{"type":"version","txn":T,"cursor":"…","event":{"action":"update",
//	 "document":{"ref":…,"ts":T,"data":{…}},
//	 "diff":{"ref":…,"ts":T,"data":{…}},
//	 "prev":{"ref":…,"ts":…,"data":{…}}}}
//
// After a delete, document has no data; before a create, prev is null.
func AppendVersion(dst []byte, v *Version, f subscription.Fields) []byte {
	dst = appendHead(dst, subscription.TypeVersion, v.Txn, v.Cursor)
	dst = append(dst, `,"event":{`...)
	n := len(dst)
	if f&subscription.FieldAction != 0 {
		dst = appendField(dst, n, "action")
		dst = jsondoc.AppendString(dst, v.Action)
	}
	if f&subscription.FieldDocument != 0 {
		dst = appendField(dst, n, "document")
		dst = appendDoc(dst, v.Ref, v.Txn, v.After)
	}
	if f&subscription.FieldDiff != 0 {
		dst = appendField(dst, n, "diff")
		dst = appendDoc(dst, v.Ref, v.Txn, v.Diff)
	}
	if f&subscription.FieldPrev != 0 {
		dst = appendField(dst, n, "prev")
		if v.Before == nil {
			dst = append(dst, "null"...)
		} else {
			dst = appendDoc(dst, v.Ref, v.BeforeTxn, v.Before)
		}
	}
	return append(dst, "}}"...)
}

// SetChange is the input of a set event: one document entering, leaving,
// or (with subscription.Options.Updates) changing within a set.
type SetChange struct {
	Action string // add, remove or update
	Ref    txlog.Ref
	Txn    txlog.Txn
	Cursor string
	Data   []byte // the document's data, for subscription.Options.Data
	Terms  canonical.Tuple
	Values canonical.Tuple
	// Diff is DiffData(before, after) of an update, sent with
	// subscription.FieldDiff; nil for an add or a remove.
	Diff []byte
}

// AppendSet appends a set event:
//
//	{"type":"set","txn":T,"cursor":"…","event":{"action":"add",
//	 "document":{"ref":…,"ts":T},"index":{"terms":[…],"values":[…]}}}
//
// document carries data when withData is set and the change has data; an
// update carries "diff":{"ref","ts","data"} too with subscription.FieldDiff.
func AppendSet(dst []byte, c *SetChange, f subscription.Fields, withData bool) []byte {
	dst = appendHead(dst, subscription.TypeSet, c.Txn, c.Cursor)
	dst = append(dst, `,"event":{`...)
	n := len(dst)
	if f&subscription.FieldAction != 0 {
		dst = appendField(dst, n, "action")
		dst = jsondoc.AppendString(dst, c.Action)
	}
	dst = appendMember(dst, n, f, c.Ref, c.Txn, c.Data, withData, c.Terms, c.Values)
	if f&subscription.FieldDiff != 0 && c.Diff != nil {
		dst = appendField(dst, n, "diff")
		dst = appendDoc(dst, c.Ref, c.Txn, c.Diff)
	}
	return append(dst, "}}"...)
}

// appendMember appends the document and index fields of a set event or a
// snapshot member.
func appendMember(dst []byte, n int, f subscription.Fields, ref txlog.Ref, ts txlog.Txn, data []byte, withData bool, terms, values canonical.Tuple) []byte {
	if f&subscription.FieldDocument != 0 {
		dst = appendField(dst, n, "document")
		if !withData {
			data = nil
		}
		dst = appendDoc(dst, ref, ts, data)
	}
	if f&subscription.FieldIndex != 0 {
		dst = appendField(dst, n, "index")
		dst = append(dst, `{"terms":`...)
		dst = terms.AppendJSON(dst)
		dst = append(dst, `,"values":`...)
		dst = values.AppendJSON(dst)
		dst = append(dst, '}')
	}
	return dst
}

// Member is one document of a snapshot page.
type Member struct {
	Ref    txlog.Ref
	TS     txlog.Txn
	Data   []byte
	Terms  canonical.Tuple
	Values canonical.Tuple
}

// AppendSnapshot appends a snapshot event: a page of the target's state at
// the start txn, each member shaped as a set event's document and index
// (a document stream's one member as a version event's document, with its
// data). last marks the final page, which carries the stream's start
// cursor (the earlier pages have none: cursor is "").
//
//	{"type":"snapshot","txn":T,"cursor":"…","event":{"data":[{"document":…},…],"last":true}}
func AppendSnapshot(dst []byte, txn txlog.Txn, cursor string, members []Member, f subscription.Fields, withData, last bool) []byte {
	dst = appendHead(dst, subscription.TypeSnapshot, txn, cursor)
	dst = append(dst, `,"event":{"data":[`...)
	for i := range members {
		m := &members[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '{')
		dst = appendMember(dst, len(dst), f|subscription.FieldDocument, m.Ref, m.TS, m.Data, withData, m.Terms, m.Values)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"last":`...)
	dst = appendBool(dst, last)
	return append(dst, "}}"...)
}

// AppendStart appends a start event. Its event field is the start txn, as
// in Fauna; its cursor resumes right after the start.
func AppendStart(dst []byte, txn txlog.Txn, cursor string) []byte {
	dst = appendHead(dst, subscription.TypeStart, txn, cursor)
	dst = append(dst, `,"event":`...)
	dst = appendUint(dst, uint64(txn))
	return append(dst, '}')
}

// AppendStatus appends a heartbeat status event with the latest txn.
func AppendStatus(dst []byte, txn txlog.Txn) []byte {
	dst = appendHead(dst, subscription.TypeStatus, txn, "")
	return append(dst, '}')
}

// AppendError appends an error event; cursor is where to resume from.
func AppendError(dst []byte, txn txlog.Txn, code, description, cursor string) []byte {
	dst = appendHead(dst, subscription.TypeError, txn, "")
	dst = append(dst, `,"event":{"code":`...)
	dst = jsondoc.AppendString(dst, code)
	dst = append(dst, `,"description":`...)
	dst = jsondoc.AppendString(dst, description)
	if cursor != "" {
		dst = append(dst, `,"cursor":`...)
		dst = jsondoc.AppendString(dst, cursor)
	}
	return append(dst, "}}"...)
}

// AppendHistoryRewrite appends a history_rewrite event: the version at ts
// was inserted (with its data) or removed.
//
//	{"type":"history_rewrite","txn":T,"cursor":"…","event":{"action":"insert",
//	 "document":{"ref":…,"ts":ts,"data":{…}}}}
func AppendHistoryRewrite(dst []byte, txn txlog.Txn, cursor, action string, ref txlog.Ref, ts txlog.Txn, data []byte, f subscription.Fields) []byte {
	dst = appendHead(dst, subscription.TypeHistoryRewrite, txn, cursor)
	dst = append(dst, `,"event":{`...)
	n := len(dst)
	if f&subscription.FieldAction != 0 {
		dst = appendField(dst, n, "action")
		dst = jsondoc.AppendString(dst, action)
	}
	if f&subscription.FieldDocument != 0 {
		dst = appendField(dst, n, "document")
		dst = appendDoc(dst, ref, ts, data)
	}
	return append(dst, "}}"...)
}

func appendHead(dst []byte, t subscription.Type, txn txlog.Txn, cursor string) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, t.String()...)
	dst = append(dst, `","txn":`...)
	dst = appendUint(dst, uint64(txn))
	if cursor != "" {
		// Cursors are base64url: no escaping needed.
		dst = append(dst, `,"cursor":"`...)
		dst = append(dst, cursor...)
		dst = append(dst, '"')
	}
	return dst
}

// appendField appends `"name":`, with a comma unless it is the first
// field after the object's start at n.
func appendField(dst []byte, n int, name string) []byte {
	if len(dst) > n {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, name...)
	return append(dst, '"', ':')
}

func appendDoc(dst []byte, ref txlog.Ref, ts txlog.Txn, data []byte) []byte {
	dst = append(dst, `{"ref":{"collection":`...)
	dst = jsondoc.AppendString(dst, ref.Collection)
	dst = append(dst, `,"id":`...)
	dst = jsondoc.AppendString(dst, ref.ID)
	dst = append(dst, `},"ts":`...)
	dst = appendUint(dst, uint64(ts))
	if data != nil {
		dst = append(dst, `,"data":`...)
		dst = append(dst, data...)
	}
	return append(dst, '}')
}

func appendUint(dst []byte, v uint64) []byte { return strconv.AppendUint(dst, v, 10) }

func appendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, "true"...)
	}
	return append(dst, "false"...)
}
