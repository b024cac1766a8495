package broker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

var (
	flagModelSeed = flag.Uint64("model.seed", 0, "seed of TestModel and TestStartUnderConcurrency; 0 picks one (env TIDINGS_MODEL_SEED also sets it)")
	flagModelTxns = flag.Int("model.txns", 0, "transactions TestModel runs; 0 means 3000 (600 with -short)")
	flagModelSubs = flag.Int("model.subs", 0, "subscribers TestModel starts, besides resumes; 0 means 60")
)

// modelSeed returns the seed of a randomized test and logs how to replay it.
func modelSeed(t *testing.T) uint64 {
	t.Helper()
	seed := *flagModelSeed
	if s := os.Getenv("TIDINGS_MODEL_SEED"); seed == 0 && s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("TIDINGS_MODEL_SEED: %v", err)
		}
	}
	if seed == 0 {
		seed = rand.Uint64() | 1
	}
	t.Logf("seed %d; replay: go test ./broker -run '^%s$' -args -model.seed=%d", seed, t.Name(), seed)
	return seed
}

// The model's schema: three collections; indexes with one and two terms
// (one of them nested), array-valued terms and values, a term-less index
// with values and one without.
var modelSchema = index.Schema{
	Collections: []string{"spells", "users", "notes"},
	Indexes: []index.Definition{
		{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}, Values: []string{"cost"}},
		{Name: "spells_by_tag", Collection: "spells", Terms: []string{"tags"}},
		{Name: "spells_by_level", Collection: "spells", Values: []string{"stats.level", "name"}},
		{Name: "users_by_team_role", Collection: "users", Terms: []string{"team", "profile.role"}, Values: []string{"age"}},
		{Name: "users_all", Collection: "users"},
	},
}

var modelDefs = func() map[string]index.Definition {
	m := map[string]index.Definition{}
	for _, d := range modelSchema.Indexes {
		m[d.Name] = d
	}
	return m
}()

// modelIDs are the document ids of each collection: few, so that documents
// are written twice in one transaction, deleted and created again; "10"
// sorts before "2", as ids order by their bytes.
var modelIDs = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}

// ---------------------------------------------------------------------------
// Data generators. Values are Go values that encoding/json marshals; the
// model keeps what json.Unmarshal makes of the marshalled bytes.

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

var spellNames = []any{"Fire Beak", "Frost", "Quake", "Zap", "Mist", "Ember"}

// genField returns a value for one field of a collection's documents.
func genField(r *rand.Rand, coll, key string) any {
	switch coll + "." + key {
	case "spells.name":
		return pick(r, spellNames...)
	case "spells.element":
		return pick[any](r, "fire", "fire", "water", "water", "earth", nil,
			[]any{"fire", "water"}, []any{}, []any{"earth", "earth", "fire"}, 1, 1.0,
			[]any{[]any{"fire"}, "water"}, map[string]any{"k": "fire"})
	case "spells.cost":
		return pick[any](r, 0, 1, 2, 3, 4, 2.5, []any{1, 2}, "3", []any{3, 3.0})
	case "spells.tags":
		n := r.IntN(4)
		tags := []any{}
		for range n {
			tags = append(tags, pick[any](r, "a", "b", "c"))
		}
		return pick[any](r, tags, tags, tags, "a", []any{[]any{"a"}, "b"})
	case "spells.stats":
		s := map[string]any{}
		if r.IntN(5) != 0 {
			s["level"] = pick[any](r, 1, 2, 3, []any{1, 2}, nil)
		}
		if r.IntN(2) == 0 {
			s["hp"] = r.IntN(100)
		}
		return pick[any](r, s, s, s, 7)
	case "spells.extra", "notes.meta":
		return map[string]any{"x": map[string]any{"y": r.IntN(3), "z": []any{1, map[string]any{"b": 2, "a": 1}}}}
	case "users.name":
		return pick[any](r, "ann", "bob", "cy", "dee")
	case "users.team":
		return pick[any](r, "red", "red", "blue", "blue", nil, []any{"red", "blue"})
	case "users.profile":
		p := map[string]any{"bio": pick[any](r, "hi", "yo")}
		if r.IntN(4) != 0 {
			p["role"] = pick[any](r, "admin", "user", "user", nil)
		}
		return pick[any](r, p, p, p, "nobody")
	case "users.age":
		return pick[any](r, 20, 21, 22, 30, []any{21, 22})
	case "notes.text":
		return pick[any](r, "x", "yy", "zzz")
	case "notes.n":
		return r.IntN(10)
	}
	panic("no generator for " + coll + "." + key)
}

var modelFields = map[string][]string{
	"spells": {"name", "element", "cost", "tags", "stats", "extra"},
	"users":  {"name", "team", "profile", "age"},
	"notes":  {"text", "n", "meta"},
}

// genData returns a new document's data: most fields, some left out.
func genData(r *rand.Rand, coll string) map[string]any {
	d := map[string]any{}
	for _, k := range modelFields[coll] {
		if r.IntN(6) != 0 {
			d[k] = genField(r, coll, k)
		}
	}
	return d
}

// genPatch returns a merge patch: new values, nulls that remove fields,
// and nested objects that merge field by field.
func genPatch(r *rand.Rand, coll string) map[string]any {
	p := map[string]any{}
	keys := modelFields[coll]
	for range 1 + r.IntN(3) {
		k := keys[r.IntN(len(keys))]
		switch r.IntN(6) {
		case 0:
			p[k] = nil
		case 1:
			switch k {
			case "stats":
				p[k] = map[string]any{"level": pick[any](r, 2, nil, []any{2, 3}), "hp": pick[any](r, nil, 5)}
			case "profile":
				p[k] = map[string]any{"role": pick[any](r, "admin", "user", nil), "bio": nil}
			case "extra", "meta":
				p[k] = map[string]any{"x": map[string]any{"y": pick[any](r, nil, 4), "w": 1}}
			default:
				p[k] = genField(r, coll, k)
			}
		default:
			p[k] = genField(r, coll, k)
		}
	}
	return p
}

func encodeData(r *rand.Rand, v map[string]any) []byte {
	var b []byte
	var err error
	if r != nil && r.IntN(10) == 0 {
		b, err = json.MarshalIndent(v, "", "  ") // the broker compacts it
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		panic(err)
	}
	return b
}

func decodeObject(b []byte) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("not an object: %s", b)
	}
	return m, nil
}

// mergePatch is RFC 7396 over decoded JSON: null removes, an object merges
// into an object (or into {} when the target is not one), anything else
// replaces. It never modifies its arguments.
func mergePatch(target any, patch map[string]any) map[string]any {
	out := map[string]any{}
	if t, ok := target.(map[string]any); ok {
		maps.Copy(out, t)
	}
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			out[k] = mergePatch(out[k], pv)
		default:
			out[k] = v
		}
	}
	return out
}

