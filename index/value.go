package index

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
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
	i := skipSpace(text, 0)
	enc, end, err := appendCanonical(nil, text, i, 0)
	if err != nil && !errors.Is(err, ErrNumberRange) {
		return Value{}, err
	}
	if err != nil {
		// Encoding stopped at a number out of range: invalid JSON after
		// it is the error to report.
		var serr error
		if end, serr = skipValue(text, i, 0); serr != nil {
			return Value{}, serr
		}
	}
	if end = skipSpace(text, end); end != len(text) {
		return Value{}, syntaxError(end, "data after the value")
	}
	if err != nil {
		return Value{}, err
	}
	return Value{string(enc)}, nil
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

func (v Value) canonical() string {
	if v.enc == "" {
		return nullEncoding
	}
	return v.enc
}

// Compare returns -1, 0 or +1 as v sorts before, equal to or after w in
// the total order over JSON values.
func (v Value) Compare(w Value) int { return strings.Compare(v.canonical(), w.canonical()) }

// Equal reports whether v and w are equal JSON values (1 and 1.0 are; "1"
// and 1 are not).
func (v Value) Equal(w Value) bool { return v.canonical() == w.canonical() }

// AppendJSON appends v as canonical JSON text: numbers in shortest exact
// decimal form (1.0 becomes 1), object members sorted by key, no space.
// ParseValue of the result returns v again.
func (v Value) AppendJSON(dst []byte) []byte {
	dst, _ = appendDecoded(dst, v.canonical(), 0)
	return dst
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

// Tuple is a sequence of Values: the terms or the values of an index
// entry. Its encoding is the concatenation of its Values' encodings, so
// Tuples compare element by element. The zero Tuple is empty.
type Tuple struct{ enc string }

// TupleOf returns the Tuple of vs in order.
func TupleOf(vs ...Value) Tuple {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString(v.canonical())
	}
	return Tuple{b.String()}
}

// Len returns the number of Values in t.
func (t Tuple) Len() int {
	n := 0
	for i := 0; i < len(t.enc); i = skipEncoded(t.enc, i) {
		n++
	}
	return n
}

// Values returns the Values of t in order.
func (t Tuple) Values() []Value {
	var vs []Value
	for i := 0; i < len(t.enc); {
		j := skipEncoded(t.enc, i)
		vs = append(vs, Value{t.enc[i:j]})
		i = j
	}
	return vs
}

// Compare returns -1, 0 or +1 as t sorts before, equal to or after u,
// comparing element by element; a proper prefix sorts first.
func (t Tuple) Compare(u Tuple) int { return strings.Compare(t.enc, u.enc) }

// AppendJSON appends t as a JSON array of canonical JSON values.
func (t Tuple) AppendJSON(dst []byte) []byte {
	dst = append(dst, '[')
	for i := 0; i < len(t.enc); {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst, i = appendDecoded(dst, t.enc, i)
	}
	return append(dst, ']')
}

// String returns t as a JSON array.
func (t Tuple) String() string { return string(t.AppendJSON(nil)) }

// MarshalJSON returns t as a JSON array.
func (t Tuple) MarshalJSON() ([]byte, error) { return t.AppendJSON(nil), nil }

// skipEncoded returns the offset just after the canonical value at enc[i].
func skipEncoded(enc string, i int) int {
	switch enc[i] {
	case tagPos:
		return i + 5 + strings.IndexByte(enc[i+5:], 0x00) + 1
	case tagNeg:
		return i + 5 + strings.IndexByte(enc[i+5:], 0xFF) + 1
	case tagString:
		return skipStringBody(enc, i+1)
	case tagArray:
		i++
		for enc[i] != tagEnd {
			i = skipEncoded(enc, i)
		}
		return i + 1
	case tagObject:
		i++
		for enc[i] == tagMember {
			i = skipEncoded(enc, skipStringBody(enc, i+1))
		}
		return i + 1
	}
	return i + 1 // null, false, true, zero
}

