package index

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tidings/tidings/internal/canonical"
)

// Value is one JSON value in canonical form (see the package overview for
// equality and order). Values made by this package are canonical, so == on
// two of them is JSON equality: ParseValue("1") == ParseValue("1.0").
//
// The zero Value stands for null: Compare, Equal and AppendJSON treat it so,
// but it is not == to the Value that ParseValue returns for null.
type Value struct{ enc string }

// ParseValue returns the canonical Value of one JSON text. Leading and
// trailing white space is allowed. Errors wrap ErrInvalidJSON or
// ErrNumberRange.
func ParseValue(text []byte) (Value, error) {
	enc, err := canonical.Parse(text)
	if err != nil {
		return Value{}, err
	}
	return Value{enc}, nil
}

// ValueOf returns the canonical Value of v as encoding/json marshals it,
// so that ValueOf("fire"), ValueOf(1) and ValueOf(json.RawMessage(`1.0`))
// are what they look like.
func ValueOf(v any) (Value, error) {
	text, err := json.Marshal(v)
	if err != nil {
		return Value{}, fmt.Errorf("%w: %w", ErrInvalidJSON, err)
	}
	return ParseValue(text)
}

// encoding returns v's canonical encoding; the zero Value's is null's.
func (v Value) encoding() string {
	if v.enc == "" {
		return canonical.Null
	}
	return v.enc
}

// Compare returns -1, 0 or +1 as v sorts before, equal to or after w in
// the total order over JSON values.
func (v Value) Compare(w Value) int { return strings.Compare(v.encoding(), w.encoding()) }

// Equal reports whether v and w are equal JSON values (1 and 1.0 are; "1"
// and 1 are not).
func (v Value) Equal(w Value) bool { return v.encoding() == w.encoding() }

// AppendJSON appends v as canonical JSON text: numbers in shortest exact
// decimal form (1.0 becomes 1), object members sorted by key, no space.
// ParseValue of the result returns v again.
func (v Value) AppendJSON(dst []byte) []byte {
	return canonical.AppendJSON(dst, v.encoding())
}

// String returns v as canonical JSON text.
func (v Value) String() string { return string(v.AppendJSON(nil)) }

// MarshalJSON returns v as canonical JSON text.
func (v Value) MarshalJSON() ([]byte, error) { return v.AppendJSON(nil), nil }

// UnmarshalJSON sets v to the canonical Value of the JSON text b.
func (v *Value) UnmarshalJSON(b []byte) error {
	w, err := ParseValue(b)
	if err != nil {
		return err
	}
	*v = w
	return nil
}