// modelDiff is what the diff field should carry: changed and added fields,
// removed ones as null, objects diffed field by field, the rest whole.
func modelDiff(prev, next map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range next {
		pv, ok := prev[k]
		if ok && reflect.DeepEqual(pv, v) {
			continue
		}
		pm, pok := pv.(map[string]any)
		nm, nok := v.(map[string]any)
		if ok && pok && nok {
			if sub := modelDiff(pm, nm); len(sub) > 0 {
				out[k] = sub
			}
			continue
		}
		out[k] = v
	}
	for k := range prev {
		if _, ok := next[k]; !ok {
			out[k] = nil
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Index entries, by brute force, from index/doc.go's rules.

func jsonRank(v any) int {
	switch v := v.(type) {
	case nil:
		return 0
	case bool:
		if v {
			return 2
		}
		return 1
	case float64:
		return 3
	case string:
		return 4
	case []any:
		return 5
	case map[string]any:
		return 6
	}
	panic(fmt.Sprintf("not a decoded JSON value: %T", v))
}

// cmpJSON is the total order: null < false < true < numbers < strings <
// arrays < objects; arrays element by element, objects as sorted members.
func cmpJSON(a, b any) int {
	if ra, rb := jsonRank(a), jsonRank(b); ra != rb {
		return cmp.Compare(ra, rb)
	}
	switch a := a.(type) {
	case float64:
		return cmp.Compare(a, b.(float64))
	case string:
		return strings.Compare(a, b.(string))
	case []any:
		return cmpTuple(a, b.([]any))
	case map[string]any:
		bm := b.(map[string]any)
		ak, bk := slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(bm))
		for i := 0; i < len(ak) && i < len(bk); i++ {
			if c := strings.Compare(ak[i], bk[i]); c != 0 {
				return c
			}
			if c := cmpJSON(a[ak[i]], bm[bk[i]]); c != 0 {
				return c
			}
		}
		return cmp.Compare(len(ak), len(bk))
	}
	return 0
}

func cmpTuple(a, b []any) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := cmpJSON(a[i], b[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

type mEntry struct{ terms, values []any }

func cmpEntry(a, b mEntry) int {
	if c := cmpTuple(a.terms, b.terms); c != 0 {
		return c
	}
	return cmpTuple(a.values, b.values)
}

func readPath(data map[string]any, path string) any {
	var cur any = data
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k] // missing: nil, JSON null
	}
	return cur
}

// modelEntries returns a document's entries in an index, sorted, without
// duplicates: the cross product of its fields, an array fanning out into
// its elements, an empty array into none.
func modelEntries(def index.Definition, data map[string]any) []mEntry {
	if data == nil {
		return nil
	}
	paths := slices.Concat(def.Terms, def.Values)
	choices := make([][]any, len(paths))
	for i, p := range paths {
		v := readPath(data, p)
		if arr, ok := v.([]any); ok {
			choices[i] = arr
		} else {
			choices[i] = []any{v}
		}
	}
	var out []mEntry
	var walk func(i int, acc []any)
	walk = func(i int, acc []any) {
		if i == len(choices) {
			tup := slices.Clone(acc)
			out = append(out, mEntry{terms: tup[:len(def.Terms):len(def.Terms)], values: tup[len(def.Terms):]})
			return
		}
		for _, v := range choices[i] {
			walk(i+1, append(acc, v))
		}
	}
	walk(0, make([]any, 0, len(paths)))
	slices.SortFunc(out, cmpEntry)
	return slices.CompactFunc(out, func(a, b mEntry) bool { return cmpEntry(a, b) == 0 })
}

// ---------------------------------------------------------------------------
// The model's history and its predictions.

type mDoc struct {
	ts   txlog.Txn
	data map[string]any // never modified: a write makes a new map
}

// mWrite is one net write of a committed transaction, as the model made it.
type mWrite struct {
	ref           txlog.Ref
	action        string // create, update, delete
	beforeTS      txlog.Txn
	before, after map[string]any
	ents          map[string][2][]mEntry // per index: entries before, after
}

func (w *mWrite) entries(def index.Definition) (before, after []mEntry) {
	if e, ok := w.ents[def.Name]; ok {
		return e[0], e[1]
	}
	if w.ents == nil {
		w.ents = map[string][2][]mEntry{}
	}
	e := [2][]mEntry{modelEntries(def, w.before), modelEntries(def, w.after)}
	w.ents[def.Name] = e
	return e[0], e[1]
}

type mRecord struct {
	txn    txlog.Txn
	writes []mWrite
}

// mTarget is a subscription target as the model sees it.
type mTarget struct {
	kind  subscription.Kind
	ref   txlog.Ref
	coll  string
	index string
	terms []any
}

func (t mTarget) target() (subscription.Target, error) {
	switch t.kind {
	case subscription.KindDocument:
		return subscription.Document(t.ref), nil
	case subscription.KindCollection:
		return subscription.Collection(t.coll), nil
	}
	return subscription.Match(t.index, t.terms...)
}

func (t mTarget) String() string {
	switch t.kind {
	case subscription.KindDocument:
		return "doc " + t.ref.String()
	case subscription.KindCollection:
		return "collection " + t.coll
	}
	b, _ := json.Marshal(t.terms)
	return "match " + t.index + string(b)
}

func (t mTarget) kindName() string {
	switch t.kind {
	case subscription.KindDocument:
		return "document"
	case subscription.KindCollection:
		return "collection"
	}
	if len(t.terms) == 0 {
		return "term-less"
	}
	return "index"
}

// collection returns the collection whose documents the target follows.
func (t mTarget) collection() string {
	switch t.kind {
	case subscription.KindDocument:
		return t.ref.Collection
	case subscription.KindCollection:
		return t.coll
	}
	return modelDefs[t.index].Collection
}

// inSet returns a document's entries in a set target, in order.
func (t mTarget) inSet(ents []mEntry) []mEntry {
	var out []mEntry
	for _, e := range ents {
		if cmpTuple(e.terms, t.terms) == 0 {
			out = append(out, e)
		}
	}
	return out
}

// xSub is everything that decides a subscriber's events.
type xSub struct {
	target mTarget
	opt    subscription.Options
	start  txlog.Txn
	cursor txlog.Cursor // the start event's: AfterTxn(start), or the resume cursor
	resume bool
	snap   map[txlog.Ref]mDoc // the state at start, for a fresh subscriber
}

func (x *xSub) fields() subscription.Fields {
	if x.opt.Fields == 0 {
		return subscription.DefaultFields
	}
	return x.opt.Fields
}

func (x *xSub) String() string {
	s := fmt.Sprintf("%s fields=%s snapshot=%t page=%d data=%t updates=%t buffer=%d/%d start=%d",
		x.target, x.fields(), x.opt.Snapshot, x.opt.SnapshotPageSize, x.opt.Data, x.opt.Updates,
		x.opt.Buffer, x.opt.BufferBytes, x.start)
	if x.resume {
		s += fmt.Sprintf(" resume=%d.%d.%d", x.cursor.Pos.Txn, x.cursor.Pos.Op, x.cursor.Seq)
	}
	return s
}

// xEvent is an expected event.
type xEvent struct {
	typ    subscription.Type
	txn    txlog.Txn
	cursor txlog.Cursor
	action string
	json   any // the event's JSON as encoding/json decodes it
}

func (x xEvent) String() string {
	b, _ := json.Marshal(x.json)
	return fmt.Sprintf("%s %d %q cursor %d.%d.%d %s", x.typ, x.txn, x.action, x.cursor.Pos.Txn, x.cursor.Pos.Op, x.cursor.Seq, b)
}

func num(t txlog.Txn) float64 { return float64(t) }

func nz(s []any) []any {
	if s == nil {
		return []any{}
	}
	return s
}

func refJSON(r txlog.Ref) map[string]any {
	return map[string]any{"collection": r.Collection, "id": r.ID}
}

func docJSON(r txlog.Ref, ts txlog.Txn, data map[string]any) map[string]any {
	m := map[string]any{"ref": refJSON(r), "ts": num(ts)}
	if data != nil {
		m["data"] = data
	}
	return m
}

func indexJSON(e mEntry) map[string]any {
	return map[string]any{"terms": nz(e.terms), "values": nz(e.values)}
}

// cursorAfter reports whether a comes after c: by position, then sequence.
func cursorAfter(a, c txlog.Cursor) bool {
	if d := a.Pos.Compare(c.Pos); d != 0 {
		return d > 0
	}
	return a.Seq > c.Seq
}

// expect returns the subscriber's whole sequence: start, snapshot pages,
// then every event of every record after its start cursor.
func (x *xSub) expect(logID txlog.ID, recs []mRecord) []xEvent {
	out := []xEvent{{typ: subscription.TypeStart, txn: x.start, cursor: x.cursor,
		json: map[string]any{"type": "start", "txn": num(x.start), "cursor": x.cursor.String(), "event": num(x.start)}}}
	if !x.resume && x.opt.Snapshot {
		// Guarantee 2: the start cursor is withheld until the snapshot's
		// last page, which carries it.
		out[0].cursor = txlog.Cursor{}
		delete(out[0].json.(map[string]any), "cursor")
		out = append(out, x.snapshotEvents()...)
	}
	i := sort.Search(len(recs), func(i int) bool { return recs[i].txn >= x.cursor.Pos.Txn })
	for _, rec := range recs[i:] {
		for op := range rec.writes {
			for _, e := range x.writeEvents(logID, rec.txn, op, &rec.writes[op]) {
				if cursorAfter(e.cursor, x.cursor) {
					out = append(out, e)
				}
			}
		}
	}
	return out
}

// members lists a set target's members in a state: (ref, entry) in the
// order (terms, values, ref id).
type member struct {
	ref txlog.Ref
	doc mDoc
	e   mEntry
}

func (t mTarget) members(state map[txlog.Ref]mDoc) []member {
	var ms []member
	for ref, d := range state {
		if ref.Collection != t.collection() {
			continue
		}
		if t.kind == subscription.KindCollection {
			ms = append(ms, member{ref, d, mEntry{}})
			continue
		}
		for _, e := range t.inSet(modelEntries(modelDefs[t.index], d.data)) {
			ms = append(ms, member{ref, d, e})
		}
	}
	slices.SortFunc(ms, func(a, b member) int {
		if c := cmpEntry(a.e, b.e); c != 0 {
			return c
		}
		return strings.Compare(a.ref.ID, b.ref.ID)
	})
	return ms
}

func (x *xSub) snapshotEvents() []xEvent {
	page := func(data []any, last bool) xEvent {
		e := xEvent{typ: subscription.TypeSnapshot, txn: x.start, json: map[string]any{
			"type": "snapshot", "txn": num(x.start), "event": map[string]any{"data": nz(data), "last": last}}}
		if last {
			e.action = subscription.ActionLastPage
			e.cursor = x.cursor
			e.json.(map[string]any)["cursor"] = x.cursor.String()
		}
		return e
	}
	if x.target.kind == subscription.KindDocument {
		d := x.snap[x.target.ref]
		return []xEvent{page([]any{map[string]any{"document": docJSON(x.target.ref, d.ts, d.data)}}, true)}
	}
	size := x.opt.SnapshotPageSize
	if size == 0 {
		size = subscription.DefaultSnapshotPageSize
	}
	var out []xEvent
	ms := x.target.members(x.snap)
	for i := 0; ; i += size {
		var data []any
		for _, m := range ms[i:min(i+size, len(ms))] {
			var d map[string]any
			if x.opt.Data {
				d = m.doc.data
			}
			mj := map[string]any{"document": docJSON(m.ref, m.doc.ts, d)}
			if x.fields()&subscription.FieldIndex != 0 {
				mj["index"] = indexJSON(m.e)
			}
			data = append(data, mj)
		}
		last := i+size >= len(ms)
		out = append(out, page(data, last))
		if last {
			return out
		}
	}
}

// writeEvents returns the events one write yields for the subscriber.
func (x *xSub) writeEvents(logID txlog.ID, txn txlog.Txn, op int, w *mWrite) []xEvent {
	t := x.target
	f := x.fields()
	cur := func(seq int) txlog.Cursor {
		return txlog.Cursor{Log: logID, Pos: txlog.Pos{Txn: txn, Op: uint32(op)}, Seq: uint32(seq)}
	}
	if t.kind == subscription.KindDocument {
		if w.ref != t.ref {
			return nil
		}
		ev := map[string]any{}
		if f&subscription.FieldAction != 0 {
			ev["action"] = w.action
		}
		if f&subscription.FieldDocument != 0 {
			ev["document"] = docJSON(w.ref, txn, w.after)
		}
		if f&subscription.FieldDiff != 0 {
			d := docJSON(w.ref, txn, nil)
			d["data"] = modelDiff(w.before, w.after)
			ev["diff"] = d
		}
		if f&subscription.FieldPrev != 0 {
			if w.before == nil {
				ev["prev"] = nil
			} else {
				ev["prev"] = docJSON(w.ref, w.beforeTS, w.before)
			}
		}
		c := cur(0)
		return []xEvent{{typ: subscription.TypeVersion, txn: txn, cursor: c, action: w.action,
			json: map[string]any{"type": "version", "txn": num(txn), "cursor": c.String(), "event": ev}}}
	}
	if w.ref.Collection != t.collection() {
		return nil
	}
	var out []xEvent
	add := func(action string, data map[string]any, e mEntry) {
		c := cur(len(out))
		ev := map[string]any{}
		if f&subscription.FieldAction != 0 {
			ev["action"] = action
		}
		if f&subscription.FieldDocument != 0 {
			if !x.opt.Data {
				data = nil
			}
			ev["document"] = docJSON(w.ref, txn, data)
		}
		if f&subscription.FieldIndex != 0 {
			ev["index"] = indexJSON(e)
		}
		if f&subscription.FieldDiff != 0 && action == "update" {
			d := docJSON(w.ref, txn, nil)
			d["data"] = modelDiff(w.before, w.after)
			ev["diff"] = d
		}
		out = append(out, xEvent{typ: subscription.TypeSet, txn: txn, cursor: c, action: action,
			json: map[string]any{"type": "set", "txn": num(txn), "cursor": c.String(), "event": ev}})
	}
	removed := w.after
	if removed == nil {
		removed = w.before
	}
	var member []mEntry // the document's entries in the set after the write
	if t.kind == subscription.KindCollection {
		switch w.action {
		case "create":
			add("add", w.after, mEntry{})
		case "delete":
			add("remove", removed, mEntry{})
		}
		if w.after != nil {
			member = []mEntry{{}}
		}
	} else {
		b, a := w.entries(modelDefs[t.index])
		b, a = t.inSet(b), t.inSet(a)
		for _, e := range b {
			if !slices.ContainsFunc(a, func(o mEntry) bool { return cmpEntry(o, e) == 0 }) {
				add("remove", removed, e)
			}
		}
		for _, e := range a {
			if !slices.ContainsFunc(b, func(o mEntry) bool { return cmpEntry(o, e) == 0 }) {
				add("add", w.after, e)
			}
		}
		member = a
	}
	if len(out) == 0 && x.opt.Updates && w.action == "update" && len(member) > 0 {
		add("update", w.after, member[0])
	}
	return out
}

// ---------------------------------------------------------------------------
// Consumers: each reads one subscription's Events in its own goroutine.

type consumer struct {
	id   int
	x    xSub
	sub  *Subscription
	kind string // fresh, late, twin, requit (resumed after quitting), recancel
	// deliver: read with Deliver's callbacks, not a loop over Events.
	deliver bool
	n       int // events taken, status aside (the consumer's goroutine)
	unread  int // events of its last batch after it quit

	quitAfter int                // break out after this many events; 0: never
	cancel    context.CancelFunc // non-nil: its context may be cancelled
	cancelled bool               // it was (main goroutine only)
	pauseEach int                // a slow consumer pauses every pauseEach events
	pauseMax  int                // for up to pauseMax µs (0: only yields)
	rng       *rand.Rand         // the consumer goroutine's

	mu      sync.Mutex
	got     []subscription.Event // every event but status
	status  []subscription.Event
	quit    bool // it broke out of the loop
	waiters []waiter

	done chan struct{}

	// main goroutine only
	exp           []xEvent
	overflows     int
	wasOverflowed bool
	resumed       bool // a later consumer resumes where it stopped
}

type waiter struct {
	n  int
	ch chan struct{}
}

// run reads the consumer's stream to its end: a loop over Events, or
// the callbacks of Deliver on the broker's workers.
func (c *consumer) run() {
	defer close(c.done)
	if c.deliver {
		<-c.sub.Deliver(func(batch []subscription.Event) bool {
			for i, e := range batch {
				if !c.take(e) {
					// Handed over in the batch, and counted as delivered.
					c.unread = len(batch) - i - 1
					return false
				}
			}
			return true
		})
		return
	}
	for e := range c.sub.Events() {
		if !c.take(e) {
			break
		}
	}
}

// take records e; it reports false when the consumer quits.
func (c *consumer) take(e subscription.Event) bool {
	if e.Type == subscription.TypeStatus {
		c.mu.Lock()
		c.status = append(c.status, e)
		c.mu.Unlock()
		return true
	}
	c.n++
	c.mu.Lock()
	c.got = append(c.got, e)
	c.waiters = slices.DeleteFunc(c.waiters, func(w waiter) bool {
		if w.n <= c.n {
			close(w.ch)
			return true
		}
		return false
	})
	if c.n == c.quitAfter {
		c.quit = true
	}
	c.mu.Unlock()
	if c.n == c.quitAfter {
		return false
	}
	if c.pauseEach > 0 && c.rng.IntN(c.pauseEach) == 0 {
		if c.pauseMax > 0 {
			time.Sleep(time.Duration(c.rng.IntN(c.pauseMax)) * time.Microsecond)
		} else {
			runtime.Gosched()
		}
	}
	return true
}

// reach returns a channel closed once the consumer holds n events.
func (c *consumer) reach(n int) <-chan struct{} {
	ch := make(chan struct{})
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.got) >= n {
		close(ch)
	} else {
		c.waiters = append(c.waiters, waiter{n, ch})
	}
	return ch
}

// modelStall is how long a stream may go without an event while the
// model still expects some before the test calls it stuck.
const modelStall = 20 * time.Second

// await waits until the consumer holds n events or its stream ends. It
// reports false if the stream stalls short of n for modelStall.
func (c *consumer) await(n int) bool {
	reached := c.reach(n)
	for {
		had := c.count()
		select {
		case <-reached:
			return true
		case <-c.done:
			return true
		case <-time.After(modelStall):
			if c.count() == had {
				return false
			}
		}
	}
}

func (c *consumer) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func (c *consumer) events() []subscription.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

func (c *consumer) String() string { return fmt.Sprintf("subscriber %d (%s): %s", c.id, c.kind, &c.x) }

// lastCursor returns the cursor of the last event with one.
func lastCursor(evs []subscription.Event) (txlog.Cursor, bool) {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].HasCursor() {
			return evs[i].Cursor, true
		}
	}
	return txlog.Cursor{}, false
}

