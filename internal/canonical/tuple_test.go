package canonical

import (
	"bytes"
	"testing"
)

func mustParse(t testing.TB, text string) string {
	t.Helper()
	enc, err := Parse([]byte(text))
	if err != nil {
		t.Fatalf("Parse(%s): %v", text, err)
	}
	return enc
}

func TestTuple(t *testing.T) {
	a, b := mustParse(t, `"fire"`), mustParse(t, `[1,{"x":null}]`)
	tu := TupleOf(a, b)
	if tu.Len() != 2 {
		t.Fatalf("Len = %d, want 2", tu.Len())
	}
	if vs := tu.Values(); len(vs) != 2 || vs[0] != a || vs[1] != b {
		t.Errorf("Values = %q, want [%q %q]", vs, a, b)
	}
	if got := tu.String(); got != `["fire",[1,{"x":null}]]` {
		t.Errorf("String = %s", got)
	}
	if got, err := tu.MarshalJSON(); err != nil || string(got) != tu.String() {
		t.Errorf("MarshalJSON = %s, %v", got, err)
	}
	if Tuple("").String() != "[]" || Tuple("").Len() != 0 {
		t.Error("the zero Tuple should be empty")
	}
	// A proper prefix sorts first; then element by element.
	if TupleOf(a).Compare(tu) >= 0 || TupleOf(b).Compare(TupleOf(a, b)) <= 0 {
		t.Error("tuples do not compare element by element")
	}
}

func TestAppendJSONRoundTrip(t *testing.T) {
	for _, text := range []string{`null`, `true`, `false`, `0`, `-1.5e-7`, `12345678901234567891`, `1e21`,
		`"a\u0000\"\\\n\u001f é"`, "\"\u2028\u2029\u0085\"", `{"\u2028":"\u0085"}`, `[]`, `[1,[2,[]]]`, `{}`, `{"b":1,"a":{"c":[null]}}`} {
		enc := mustParse(t, text)
		back := AppendJSON(nil, enc)
		if again := mustParse(t, string(back)); again != enc {
			t.Errorf("%s: canonical text %s encodes to %q, not %q", text, back, again, enc)
		}
		if bytes.ContainsAny(back, "\u2028\u2029\u0085") {
			t.Errorf("%s: canonical text %q has a raw line separator", text, back)
		}
		if Skip(enc, 0) != len(enc) {
			t.Errorf("%s: Skip = %d, want %d", text, Skip(enc, 0), len(enc))
		}
	}
}

func TestTupleLen(t *testing.T) {
	var tu string
	for i, text := range tupleSeeds {
		tu += mustParse(t, text)
		if n := TupleLen(tu); n != i+1 {
			t.Fatalf("TupleLen of the first %d values = %d", i+1, n)
		}
	}
	for _, bad := range []string{"\x05", "\x32\x80\x00\x00\x01\x00", "\x32\x80\x00\x00\x01a\x00", "\x40ab", "\x40a\x00\x02",
		"\x50\x10", "\x60\x10\x00", "\x60\x01a\x00\x01", "\x30\x7f\xff\xff\xfe\xce"} {
		if n := TupleLen(bad); n != -1 {
			t.Errorf("TupleLen(%q) = %d, want -1", bad, n)
		}
	}
}

var tupleSeeds = []string{`null`, `true`, `false`, `0`, `-1.5e-7`, `12345678901234567891`, `1e21`,
	`"a\u0000\"\\\n\u001f é"`, `[]`, `[1,[2,[]]]`, `{}`, `{"b":1,"a":{"c":[null]}}`}

// FuzzTupleLen: whatever TupleLen accepts, the decoding functions, which
// trust their input, decode without a panic.
func FuzzTupleLen(f *testing.F) {
	for _, text := range tupleSeeds {
		enc, err := Parse([]byte(text))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
		f.Add(enc[:len(enc)-1])
	}
	f.Fuzz(func(t *testing.T, enc string) {
		n := TupleLen(enc)
		if n < 0 {
			return
		}
		if got := Tuple(enc).Len(); got != n {
			t.Fatalf("Len = %d, TupleLen = %d", got, n)
		}
		_ = Tuple(enc).String()
		for _, v := range Tuple(enc).Values() {
			AppendJSON(nil, v)
		}
	})
}
