package canonical

import "strings"

// Tuple is a sequence of encoded values: the terms or the values of an
// index entry. Its encoding is the concatenation of its values' encodings,
// which stays prefix-free, so Tuples compare element by element. The zero
// Tuple is empty. A Tuple is made from encodings this package produced
// (Parse, Append), or sliced out of an entry that holds them.
type Tuple string

// TupleOf returns the Tuple of the encoded values encs in order.
func TupleOf(encs ...string) Tuple { return Tuple(strings.Join(encs, "")) }

// Len returns the number of values in t.
func (t Tuple) Len() int {
	n := 0
	for i := 0; i < len(t); i = Skip(string(t), i) {
		n++
	}
	return n
}

// Values returns the encodings of t's values in order.
func (t Tuple) Values() []string {
	var vs []string
	for i := 0; i < len(t); {
		j := Skip(string(t), i)
		vs = append(vs, string(t[i:j]))
		i = j
	}
	return vs
}

// Compare returns -1, 0 or +1 as t sorts before, equal to or after u,
// comparing element by element; a proper prefix sorts first.
func (t Tuple) Compare(u Tuple) int { return strings.Compare(string(t), string(u)) }

// AppendJSON appends t as a JSON array of canonical JSON values.
func (t Tuple) AppendJSON(dst []byte) []byte {
	dst = append(dst, '[')
	for i := 0; i < len(t); {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst, i = appendDecoded(dst, string(t), i)
	}
	return append(dst, ']')
}

// String returns t as a JSON array.
func (t Tuple) String() string { return string(t.AppendJSON(nil)) }

// MarshalJSON returns t as a JSON array.
func (t Tuple) MarshalJSON() ([]byte, error) { return t.AppendJSON(nil), nil }