// matchEvent returns "" when got is the expected event, else what differs.
func matchEvent(got subscription.Event, want xEvent) string {
	var g any
	if err := json.Unmarshal(got.JSON, &g); err != nil {
		return fmt.Sprintf("invalid JSON %q: %v", got.JSON, err)
	}
	if got.Type == want.typ && got.Txn == want.txn && got.Cursor == want.cursor && got.Action == want.action &&
		reflect.DeepEqual(g, want.json) {
		return ""
	}
	return fmt.Sprintf("got  %s %d %q cursor %d.%d.%d %s\n\twant %s",
		got.Type, got.Txn, got.Action, got.Cursor.Pos.Txn, got.Cursor.Pos.Op, got.Cursor.Seq, got.JSON, want)
}

// firstDiff describes where a stream received so far leaves the model's.
func firstDiff(got []subscription.Event, exp []xEvent) string {
	for i := range min(len(got), len(exp)) {
		if d := matchEvent(got[i], exp[i]); d != "" {
			return fmt.Sprintf("event %d: %s", i, d)
		}
	}
	return fmt.Sprintf("it received %d events, all as the model expects (of %d)", len(got), len(exp))
}

// checkStream checks what any stream must keep, whatever the model says
// (Guarantees 1, 2 and 4, broker package doc): start first; snapshots
// right after it, at the start txn; cursors strictly increasing; every
// later event after the start txn; at most one error, last, naming the
// last cursor.
func checkStream(got []subscription.Event) []string {
	var errs []string
	if len(got) == 0 || got[0].Type != subscription.TypeStart {
		return []string{"the stream does not begin with a start event"}
	}
	start, last := got[0].Txn, got[0].Cursor
	snapshots := true
	for i, e := range got[1:] {
		i++
		switch {
		case e.Type == subscription.TypeSnapshot:
			if !snapshots {
				errs = append(errs, fmt.Sprintf("event %d: a snapshot after a change", i))
			}
			if e.Txn != start {
				errs = append(errs, fmt.Sprintf("event %d: snapshot at txn %d, start %d", i, e.Txn, start))
			}
			if e.HasCursor() {
				if e.Action != subscription.ActionLastPage || last.Log != (txlog.ID{}) {
					errs = append(errs, fmt.Sprintf("event %d: a cursor on a snapshot page that is not the last, or after the start's", i))
				}
				last = e.Cursor
			}
			continue
		case e.Type == subscription.TypeError:
			if i != len(got)-1 {
				errs = append(errs, fmt.Sprintf("event %d: an error event that is not the last", i))
			}
			var ej struct {
				Event struct{ Cursor string }
			}
			_ = json.Unmarshal(e.JSON, &ej)
			want, wantTxn := last.String(), last.Pos.Txn
			if last.Log == (txlog.ID{}) {
				want, wantTxn = "", start // ended within the snapshot: no cursor yet
			}
			if ej.Event.Cursor != want || e.Txn != wantTxn {
				errs = append(errs, fmt.Sprintf("event %d: error at txn %d names cursor %s, the last received was %s (%d.%d.%d)",
					i, e.Txn, ej.Event.Cursor, last, last.Pos.Txn, last.Pos.Op, last.Seq))
			}
			continue
		}
		snapshots = false
		if e.Txn <= start {
			errs = append(errs, fmt.Sprintf("event %d: txn %d not after the start txn %d", i, e.Txn, start))
		}
		if !e.HasCursor() || !cursorAfter(e.Cursor, last) || e.Cursor.Pos.Txn != e.Txn {
			errs = append(errs, fmt.Sprintf("event %d: cursor %d.%d.%d (txn %d) does not follow %d.%d.%d",
				i, e.Cursor.Pos.Txn, e.Cursor.Pos.Op, e.Cursor.Seq, e.Txn, last.Pos.Txn, last.Pos.Op, last.Seq))
		}
		last = e.Cursor
	}
	return errs
}

