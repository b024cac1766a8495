package index

import (
	"errors"
	"testing"

	"github.com/tidings/tidings/internal/jsondoc"
)

func TestValueEquality(t *testing.T) {
	equal := [][]string{
		{`1`, `1.0`, `1e0`, `10E-1`, `0.1e1`, `1.000e+0`, ` 1 `},
		{`0`, `-0`, `0.0`, `-0.0e7`, `0E-3`},
		{`12345678901234567891`, `1234567890123456789.1e1`},
		{`"A"`, `"\u0041"`},
		{`"é"`, `"\u00e9"`, `"\u00E9"`},
		{`"😀"`, `"\ud83d\ude00"`},
		{`"\ufffd"`, `"\ud800"`, "\"\xff\""}, // lone surrogate, invalid UTF-8: U+FFFD as encoding/json
		{`{"a":1,"b":[1,2]}`, `{"b":[1.0,2e0],"a":1}`, `{"a":5,"b":[1,2],"a":1}`},
		{`[]`, `[ ]`},
		{`null`, ` null`},
	}
	for _, group := range equal {
		first := mustParse(t, group[0])
		for _, text := range group[1:] {
			if v := mustParse(t, text); v != first || !v.Equal(first) || v.Compare(first) != 0 {
				t.Errorf("%s and %s should be equal: %q vs %q", group[0], text, first.enc, v.enc)
			}
		}
	}
	distinct := []string{`1`, `"1"`, `true`, `[1]`, `{"1":1}`, `12345678901234567892`, `1.0000000000000000001`, `"a\u0000"`, `"a"`}
	for i, a := range distinct {
		for _, b := range distinct[i+1:] {
			if mustParse(t, a) == mustParse(t, b) {
				t.Errorf("%s and %s should differ", a, b)
			}
		}
	}
	if !(Value{}).Equal(mustParse(t, "null")) {
		t.Error("the zero Value should equal null")
	}
}

// TestValueOrder checks the documented total order on a list in
// ascending order: every pair compares as its positions do.
func TestValueOrder(t *testing.T) {
	asc := []string{
		`null`, `false`, `true`,
		`-1e400`, `-12345678901234567892`, `-12345678901234567891`, `-10`, `-2`, `-1.5`, `-1`, `-0.5`, `-1e-400`,
		`0`, `1e-400`, `0.001`, `0.5`, `1`, `1.0000000000000000001`, `1.5`, `2`, `10`, `100`, `1e21`, `1e400`,
		`""`, `"\u0000"`, `"\u0000\u0000"`, `"\u0001"`, `"1"`, `"A"`, `"Z"`, `"a"`, `"a\u0000"`, `"ab"`, `"b"`, `"é"`, `"😀"`,
		`[]`, `[null]`, `[null,null]`, `[false]`, `[1]`, `[1,2]`, `[2]`, `["a"]`, `[[]]`, `[{}]`,
		`{}`, `{"":null}`, `{"a":null}`, `{"a":1}`, `{"a":1,"b":1}`, `{"a":2}`, `{"b":0}`,
	}
	vals := make([]Value, len(asc))
	for i, s := range asc {
		vals[i] = mustParse(t, s)
	}
	for i := range vals {
		for j := range vals {
			if got, want := vals[i].Compare(vals[j]), cmpInt(i, j); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", asc[i], asc[j], got, want)
			}
			ra, _ := refValue([]byte(asc[i]))
			rb, _ := refValue([]byte(asc[j]))
			if c, ok := refCompare(ra, rb); ok && c != cmpInt(i, j) {
				t.Errorf("reference Compare(%s, %s) = %d: the test list is out of order", asc[i], asc[j], c)
			}
		}
	}
}

func TestValueJSON(t *testing.T) {
	cases := []struct{ in, out string }{
		{`1.0`, `1`},
		{`-0`, `0`},
		{`1.50`, `1.5`},
		{`123e-10`, `1.23e-8`},
		{`0.000001`, `0.000001`},
		{`0.0000001`, `1e-7`},
		{`1e20`, `100000000000000000000`},
		{`1e21`, `1e21`},
		{`-12.5e1`, `-125`},
		{`12345678901234567891`, `12345678901234567891`},
		{`1e400`, `1e400`},
		{`"a\"b\\c\nd\u0001\u0000/é"`, `"a\"b\\c\nd\u0001\u0000/é"`},
		{` { "b" : [ 1 , true , null ] , "a" : {} } `, `{"a":{},"b":[1,true,null]}`},
	}
	for _, c := range cases {
		v := mustParse(t, c.in)
		if got := v.String(); got != c.out {
			t.Errorf("%s: AppendJSON = %s, want %s", c.in, got, c.out)
		}
		if back := mustParse(t, v.String()); back != v {
			t.Errorf("%s: does not round trip through %s", c.in, v)
		}
	}
	if got := (Value{}).String(); got != "null" {
		t.Errorf("zero Value = %s, want null", got)
	}
}

func TestParseValueErrors(t *testing.T) {
	cases := []struct {
		in   string
		want error
	}{
		{``, ErrInvalidJSON},
		{`01`, ErrInvalidJSON},
		{`1.`, ErrInvalidJSON},
		{`+1`, ErrInvalidJSON},
		{`"\x"`, ErrInvalidJSON},
		{"\"a\tb\"", ErrInvalidJSON},
		{`[1,]`, ErrInvalidJSON},
		{`{"a"}`, ErrInvalidJSON},
		{`1 2`, ErrInvalidJSON},
		{`nul`, ErrInvalidJSON},
		{`1e9999999999`, ErrNumberRange},
		{`1e-3000000000`, ErrNumberRange},
	}
	for _, c := range cases {
		if _, err := ParseValue([]byte(c.in)); !errors.Is(err, c.want) {
			t.Errorf("ParseValue(%q) = %v, want %v", c.in, err, c.want)
		}
	}
	if _, err := ValueOf(func() {}); !errors.Is(err, ErrInvalidJSON) {
		t.Errorf("ValueOf(func) = %v, want ErrInvalidJSON", err)
	}
}

func TestValueUnmarshalJSON(t *testing.T) {
	var v Value
	if err := v.UnmarshalJSON([]byte(`1.0`)); err != nil || v != mustParse(t, "1") {
		t.Errorf("UnmarshalJSON: %v, %v", v, err)
	}
	if err := v.UnmarshalJSON([]byte(`1.`)); !errors.Is(err, ErrInvalidJSON) {
		t.Errorf("UnmarshalJSON(1.) = %v", err)
	}
}

func TestNestingDepth(t *testing.T) {
	deep := func(n int) []byte {
		b := make([]byte, 0, 2*n)
		for range n {
			b = append(b, '[')
		}
		for range n {
			b = append(b, ']')
		}
		return b
	}
	if _, err := ParseValue(deep(jsondoc.MaxDepth)); err != nil {
		t.Errorf("depth %d: %v", jsondoc.MaxDepth, err)
	}
	if _, err := ParseValue(deep(jsondoc.MaxDepth + 1)); !errors.Is(err, ErrInvalidJSON) {
		t.Errorf("depth %d: %v, want ErrInvalidJSON", jsondoc.MaxDepth+1, err)
	}
}
