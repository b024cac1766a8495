package jsondoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func TestDiffData(t *testing.T) {
	tests := []struct {
		name       string
		prev, next string // "" stands for nil
		want       string
	}{
		{"equal", `{"a":1,"b":"x"}`, `{"a":1,"b":"x"}`, `{}`},
		{"both nil", "", "", `{}`},
		{"changed", `{"a":1,"b":2}`, `{"a":1,"b":3}`, `{"b":3}`},
		{"added", `{"a":1}`, `{"a":1,"c":true}`, `{"c":true}`},
		{"removed as null", `{"a":1,"b":2}`, `{"a":1}`, `{"b":null}`},
		{"next order then removed in prev order", `{"x":1,"a":1,"y":2}`, `{"b":2,"a":2}`, `{"b":2,"a":2,"x":null,"y":null}`},
		{"nested object field by field", `{"s":{"level":1,"mana":2,"keep":0}}`, `{"s":{"level":2,"mana":2,"new":1}}`, `{"s":{"level":2,"new":1,"keep":null}}`},
		{"deeply nested", `{"a":{"b":{"c":1,"d":2}}}`, `{"a":{"b":{"c":1,"d":3}}}`, `{"a":{"b":{"d":3}}}`},
		{"nested equal apart from key order", `{"s":{"a":1,"b":2}}`, `{"s":{"b":2,"a":1}}`, `{}`},
		{"array replaced whole", `{"t":[1,2,3]}`, `{"t":[1,2,4]}`, `{"t":[1,2,4]}`},
		{"array of objects replaced whole", `{"t":[{"a":1}]}`, `{"t":[{"a":2}]}`, `{"t":[{"a":2}]}`},
		{"object replaces scalar", `{"a":1}`, `{"a":{"b":1}}`, `{"a":{"b":1}}`},
		{"scalar replaces object", `{"a":{"b":1}}`, `{"a":1}`, `{"a":1}`},
		{"null value set", `{"a":1}`, `{"a":null}`, `{"a":null}`},
		{"number spelling differs", `{"a":1}`, `{"a":1.0}`, `{"a":1.0}`},
		{"create: prev nil", "", `{"a":1,"b":{"c":2}}`, `{"a":1,"b":{"c":2}}`},
		{"delete: next nil", `{"a":1,"b":2}`, "", `{"a":null,"b":null}`},
		{"escaped key", `{"\u0041":1}`, `{"A":2}`, `{"A":2}`},
		{"duplicate key: last counts", `{"a":1,"a":2}`, `{"a":2}`, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DiffData(nilIfEmpty(tt.prev), nilIfEmpty(tt.next))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("DiffData(%s, %s) = %s, want %s", tt.prev, tt.next, got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("invalid JSON %s", got)
			}
		})
	}
}

func TestDiffDataInvalid(t *testing.T) {
	for _, tt := range []struct{ prev, next string }{
		{`[1]`, `{}`},
		{`{}`, `"x"`},
		{`{"a":`, `{}`},
		{`{"a":{"b":}}`, `{"a":{"b":1}}`},
	} {
		if got, err := DiffData([]byte(tt.prev), []byte(tt.next)); err == nil {
			t.Errorf("DiffData(%s, %s) = %s, want an error", tt.prev, tt.next, got)
		}
	}
}