// ---------------------------------------------------------------------------
// The model run.

type model struct {
	t     *testing.T
	b     *Broker
	r     *rand.Rand
	ctx   context.Context
	logID txlog.ID

	state map[txlog.Ref]mDoc
	head  txlog.Txn
	recs  []mRecord
	subs  []*consumer
	sched map[int][]func(i int)
	ntx   int
	i     int // the transaction about to run

	n struct {
		committed, empty, failed, aborted, ignored, writes, gets int
		catchingUpSamples, maxCatchingUp                         int64
	}
}

var errAbort = errors.New("model: the transaction gives up")

func (m *model) at(i int, f func(i int)) {
	if i < m.ntx {
		m.sched[i] = append(m.sched[i], f)
	}
}

func (m *model) pickRef(prev *txlog.Ref) txlog.Ref {
	if prev != nil && m.r.IntN(3) == 0 {
		return *prev // the same document again
	}
	coll := pick(m.r, "spells", "spells", "spells", "users", "users", "notes")
	return txlog.Ref{Collection: coll, ID: pick(m.r, modelIDs...)}
}

type txView struct {
	m     *model
	view  map[txlog.Ref]map[string]any // nil: deleted in the transaction
	order []txlog.Ref
}

func (v *txView) get(ref txlog.Ref) (map[string]any, bool) {
	if d, ok := v.view[ref]; ok {
		return d, d != nil
	}
	d, ok := v.m.state[ref]
	return d.data, ok
}

