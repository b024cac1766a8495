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
	Memo      *Memo  // optional: see Memo
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
	dst = v.Memo.appendHead(dst, subscription.TypeVersion, v.Txn, v.Cursor)
	dst = append(dst, `,"event":{`...)
	n := len(dst)
	if f&subscription.FieldAction != 0 {
		dst = appendField(dst, n, "action")
		dst = jsondoc.AppendString(dst, v.Action)
	}
	if f&subscription.FieldDocument != 0 {
		dst = appendField(dst, n, "document")
		dst = v.Memo.appendDoc(dst, v.Ref, v.Txn, v.After)
	}
	if f&subscription.FieldDiff != 0 {
		dst = appendField(dst, n, "diff")
		dst = v.Memo.appendDoc(dst, v.Ref, v.Txn, v.Diff)
	}
	if f&subscription.FieldPrev != 0 {
		dst = appendField(dst, n, "prev")
		if v.Before == nil {
			dst = append(dst, "null"...)
		} else {
			dst = v.Memo.appendDoc(dst, v.Ref, v.BeforeTxn, v.Before)
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
	Memo *Memo // optional: see Memo
}

// AppendSet appends a set event:
//
//	{"type":"set","txn":T,"cursor":"…","event":{"action":"add",
//	 "document":{"ref":…,"ts":T},"index":{"terms":[…],"values":[…]}}}
//
// document carries data when withData is set and the change has data; an
// update carries "diff":{"ref","ts","data"} too with subscription.FieldDiff.
func AppendSet(dst []byte, c *SetChange, f subscription.Fields, withData bool) []byte {
	dst = c.Memo.appendHead(dst, subscription.TypeSet, c.Txn, c.Cursor)
	dst = append(dst, `,"event":{`...)
	n := len(dst)
	if f&subscription.FieldAction != 0 {
		dst = appendField(dst, n, "action")
		dst = jsondoc.AppendString(dst, c.Action)
	}
	dst = c.Memo.appendMember(dst, n, f, c.Ref, c.Txn, c.Data, withData, c.Terms, c.Values)
	if f&subscription.FieldDiff != 0 && c.Diff != nil {
		dst = appendField(dst, n, "diff")
		dst = c.Memo.appendDoc(dst, c.Ref, c.Txn, c.Diff)
	}
	return append(dst, "}}"...)
}

// appendMember appends the document and index fields of a set event or a
// snapshot member.
func (m *Memo) appendMember(dst []byte, n int, f subscription.Fields, ref txlog.Ref, ts txlog.Txn, data []byte, withData bool, terms, values canonical.Tuple) []byte {
	if f&subscription.FieldDocument != 0 {
		dst = appendField(dst, n, "document")
		if !withData {
			data = nil
		}
		dst = m.appendDoc(dst, ref, ts, data)
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
		dst = (*Memo)(nil).appendMember(dst, len(dst), f|subscription.FieldDocument, m.Ref, m.TS, m.Data, withData, m.Terms, m.Values)
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
	return (*Memo)(nil).appendHead(dst, t, txn, cursor)
}

func (m *Memo) appendHead(dst []byte, t subscription.Type, txn txlog.Txn, cursor string) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, t.String()...)
	dst = append(dst, `","txn":`...)
	dst = m.appendTxn(dst, txn)
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
	return (*Memo)(nil).appendDoc(dst, ref, ts, data)
}

func (m *Memo) appendDoc(dst []byte, ref txlog.Ref, ts txlog.Txn, data []byte) []byte {
	dst = m.appendRef(dst, ref)
	dst = m.appendTxn(dst, ts)
	if data != nil {
		dst = append(dst, `,"data":`...)
		dst = append(dst, data...)
	}
	return append(dst, '}')
}

func appendUint(dst []byte, v uint64) []byte { return strconv.AppendUint(dst, v, 10) }

// Memo remembers text that an encoder wrote, for a reader that encodes
// many events alike (a subscriber replaying the log writes each write's
// txn two or three times, and the same document's ref over and over): the
// digits of the last two txns and the JSON of the last ref. The zero Memo
// is empty; a nil *Memo remembers nothing. A Memo is not safe for
// concurrent use.
type Memo struct {
	txns [2]memoTxn
	next int
	// The digits of a txn but its last four: txns are microseconds, so
	// those of a stretch of the log share them.
	high   uint64
	highN  int // 0: nothing remembered
	highDs [20]byte
	ref    txlog.Ref
	doc    []byte // `{"ref":{"collection":…,"id":…},"ts":` of ref
}

type memoTxn struct {
	txn    txlog.Txn
	n      int // 0: nothing remembered
	digits [20]byte
}

// appendTxn appends txn in decimal.
func (m *Memo) appendTxn(dst []byte, txn txlog.Txn) []byte {
	if m == nil {
		return appendUint(dst, uint64(txn))
	}
	for i := range m.txns {
		if t := &m.txns[i]; t.txn == txn && t.n > 0 {
			return append(dst, t.digits[:t.n]...)
		}
	}
	t := &m.txns[m.next]
	m.next = 1 - m.next
	t.txn = txn
	if txn < 1e4 {
		t.n = len(strconv.AppendUint(t.digits[:0], uint64(txn), 10))
		return append(dst, t.digits[:t.n]...)
	}
	high, low := uint64(txn)/1e4, uint64(txn)%1e4
	if m.highN == 0 || m.high != high {
		m.high, m.highN = high, len(strconv.AppendUint(m.highDs[:0], high, 10))
	}
	n := copy(t.digits[:], m.highDs[:m.highN])
	t.digits[n], t.digits[n+1] = digitPairs[2*(low/100)], digitPairs[2*(low/100)+1]
	t.digits[n+2], t.digits[n+3] = digitPairs[2*(low%100)], digitPairs[2*(low%100)+1]
	t.n = n + 4
	return append(dst, t.digits[:t.n]...)
}

const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// appendRef appends the start of a document's JSON, up to its ts.
func (m *Memo) appendRef(dst []byte, ref txlog.Ref) []byte {
	if m == nil {
		return appendRef(dst, ref)
	}
	if m.doc == nil || m.ref != ref {
		m.ref, m.doc = ref, appendRef(m.doc[:0], ref)
	}
	return append(dst, m.doc...)
}

func appendRef(dst []byte, ref txlog.Ref) []byte {
	dst = append(dst, `{"ref":{"collection":`...)
	dst = jsondoc.AppendString(dst, ref.Collection)
	dst = append(dst, `,"id":`...)
	dst = jsondoc.AppendString(dst, ref.ID)
	return append(dst, `},"ts":`...)
}

func appendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, "true"...)
	}
	return append(dst, "false"...)
}