// TestMergePatch follows the examples of RFC 7396, appendix A, and the
// one in its section 3, with the RFC's rule that the target of a merge is
// replaced when it is not an object (here the target is always an object
// at the top, so the cases with a non-object top are left out).
func TestMergePatch(t *testing.T) {
	tests := []struct {
		name        string
		data, patch string // data "" stands for nil
		want        string
	}{
		{"A.1 change", `{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{"A.2 add", `{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{"A.3 null removes", `{"a":"b"}`, `{"a":null}`, `{}`},
		{"A.4 null removes one", `{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{"A.5 array replaced", `{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{"A.6 array replaces", `{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{"A.7 nested merge", `{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{"A.8 array of objects replaced", `{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{"A.11 empty patch", `{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{"A.13 nested null dropped in new object", `{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		{"section 3 example",
			`{"title":"Goodbye!","author":{"givenName":"John","familyName":"Doe"},"tags":["example","sample"],"content":"This will be unchanged"}`,
			`{"title":"Hello!","phoneNumber":"+01-123-456-7890","author":{"familyName":null},"tags":["example"]}`,
			`{"title":"Hello!","author":{"givenName":"John"},"tags":["example"],"content":"This will be unchanged","phoneNumber":"+01-123-456-7890"}`},
		{"null removes a missing field", `{"a":1}`, `{"b":null}`, `{"a":1}`},
		{"object replaces scalar, nulls dropped", `{"a":1}`, `{"a":{"b":null,"c":2}}`, `{"a":{"c":2}}`},
		{"object replaces array", `{"a":[1]}`, `{"a":{"b":1}}`, `{"a":{"b":1}}`},
		{"arrays are never merged", `{"a":[1,2,3]}`, `{"a":[4]}`, `{"a":[4]}`},
		{"array holding null kept whole", `{}`, `{"a":[null]}`, `{"a":[null]}`},
		{"empty object patch merges nothing", `{"a":{"b":1}}`, `{"a":{}}`, `{"a":{"b":1}}`},
		{"data nil", "", `{"a":1,"b":null}`, `{"a":1}`},
		{"duplicate keys: last counts", `{"a":1,"b":2,"a":3}`, `{"c":4}`, `{"a":3,"b":2,"c":4}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MergePatch(nilIfEmpty(tt.data), []byte(tt.patch))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("MergePatch(%s, %s) = %s, want %s", tt.data, tt.patch, got, tt.want)
			}
		})
	}
}

func TestMergePatchInvalid(t *testing.T) {
	for _, tt := range []struct{ data, patch string }{
		{`{}`, `[1]`},
		{`{}`, `null`},
		{`[1]`, `{}`},
		{`{}`, `{"a":`},
		{`{"a":{"b":1}}`, `{"a":{"b":}}`},
	} {
		if got, err := MergePatch([]byte(tt.data), []byte(tt.patch)); err == nil {
			t.Errorf("MergePatch(%s, %s) = %s, want an error", tt.data, tt.patch, got)
		}
	}
}

// TestMergePatchDoesNotModifyInputs: the broker keeps data shared with
// snapshots and the log, so MergePatch must not write into it.
func TestMergePatchDoesNotModifyInputs(t *testing.T) {
	data := []byte(`{"a":{"b":1,"c":2},"d":[1]}`)
	patch := []byte(`{"a":{"b":null},"d":null,"e":{"f":null}}`)
	d0, p0 := bytes.Clone(data), bytes.Clone(patch)
	got, err := MergePatch(data, patch)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"a":{"c":2},"e":{}}` {
		t.Errorf("got %s", got)
	}
	if !bytes.Equal(data, d0) || !bytes.Equal(patch, p0) {
		t.Errorf("inputs modified: %s %s", data, patch)
	}
}

func TestCompactObject(t *testing.T) {
	got, err := CompactObject([]byte(" {\n\t\"a\" : [ 1 , 2 ],\r\n \"b\":{ } }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"a":[1,2],"b":{}}` {
		t.Errorf("got %s", got)
	}
	for _, in := range []string{``, ` `, `null`, `1`, `"x"`, `[]`, `[{}]`, `true`, `{`, `{"a":}`, `{} {}`, `{}x`, `{"a":1,}`, "{\"a\":\"\x01\"}"} {
		got, err := CompactObject([]byte(in))
		if !errors.Is(err, ErrNotObject) {
			t.Errorf("CompactObject(%q) = %s, %v; want ErrNotObject", in, got, err)
		}
	}
}

// TestDiffThenMergePatch: applying DiffData(prev, next) to prev as a merge
// patch gives next back, for documents without null values.
func TestDiffThenMergePatch(t *testing.T) {
	docs := []string{
		`{}`,
		`{"a":1}`,
		`{"a":2,"b":[1,2]}`,
		`{"a":{"b":1,"c":{"d":[1]}}}`,
		`{"a":{"c":{"d":[2],"e":"x"}},"z":true}`,
		`{"b":[null],"a":{}}`,
	}
	for _, p := range docs {
		for _, n := range docs {
			d, err := DiffData([]byte(p), []byte(n))
			if err != nil {
				t.Fatal(err)
			}
			got, err := MergePatch([]byte(p), d)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, got, []byte(n)) {
				t.Errorf("MergePatch(%s, DiffData(%s, %s) = %s) = %s", p, p, n, d, got)
			}
		}
	}
}

func nilIfEmpty(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