func (v *txView) set(ref txlog.Ref, data map[string]any) {
	if _, ok := v.view[ref]; !ok {
		v.order = append(v.order, ref)
	}
	v.view[ref] = data
}

// findRef returns a ref that exists (or not) in the transaction's view.
func (v *txView) findRef(exists bool) (txlog.Ref, bool) {
	r := v.m.r
	colls := modelSchema.Collections
	c0, i0 := r.IntN(len(colls)), r.IntN(len(modelIDs))
	for k := range len(colls) * len(modelIDs) {
		ref := txlog.Ref{Collection: colls[(c0+k/len(modelIDs))%len(colls)], ID: modelIDs[(i0+k)%len(modelIDs)]}
		if _, ok := v.get(ref); ok == exists {
			return ref, true
		}
	}
	return txlog.Ref{}, false
}

func checkWriteErr(err, want error, op string, ref txlog.Ref) string {
	var we *WriteError
	switch {
	case !errors.Is(err, want):
		return fmt.Sprintf("%s %s: got error %v, want %v", op, ref, err, want)
	case !errors.As(err, &we) || we.Op != op || we.Ref != ref:
		return fmt.Sprintf("%s %s: error %v does not name the write", op, ref, err)
	}
	return ""
}

// validOp makes one write the model expects to succeed.
func (m *model) validOp(tx *Tx, v *txView, ref txlog.Ref) string {
	r := m.r
	cur, exists := v.get(ref)
	var op string
	if exists {
		op = pick(r, "update", "update", "update", "update", "replace", "replace", "delete", "delete", "upsert")
	} else {
		op = pick(r, "create", "create", "create", "upsert")
	}
	var err error
	var data map[string]any
	switch op {
	case "create", "replace", "upsert":
		raw := encodeData(r, genData(r, ref.Collection))
		switch op {
		case "create":
			err = tx.Create(ref, raw)
		case "replace":
			err = tx.Replace(ref, raw)
		default:
			err = tx.Upsert(ref, raw)
		}
		data, _ = decodeObject(raw)
	case "update":
		raw := encodeData(r, genPatch(r, ref.Collection))
		err = tx.Update(ref, raw)
		patch, _ := decodeObject(raw)
		data = mergePatch(cur, patch)
	case "delete":
		err = tx.Delete(ref)
	}
	if err != nil {
		return fmt.Sprintf("%s %s: %v", op, ref, err)
	}
	v.set(ref, data)
	m.n.writes++
	return ""
}

// invalidOp makes one write the model expects to be refused, and returns
// the error with the sentinel it should wrap.
func (m *model) invalidOp(tx *Tx, v *txView) (err, want error, problem string) {
	r := m.r
	for {
		switch r.IntN(5) {
		case 0:
			ref, ok := v.findRef(true)
			if !ok {
				continue
			}
			err = tx.Create(ref, []byte(`{"a":1}`))
			return err, ErrExists, checkWriteErr(err, ErrExists, "create", ref)
		case 1:
			ref, ok := v.findRef(false)
			if !ok {
				continue
			}
			op := pick(r, "update", "replace", "delete")
			switch op {
			case "update":
				err = tx.Update(ref, []byte(`{"a":1}`))
			case "replace":
				err = tx.Replace(ref, []byte(`{"a":1}`))
			default:
				err = tx.Delete(ref)
			}
			return err, ErrNotFound, checkWriteErr(err, ErrNotFound, op, ref)
		case 2, 3:
			ref := m.pickRef(nil)
			bad := []byte(pick(r, `[1,2]`, `"fire"`, `{"a":`, `null`, `{"a":1} {}`))
			_, exists := v.get(ref)
			op := pick(r, "upsert", "create")
			if exists {
				op = pick(r, "upsert", "replace", "update")
			}
			switch op {
			case "upsert":
				err = tx.Upsert(ref, bad)
			case "create":
				err = tx.Create(ref, bad)
			case "replace":
				err = tx.Replace(ref, bad)
			default:
				err = tx.Update(ref, bad)
			}
			return err, ErrNotObject, checkWriteErr(err, ErrNotObject, op, ref)
		case 4:
			ref := txlog.Ref{Collection: "ghosts", ID: "1"}
			err = tx.Upsert(ref, []byte(`{}`))
			return err, ErrUnknownCollection, checkWriteErr(err, ErrUnknownCollection, "upsert", ref)
		}
	}
}

// txn runs one random transaction and updates the model if it commits.
func (m *model) txn() {
	r := m.r
	mode := pick(r, "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok",
		"ignore", "ignore", "fail", "fail", "fail", "abort")
	nops := 1 + r.IntN(5)
	v := &txView{m: m, view: map[txlog.Ref]map[string]any{}}
	var problems []string
	var wantErr error
	errProblem := errors.New("model: problem")
	fn := func(tx *Tx) error {
		var prev *txlog.Ref
		for k := range nops {
			ref := m.pickRef(prev)
			prev = &ref
			if p := m.validOp(tx, v, ref); p != "" {
				problems = append(problems, p)
				return errProblem
			}
			if r.IntN(4) == 0 {
				m.n.gets++
				ref := m.pickRef(prev)
				doc, ok := tx.Get(ref)
				want, wok := v.get(ref)
				got, _ := decodeObject(doc.Data)
				if ok != wok || ok && !reflect.DeepEqual(got, want) {
					problems = append(problems, fmt.Sprintf("tx.Get(%s) = %s, %t; want %v, %t", ref, doc.Data, ok, want, wok))
				}
			}
			if mode == "ignore" && k == 0 {
				// A refused write changes nothing; the transaction goes on.
				if _, _, p := m.invalidOp(tx, v); p != "" {
					problems = append(problems, p)
				}
			}
		}
		switch mode {
		case "fail":
			err, want, p := m.invalidOp(tx, v)
			if p != "" {
				problems = append(problems, p)
			}
			wantErr = want
			return err
		case "abort":
			wantErr = errAbort
			return errAbort
		}
		return nil
	}
	txn, err := m.b.Commit(m.ctx, fn)
	if len(problems) > 0 {
		m.t.Fatalf("transaction %d: %s", len(m.recs), strings.Join(problems, "; "))
	}
	if wantErr != nil {
		if !errors.Is(err, wantErr) || txn != 0 {
			m.t.Fatalf("a transaction that fails with %v committed txn %d, %v", wantErr, txn, err)
		}
		if mode == "abort" {
			m.n.aborted++
		} else {
			m.n.failed++
		}
		return
	}
	if err != nil {
		m.t.Fatalf("commit: %v", err)
	}
	if mode == "ignore" {
		m.n.ignored++
	}
	rec := mRecord{txn: txn}
	for _, ref := range v.order {
		after := v.view[ref]
		bd, existed := m.state[ref]
		if !existed && after == nil {
			continue // created and deleted in the transaction
		}
		w := mWrite{ref: ref, after: after, action: "update"}
		switch {
		case !existed:
			w.action = "create"
		case after == nil:
			w.action = "delete"
		}
		if existed {
			w.before, w.beforeTS = bd.data, bd.ts
		}
		rec.writes = append(rec.writes, w)
	}
	if len(rec.writes) == 0 {
		if txn != m.head {
			m.t.Fatalf("a transaction with no net write returned txn %d, head %d", txn, m.head)
		}
		m.n.empty++
		return
	}
	if txn <= m.head {
		m.t.Fatalf("txn %d after %d", txn, m.head)
	}
	for _, w := range rec.writes {
		if w.after == nil {
			delete(m.state, w.ref)
		} else {
			m.state[w.ref] = mDoc{ts: txn, data: w.after}
		}
	}
	m.head = txn
	m.recs = append(m.recs, rec)
	m.n.committed++
}

