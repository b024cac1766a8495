package jsondoc

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzMergePatchDiff checks MergePatch and DiffData on arbitrary input.
// Every result is checked to be what CompactObject returns unchanged: in
// UTF-8, with no raw U+2028, U+2029 or U+0085 (keys re-encoded included).
//
// On any bytes, neither panics. When a and p are JSON objects (as
// CompactObject accepts and compacts them, which is how the broker feeds
// them), with r = MergePatch(a, p):
//
//  1. r is a compact JSON object, and it equals what a model of RFC 7396
//     over encoding/json's decoded values gives (null removes, objects
//     merge member by member, anything else, arrays included, replaces;
//     of duplicate keys the last counts).
//  2. DiffData(a, a) is {}.
//  3. d = DiffData(a, r) is a compact JSON object, and MergePatch(a, d)
//     is r again, as a JSON value (member order and duplicates aside).
//     This holds with arrays and nulls anywhere: r holds a null only where
//     a held it and p left it alone, so the diff never needs to set one.
//  4. For a target b = p that holds no null member at any depth (a null
//     inside an array is fine: arrays are replaced whole), MergePatch(a,
//     DiffData(a, b)) is b. With a null member it cannot hold: a merge
//     patch can remove a member but never set one to null, which is RFC
//     7396's own limit.
//
// "Is" means the same value as encoding/json decodes it, numbers compared
// by their text: DiffData compares and copies values as text, so 1 and 1.0
// differ, and the diff carries the new spelling.
func FuzzMergePatchDiff(f *testing.F) {
	seeds := [][2]string{
		{`{"a":"b"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"a":null}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`},
		{`{"e":null}`, `{"a":1}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`},
		{`{"a":1,"a":{"x":1}}`, `{"a":{"y":null}}`},
		{`{"k":{"x":1,"x":2}}`, `{"k":{}}`},
		{`{"k":{"n":null,"m":1}}`, `{"k":{"m":2}}`},
		{`{"k":null}`, `{"k":{"z":[null]}}`},
		{`{"\u0041":1,"A":2}`, `{"A":null}`},
		{"{\"\xff\":1,\"\xfe\":2}", `{"x":1}`},
		{"{\"a\u2028\":\"\u0085\"}", "{\"a\u2028\":{\"\u2029\":\"\u0085\"},\"b\":null}"},
		{`{"a\u2028":{"\u0085":1}}`, "{\"a\u2028\":{\"\u0085\":null,\"\u2029\":[\"\u2028\"]}}"},
		{`{"a":"\ud83d\ude00"}`, `{"a":"\ud800"}`},
		{`{"n":1}`, `{"n":1.0,"m":-0,"o":1e400}`},
		{` { "a" : [ 1 , { "b" : null } ] } `, `{"a":{"b":{"c":{}}}}`},
		{`{"a":{"b":{"c":{"d":{"e":1}}}}}`, `{"a":{"b":{"c":{"d":null}}}}`},
		{`[]`, `{}`},
		{`{}`, `null`},
		{`{"a":`, `{}`},
		{``, ``},
	}
	for _, s := range seeds {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, a, p []byte) {
		// Never a panic, whatever the bytes.
		MergePatch(a, p)
		MergePatch(nil, p)
		DiffData(a, p)

		ca, err := CompactObject(a)
		if err != nil {
			return
		}
		cp, err := CompactObject(p)
		if err != nil {
			return
		}
		// 1. A compact object, as the model says.
		r, err := MergePatch(ca, cp)
		if err != nil {
			t.Fatalf("MergePatch(%s, %s): %v", ca, cp, err)
		}
		checkCompactObject(t, r)
		if want := mergeModel(decodeJSON(t, ca), decodeJSON(t, cp)); !reflect.DeepEqual(decodeJSON(t, r), want) {
			t.Fatalf("MergePatch(%s, %s) = %s, want %v", ca, cp, r, want)
		}
		// 2. No change, no diff.
		if d, err := DiffData(ca, ca); err != nil || string(d) != "{}" {
			t.Fatalf("DiffData(%s, itself) = %s, %v", ca, d, err)
		}
		// 3. The diff to a merge result rebuilds it.
		checkDiffRebuilds(t, ca, r)
		// 4. The diff to any target without null members rebuilds it.
		if !hasNullMember(decodeJSON(t, cp)) {
			checkDiffRebuilds(t, ca, cp)
		}
	})
}

func checkDiffRebuilds(t *testing.T, from, to []byte) {
	t.Helper()
	d, err := DiffData(from, to)
	if err != nil {
		t.Fatalf("DiffData(%s, %s): %v", from, to, err)
	}
	checkCompactObject(t, d)
	back, err := MergePatch(from, d)
	if err != nil {
		t.Fatalf("MergePatch(%s, %s): %v", from, d, err)
	}
	if !sameJSON(t, back, to) {
		t.Fatalf("MergePatch(%s, DiffData(%s, %s) = %s) = %s", from, from, to, d, back)
	}
}

func checkCompactObject(t *testing.T, b []byte) {
	t.Helper()
	c, err := CompactObject(b)
	if err != nil || !bytes.Equal(c, b) || bytes.ContainsAny(b, "\u2028\u2029\u0085") {
		t.Fatalf("%s is not a compact JSON object (%v)", b, err)
	}
}

// mergeModel is RFC 7396's MergePatch over decoded JSON values.
func mergeModel(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	out := make(map[string]any, len(tm))
	for k, v := range tm {
		out[k] = v
	}
	for k, v := range pm {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = mergeModel(out[k], v)
	}
	return out
}

// hasNullMember reports whether an object, at any depth outside arrays,
// has a member whose value is null.
func hasNullMember(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for _, x := range m {
		if x == nil || hasNullMember(x) {
			return true
		}
	}
	return false
}

// FuzzAppendString: AppendString's output is valid JSON on one line (by
// Unicode's rules too: no raw U+2028, U+2029 or U+0085) that encoding/json
// decodes to the same string as it decodes json.Marshal's encoding to, and
// it is byte for byte encoding/json's own encoding without HTML escaping
// and with U+0085 escaped.
func FuzzAppendString(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendString(nil, s)
		if !json.Valid(got) || !utf8.Valid(got) || bytes.ContainsAny(got, "\r\n\u2028\u2029\u0085") {
			t.Fatalf("AppendString(%q) = %q", s, got)
		}
		var back, want string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		m, _ := json.Marshal(s)
		if err := json.Unmarshal(m, &want); err != nil {
			t.Fatal(err)
		}
		if back != want {
			t.Fatalf("AppendString(%q) reads back as %q, json.Marshal's encoding as %q", s, back, want)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("AppendString(%q) reads back as %q", s, back)
		}
		if enc := marshalNoHTML(t, s); !bytes.Equal(got, enc) {
			t.Fatalf("AppendString(%q) = %s, encoding/json gives %s", s, got, enc)
		}
	})
}