// skipStringBody returns the offset after the string body at enc[i].
func skipStringBody(enc string, i int) int {
	for {
		i += strings.IndexByte(enc[i:], 0x00)
		if enc[i+1] == 0x01 {
			return i + 2
		}
		i += 2 // 0x00 0xFF: an escaped NUL
	}
}

// appendDecoded appends the JSON text of the canonical value at enc[i]
// and returns the offset just after it.
func appendDecoded(dst []byte, enc string, i int) ([]byte, int) {
	switch enc[i] {
	case tagNull:
		return append(dst, "null"...), i + 1
	case tagFalse:
		return append(dst, "false"...), i + 1
	case tagTrue:
		return append(dst, "true"...), i + 1
	case tagZero:
		return append(dst, '0'), i + 1
	case tagPos, tagNeg:
		return appendDecodedNumber(dst, enc, i)
	case tagString:
		return appendDecodedString(dst, enc, i+1)
	case tagArray:
		dst = append(dst, '[')
		for i, first := i+1, true; ; first = false {
			if enc[i] == tagEnd {
				return append(dst, ']'), i + 1
			}
			if !first {
				dst = append(dst, ',')
			}
			dst, i = appendDecoded(dst, enc, i)
		}
	case tagObject:
		dst = append(dst, '{')
		for i, first := i+1, true; ; first = false {
			if enc[i] != tagMember {
				return append(dst, '}'), i + 1
			}
			if !first {
				dst = append(dst, ',')
			}
			dst, i = appendDecodedString(dst, enc, i+1)
			dst = append(dst, ':')
			dst, i = appendDecoded(dst, enc, i)
		}
	}
	panic(fmt.Sprintf("index: corrupt canonical encoding %q at %d", enc, i))
}

// appendDecodedNumber writes ±0.D × 10^e as the shortest JSON text: plain
// digits for 1e-6 ≤ |x| < 1e21, exponent form otherwise.
func appendDecodedNumber(dst []byte, enc string, i int) ([]byte, int) {
	neg := enc[i] == tagNeg
	var hdr [4]byte
	copy(hdr[:], enc[i+1:i+5])
	end := byte(0x00)
	if neg {
		end = 0xFF
		for k := range hdr {
			hdr[k] = ^hdr[k]
		}
		dst = append(dst, '-')
	}
	e := int64(binary.BigEndian.Uint32(hdr[:])) - expBias
	j := i + 5 + strings.IndexByte(enc[i+5:], end)
	digits := []byte(enc[i+5 : j])
	if neg {
		for k := range digits {
			digits[k] = ^digits[k]
		}
	}
	n := int64(len(digits))
	switch {
	case 0 < e && e <= 21:
		if n <= e {
			dst = append(dst, digits...)
			dst = append(dst, strings.Repeat("0", int(e-n))...)
		} else {
			dst = append(dst, digits[:e]...)
			dst = append(dst, '.')
			dst = append(dst, digits[e:]...)
		}
	case -6 < e && e <= 0:
		dst = append(dst, "0."...)
		dst = append(dst, strings.Repeat("0", int(-e))...)
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if n > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		dst = strconv.AppendInt(dst, e-1, 10)
	}
	return dst, j + 1
}

// appendDecodedString writes the string body at enc[i] as a JSON string.
func appendDecodedString(dst []byte, enc string, i int) ([]byte, int) {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for {
		c := enc[i]
		if c == 0x00 {
			if enc[i+1] == 0x01 {
				return append(dst, '"'), i + 2
			}
			dst = append(dst, `\u0000`...)
			i += 2
			continue
		}
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, `\n`...)
		case c == '\r':
			dst = append(dst, `\r`...)
		case c == '\t':
			dst = append(dst, `\t`...)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		case c < utf8.RuneSelf:
			dst = append(dst, c)
		default:
			_, size := utf8.DecodeRuneInString(enc[i:])
			dst = append(dst, enc[i:i+size]...)
			i += size
			continue
		}
		i++
	}
}