// checkState compares every document the broker holds with the model.
func (m *model) checkState() {
	for _, coll := range modelSchema.Collections {
		for _, id := range modelIDs {
			ref := txlog.Ref{Collection: coll, ID: id}
			doc, ok := m.b.Get(ref)
			want, wok := m.state[ref]
			got, _ := decodeObject(doc.Data)
			if ok != wok || ok && (doc.TS != want.ts || !reflect.DeepEqual(got, want.data)) {
				m.t.Fatalf("Get(%s) = %d %s, %t; the model has %d %v, %t", ref, doc.TS, doc.Data, ok, want.ts, want.data, wok)
			}
		}
	}
	if h := m.b.Head(); h != m.head {
		m.t.Fatalf("Head() = %d, the model's is %d", h, m.head)
	}
}

func (m *model) randomTarget() mTarget {
	r := m.r
	switch r.IntN(9) {
	case 0, 1:
		var refs []txlog.Ref
		for _, coll := range modelSchema.Collections {
			for _, id := range modelIDs {
				if ref := (txlog.Ref{Collection: coll, ID: id}); m.state[ref].data != nil {
					refs = append(refs, ref)
				}
			}
		}
		if len(refs) > 0 {
			return mTarget{kind: subscription.KindDocument, ref: refs[r.IntN(len(refs))]}
		}
		fallthrough
	case 2:
		return mTarget{kind: subscription.KindCollection, coll: pick(r, modelSchema.Collections...)}
	case 3, 4:
		return mTarget{kind: subscription.KindIndex, index: "spells_by_element",
			terms: []any{pick[any](r, "fire", "water", "earth", nil, 1.0, []any{"fire"}, map[string]any{"k": "fire"})}}
	case 5:
		return mTarget{kind: subscription.KindIndex, index: "spells_by_tag", terms: []any{pick[any](r, "a", "b", "c")}}
	case 6:
		return mTarget{kind: subscription.KindIndex, index: "spells_by_level"}
	case 7:
		return mTarget{kind: subscription.KindIndex, index: "users_by_team_role",
			terms: []any{pick[any](r, "red", "blue", nil), pick[any](r, "admin", "user", nil)}}
	default:
		return mTarget{kind: subscription.KindIndex, index: "users_all"}
	}
}

func (m *model) randomOptions(slow bool) subscription.Options {
	r := m.r
	var o subscription.Options
	if r.IntN(4) != 0 {
		o.Fields = subscription.Fields(1 + r.IntN(31))
	}
	o.Snapshot = r.IntN(2) == 0
	o.SnapshotPageSize = pick(r, 0, 1, 2, 3, 7)
	o.Data = r.IntN(2) == 0
	o.Updates = r.IntN(3) == 0
	switch {
	case slow:
		o.Buffer = 1 + r.IntN(4)
		if r.IntN(3) == 0 {
			o.BufferBytes = 200 + r.IntN(1500)
		}
	case r.IntN(3) == 0:
		o.Buffer = 8 + r.IntN(64)
	}
	if r.IntN(12) == 0 {
		o.Heartbeat = 5 * time.Millisecond
	}
	return o
}

// start subscribes x and starts its consumer.
func (m *model) start(x xSub, kind string, slow bool) *consumer {
	r := m.r
	tgt, err := x.target.target()
	if err != nil {
		m.t.Fatal(err)
	}
	c := &consumer{id: len(m.subs), x: x, kind: kind, done: make(chan struct{}),
		rng: rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))}
	ctx := m.ctx
	if r.IntN(12) == 0 {
		ctx, c.cancel = context.WithCancel(ctx)
	} else if r.IntN(6) == 0 {
		c.quitAfter = 1 + r.IntN(80)
	}
	if slow {
		c.pauseEach, c.pauseMax = 1+r.IntN(8), pick(r, 0, 20, 100)
	}
	c.deliver = r.IntN(2) == 0
	if x.opt.Cursor == "" && x.target.kind == subscription.KindDocument && r.IntN(5) == 0 {
		// A document stream on a missing document fails, as in Fauna.
		missing := txlog.Ref{Collection: "notes", ID: "missing"}
		if _, err := m.b.Subscribe(ctx, subscription.Document(missing), x.opt); !errors.Is(err, ErrNotFound) {
			m.t.Fatalf("Subscribe to a missing document: %v, want ErrNotFound", err)
		}
	}
	c.sub, err = m.b.Subscribe(ctx, tgt, x.opt)
	if err != nil {
		m.t.Fatalf("Subscribe %s: %v", &x, err)
	}
	if c.sub.Start() != x.start {
		m.t.Fatalf("Subscribe %s: start txn %d", &x, c.sub.Start())
	}
	m.subs = append(m.subs, c)
	go c.run()
	switch {
	case c.cancel != nil:
		m.at(m.i+1+r.IntN(m.ntx/4+1), func(int) { m.cancelAndResume(c) })
	case c.quitAfter > 0:
		m.at(m.i+1+r.IntN(m.ntx/4+1), func(i int) { m.resumeQuitter(c, i) })
	}
	return c
}

// fresh starts a subscriber at the current head.
func (m *model) fresh(kind string) {
	slow := m.r.IntN(3) == 0
	x := xSub{target: m.randomTarget(), opt: m.randomOptions(slow), start: m.head,
		cursor: txlog.Cursor{Log: m.logID, Pos: txlog.AfterTxn(m.head)}, snap: maps.Clone(m.state)}
	m.start(x, kind, slow)
}

// restart starts again, with a snapshot, a subscriber that stopped before
// it had a cursor: its target at the current head.
func (m *model) restart(c *consumer) {
	if c.x.target.kind == subscription.KindDocument {
		if _, ok := m.state[c.x.target.ref]; !ok {
			return // a document stream on a missing document fails
		}
	}
	slow := m.r.IntN(3) == 0
	x := xSub{target: c.x.target, opt: m.randomOptions(slow), start: m.head,
		cursor: txlog.Cursor{Log: m.logID, Pos: txlog.AfterTxn(m.head)}, snap: maps.Clone(m.state)}
	x.opt.Snapshot = true
	m.start(x, "restart", slow)
}

// resumeFrom starts a subscriber on target that resumes after cursor c.
func (m *model) resumeFrom(target mTarget, c txlog.Cursor, kind string) {
	slow := m.r.IntN(3) == 0
	x := xSub{target: target, opt: m.randomOptions(slow), start: c.Pos.Txn, cursor: c, resume: true}
	if c.Pos.Op != ^uint32(0) && x.start > 0 {
		x.start-- // the cursor stands inside its transaction
	}
	x.opt.Cursor = c.String()
	m.start(x, kind, slow)
}

