package index

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzValueOrder checks the canonical encoding of arbitrary JSON values
// against the reference order (exact, with math/big): equal encodings
// exactly for equal values, bytewise order for the documented order, and
// decode(encode(v)) round trips.
func FuzzValueOrder(f *testing.F) {
	seeds := []string{`1`, `1.0`, `"1"`, `-0`, `0`, `1e400`, `-1e-400`, `12345678901234567891`, `12345678901234567892`,
		`null`, `true`, `false`, `""`, `"\u0000"`, `"a"`, `"é"`, `[]`, `[1,2]`, `[1]`, `{}`, `{"a":1,"b":2}`, `{"b":2,"a":1.0}`,
		`{"a":1,"a":2}`, `"\ud800"`, "\"\xff\"", "\"\u2028\u0085\"", `{"\u2029":1}`, `1e9999999999`, `[`, `0.1e1`}
	for i, a := range seeds {
		f.Add([]byte(a), []byte(seeds[(i*7+3)%len(seeds)]))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		va, ea := ParseValue(a)
		vb, eb := ParseValue(b)
		for _, x := range []struct {
			text []byte
			err  error
		}{{a, ea}, {b, eb}} {
			valid := json.Valid(x.text)
			if !valid && !errors.Is(x.err, ErrInvalidJSON) || valid && x.err != nil && !errors.Is(x.err, ErrNumberRange) {
				t.Fatalf("ParseValue(%q) = %v, json.Valid = %v", x.text, x.err, valid)
			}
		}
		if ea != nil || eb != nil {
			return
		}
		ra, _ := refValue(a)
		rb, _ := refValue(b)
		cmp := va.Compare(vb)
		if cmp != -vb.Compare(va) {
			t.Fatal("Compare is not antisymmetric")
		}
		if want, ok := refCompare(ra, rb); ok && (cmp != want || (va == vb) != (want == 0)) {
			t.Fatalf("Compare(%s, %s) = %d (equal %v), reference %d", a, b, cmp, va == vb, want)
		}
		for _, v := range []Value{va, vb} {
			text := v.AppendJSON(nil)
			back, err := ParseValue(text)
			if err != nil || back != v {
				t.Fatalf("%s does not round trip (%v)", text, err)
			}
			if bytes.ContainsAny(text, "\r\n\u2028\u2029\u0085") {
				t.Fatalf("canonical text %q is not on one line", text)
			}
		}
		rt, err := refValue(va.AppendJSON(nil))
		if err != nil {
			t.Fatalf("canonical text %s: %v", va.AppendJSON(nil), err)
		}
		if c, ok := refCompare(ra, rt); ok && c != 0 {
			t.Fatalf("canonical text %s is not equal to %s", va.AppendJSON(nil), a)
		}
	})
}