// twin resumes from the cursor of an event that another subscriber (a
// twin on the same target) has received.
func (m *model) twin() {
	if len(m.subs) == 0 {
		return
	}
	c := m.subs[m.r.IntN(len(m.subs))]
	exp := c.x.expect(m.logID, m.recs)
	limit := len(exp)
	if c.quitAfter > 0 {
		limit = min(limit, c.quitAfter)
	}
	var idx []int
	for i, e := range exp[:limit] {
		if e.cursor.Log != (txlog.ID{}) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		// It stops within its snapshot, which offers no cursor before its
		// last page (guarantee 2): nothing to twin.
		return
	}
	if c.cancel != nil {
		idx = idx[:1] // it may stop anywhere: take its first cursor
	}
	i := idx[m.r.IntN(len(idx))]
	if !c.await(i + 1) {
		m.t.Fatalf("%s is stuck before event %d; %s", c, i, firstDiff(c.events(), exp))
	}
	got := c.events()
	if len(got) <= i {
		if c.cancelled {
			return // cancelled before it got there: nothing to twin
		}
		m.t.Fatalf("%s ended after %d events; the model expects %d so far", c, len(got), limit)
	}
	m.resumeFrom(c.x.target, got[i].Cursor, "twin")
}

// resumeQuitter resumes, from its last cursor, a subscriber that broke out
// of its loop after quitAfter events, once the model says it has.
func (m *model) resumeQuitter(c *consumer, i int) {
	if len(c.x.expect(m.logID, m.recs)) < c.quitAfter {
		m.at(i+1+m.r.IntN(m.ntx/8+1), func(i int) { m.resumeQuitter(c, i) })
		return
	}
	if !c.await(c.quitAfter) {
		m.t.Fatalf("%s is stuck before its %d events; %s", c, c.quitAfter, firstDiff(c.events(), c.x.expect(m.logID, m.recs)))
	}
	<-c.done
	cur, ok := lastCursor(c.events())
	if !ok {
		cur = c.sub.StartCursor() // it stopped before its first event
	}
	c.resumed = true
	if cur.Log == (txlog.ID{}) {
		// It stopped within its snapshot, which offers no cursor yet
		// (guarantee 2): it starts again.
		m.restart(c)
		return
	}
	m.resumeFrom(c.x.target, cur, "requit")
}

// cancelAndResume cancels a subscriber's context, wherever it is, and
// resumes from the last cursor it received.
func (m *model) cancelAndResume(c *consumer) {
	c.cancel()
	c.cancelled = true
	select {
	case <-c.done:
	case <-time.After(modelStall):
		m.t.Fatalf("%s: Events did not end %v after its context was cancelled", c, modelStall)
	}
	cur, ok := lastCursor(c.events())
	if !ok {
		cur = c.sub.StartCursor() // cancelled before its first event
	}
	c.resumed = true
	if cur.Log == (txlog.ID{}) {
		// It stopped within its snapshot, which offers no cursor yet
		// (guarantee 2): it starts again.
		m.restart(c)
		return
	}
	m.resumeFrom(c.x.target, cur, "recancel")
}

func (m *model) observe() {
	st := m.b.Stats()
	if st.CatchingUp > 0 {
		m.n.catchingUpSamples++
	}
	m.n.maxCatchingUp = max(m.n.maxCatchingUp, st.CatchingUp)
	for _, c := range m.subs {
		ov := c.sub.sub.q.Overflowed()
		if ov && !c.wasOverflowed {
			c.overflows++
		}
		c.wasOverflowed = ov
	}
}

// TestModel is the model-based randomized test of the broker's delivery:
// Guarantees 1 to 5, 7 and 9 (broker package doc), checked event by event
// against a reference model.
//
// A seeded run commits thousands of random transactions (create, replace,
// update with merge patches that remove fields and merge nested objects,
// delete, upsert; up to five writes, often to the same document twice;
// some refused mid-transaction or given up, which must publish nothing)
// over three collections and five indexes (one and two terms, a nested
// term, array-valued terms and values, term-less indexes with and without
// values). Meanwhile subscribers of every kind (documents that get deleted
// and created again, collections, index sets, term-less indexes; with and
// without snapshot; random fields, Data and Updates) read Events in their
// own goroutines: some from the start, some joining late, some resuming
// from the cursor of an event a twin received, some that break out or
// whose context is cancelled and resume from their last cursor, and some
// slow (a queue of 1 to 4 events, or a few hundred bytes, and a consumer
// that pauses) so that their queues overflow and they catch up from the
// log. A reference model written here (a map of documents, set membership
// recomputed by brute force from index/doc.go's rules with encoding/json)
// predicts each subscriber's exact sequence: type, action, txn, cursor and
// the JSON of every event, compared as parsed JSON. Finally the broker is
// closed and every live subscriber must end with shutting_down naming the
// cursor of the last event it received.
//
// Replay a run with the seed it logs, and run larger:
//
//	go test ./broker -run '^TestModel$' -args -model.seed=N
//	TIDINGS_MODEL_SEED=N go test ./broker -run '^TestModel$'
//	go test ./broker -run '^TestModel$' -timeout 1h -args -model.txns=100000 -model.subs=150
func TestModel(t *testing.T) {
	seed := modelSeed(t)
	ntx := *flagModelTxns
	if ntx == 0 {
		ntx = 3000
		if testing.Short() {
			ntx = 600
		}
	}
	nsubs := *flagModelSubs
	if nsubs == 0 {
		nsubs = 60
	}
	// Retain everything: this test is about delivery, not retention.
	runModel(t, seed, txlog.NewMemory(txlog.MemoryOptions{MaxRecords: ntx + 1, MaxBytes: 1 << 40}), ntx, nsubs)
}

// TestModelFileLog is TestModel on the file log, where commits are staged,
// fsynced outside the commit lock, and delivered once durable, and where
// the broker writes checkpoints as it goes.
func TestModelFileLog(t *testing.T) {
	seed := modelSeed(t)
	l, err := txlog.OpenFile(t.TempDir(), txlog.FileOptions{SegmentSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	runModel(t, seed, l, 800, 40)
}

func runModel(t *testing.T, seed uint64, lg txlog.Log, ntx, nsubs int) {
	b, err := New(Options{Log: lg, Schema: modelSchema, Logger: quietLogger, Checkpoint: CheckpointOptions{Every: 64 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	m := &model{t: t, b: b, r: rand.New(rand.NewPCG(seed, seed^0x5eed)), ctx: context.Background(),
		logID: b.LogID(), state: map[txlog.Ref]mDoc{}, sched: map[int][]func(int){}, ntx: ntx}
	t.Cleanup(func() {
		// On failure, end every consumer so that nothing leaks.
		b.Close()
		for _, c := range m.subs {
			if c.cancel != nil {
				c.cancel()
			}
			c.sub.Close()
			<-c.done
		}
	})

	// Cursors that cannot be resumed.
	set, _ := subscription.Match("users_all")
	other := txlog.Cursor{Log: txlog.NewID(), Pos: txlog.AfterTxn(0)}
	if _, err := b.Subscribe(m.ctx, set, subscription.Options{Cursor: other.String()}); !errors.Is(err, ErrHistoryUnavailable) {
		t.Fatalf("a cursor of another log: %v, want ErrHistoryUnavailable", err)
	}
	if _, err := b.Subscribe(m.ctx, set, subscription.Options{Cursor: "garbage"}); !errors.Is(err, ErrInvalidCursor) {
		t.Fatalf("a garbage cursor: %v, want ErrInvalidCursor", err)
	}

	for range nsubs / 3 {
		m.fresh("fresh")
	}
	for range nsubs - nsubs/3 {
		m.at(1+m.r.IntN(max(1, ntx-1)), func(int) { m.fresh("late") })
	}
	for range nsubs / 4 {
		m.at(1+m.r.IntN(max(1, ntx-1)), func(int) { m.twin() })
	}
	began := time.Now()
	for i := range ntx {
		m.i = i
		for _, f := range m.sched[i] {
			f(i)
		}
		delete(m.sched, i)
		m.txn()
		m.observe()
		if i%500 == 0 {
			m.checkState()
		}
	}
	m.checkState()
	committing := time.Since(began)

	// What each subscriber must have received by now.
	stuck := false
	for _, c := range m.subs {
		c.exp = c.x.expect(m.logID, m.recs)
		want := len(c.exp)
		if c.quitAfter > 0 {
			want = min(want, c.quitAfter)
		}
		if c.cancelled || stuck {
			continue
		}
		if !c.await(want) {
			stuck = true
			t.Errorf("%s: stuck with %d of the %d events the model expects", c, c.count(), want)
		}
	}
	draining := time.Since(began) - committing
	st := b.Stats()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, c := range m.subs {
		select {
		case <-c.done:
		case <-time.After(modelStall):
			t.Errorf("%s: Events did not end %v after Close", c, modelStall)
			c.sub.Close()
			<-c.done
		}
	}

	// Compare every stream with the model.
	var checked, statuses, overflows, slowOverflowed int64
	kinds := map[string]int{}
	for _, c := range m.subs {
		kinds[c.kind]++
		kinds[c.x.target.kindName()]++
		got := c.events()
		c.mu.Lock()
		status, quit := c.status, c.quit
		c.mu.Unlock()
		overflows += int64(c.overflows)
		if c.pauseEach > 0 && c.overflows > 0 {
			slowOverflowed++
		}
		statuses += int64(len(status))
		for i := 1; i < len(status); i++ {
			if status[i].Txn < status[i-1].Txn || status[i].Txn > m.head {
				t.Errorf("%s: status txn %d after %d (head %d)", c, status[i].Txn, status[i-1].Txn, m.head)
			}
		}
		var errs []string
		if len(got) > 0 || !c.cancelled { // a cancel may find it before its start
			for _, e := range checkStream(got) {
				errs = append(errs, "invariant: "+e)
			}
		}
		want := c.exp
		switch {
		case c.cancelled:
			// It stops wherever the cancel finds it: the cancel takes
			// effect asynchronously, so a Close just before it may still
			// end the stream with shutting_down.
			if n := len(got); n > 0 && got[n-1].Type == subscription.TypeError && got[n-1].Action == subscription.CodeShuttingDown {
				got = got[:n-1]
			}
			want = want[:min(len(want), len(got))]
		case quit:
			// Its last event may be the shutting_down that ends the stream.
			cur, _ := lastCursor(got[:min(len(got), len(want))])
			want = append(slices.Clip(want), xEvent{typ: subscription.TypeError, txn: cur.Pos.Txn, action: subscription.CodeShuttingDown})
			want = want[:min(len(want), c.quitAfter)]
		default:
			cur, _ := lastCursor(got[:min(len(got), len(want))])
			want = append(slices.Clip(want), xEvent{typ: subscription.TypeError, txn: cur.Pos.Txn, action: subscription.CodeShuttingDown})
		}
		for i := 0; i < len(got) || i < len(want); i++ {
			switch {
			case i >= len(got):
				errs = append(errs, fmt.Sprintf("event %d missing (%d received); want %s", i, len(got), want[i]))
			case i >= len(want):
				errs = append(errs, fmt.Sprintf("event %d unexpected: %s %s", i, got[i].Type, got[i].JSON))
			case want[i].typ == subscription.TypeError:
				if got[i].Type != subscription.TypeError || got[i].Action != subscription.CodeShuttingDown || got[i].Txn != want[i].txn {
					errs = append(errs, fmt.Sprintf("event %d: got %s %s, want shutting_down at txn %d", i, got[i].Type, got[i].JSON, want[i].txn))
				}
			default:
				if d := matchEvent(got[i], want[i]); d != "" {
					errs = append(errs, fmt.Sprintf("event %d: %s", i, d))
				}
			}
			if len(errs) >= 6 {
				break
			}
		}
		checked += int64(len(got))
		if len(errs) > 0 {
			t.Errorf("%s: %d events received, %d expected:\n\t%s", c, len(got), len(want), strings.Join(errs, "\n\t"))
		}
	}

	end := b.Stats()
	var delivered int64
	for _, c := range m.subs {
		delivered += int64(len(c.got) + len(c.status) + c.unread)
	}
	if end.Subscriptions != 0 || end.BytesBuffered != 0 || end.CatchingUp != 0 ||
		end.Commits != int64(m.n.committed) || end.EventsDelivered != delivered {
		t.Errorf("Stats after Close = %+v; want no subscription, nothing buffered or catching up, %d commits, %d events delivered",
			end, m.n.committed, delivered)
	}
	t.Logf("%d transactions in %v (%d committed, %d with no net write, %d refused, %d given up, %d with a refused write ignored; %d writes, %d tx.Get checked)",
		ntx, committing.Round(time.Millisecond), m.n.committed, m.n.empty, m.n.failed, m.n.aborted, m.n.ignored, m.n.writes, m.n.gets)
	t.Logf("%d subscribers %v; %d events checked against the model (and %d status), drained in %v",
		len(m.subs), kinds, checked, statuses, draining.Round(time.Millisecond))
	t.Logf("queue overflows seen: %d (%d slow subscribers overflowed); Stats.CatchingUp > 0 after %d of %d commits (max %d); before Close: %+v",
		overflows, slowOverflowed, m.n.catchingUpSamples, ntx, m.n.maxCatchingUp, st)
}

// TestLookalikeSetsGetTheirOwnEvents: the sets Match(x, "y") and the
// term-less index named `x, "y"` print alike, but a write that enters both
// must give each its own events (here: their own terms).
func TestLookalikeSetsGetTheirOwnEvents(t *testing.T) {
	b, err := New(Options{Schema: index.Schema{
		Collections: []string{"c"},
		Indexes: []index.Definition{
			{Name: "x", Collection: "c", Terms: []string{"t"}},
			{Name: `x, "y"`, Collection: "c"},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	opt := subscription.Options{Fields: subscription.FieldAction | subscription.FieldIndex}
	withTerm := must(b.Subscribe(ctx, must(subscription.Match("x", "y")), opt))
	defer withTerm.Close()
	termless := must(b.Subscribe(ctx, must(subscription.Match(`x, "y"`)), opt))
	defer termless.Close()
	if _, err := b.Commit(ctx, func(tx *Tx) error {
		return tx.Create(txlog.Ref{Collection: "c", ID: "1"}, []byte(`{"t":"y"}`))
	}); err != nil {
		t.Fatal(err)
	}
	for s, want := range map[*Subscription]string{
		withTerm: `{"action":"add","index":{"terms":["y"],"values":[]}}`,
		termless: `{"action":"add","index":{"terms":[],"values":[]}}`,
	} {
		for e := range s.Events() {
			if e.Type != subscription.TypeSet {
				continue
			}
			var got struct{ Event json.RawMessage }
			if err := json.Unmarshal(e.JSON, &got); err != nil || string(got.Event) != want {
				t.Errorf("set event %s; want the event %s", e.JSON, want)
			}
			break
		}
	}
}
