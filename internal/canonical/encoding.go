package canonical

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/tidings/tidings/internal/jsondoc"
)

// The canonical encoding of a JSON value is a byte string such that
//
//   - two JSON values are equal (as package index defines equality)
//     exactly when their encodings are equal, and
//   - bytewise comparison of encodings is the total order over JSON values:
//     null < false < true < numbers < strings < arrays < objects;
//   - no encoding is a prefix of another, so a tuple is the plain
//     concatenation of its values and still compares element by element.
//
// Layout (tag byte first):
//
//	null    0x10
//	false   0x20
//	true    0x21
//	number  0x30 negative, 0x31 zero, 0x32 positive. A non-zero number is
//	        ±0.d1d2…dn × 10^e with d1 ≠ 0 and dn ≠ 0 (exact decimal, no
//	        rounding). Positive: uint32(e + 2^31) big-endian, the digits as
//	        ASCII, then 0x00. Negative: the same bytes, each complemented, so
//	        that greater magnitudes sort first.
//	string  0x40, the UTF-8 bytes with 0x00 written 0x00 0xFF, then 0x00 0x01.
//	array   0x50, each element's encoding, then 0x00.
//	object  0x60, for each member in order of key bytes: 0x01, the key
//	        escaped as a string body (without the tag), the value's encoding;
//	        then 0x00. A duplicate key keeps its last value, as encoding/json.
const (
	tagEnd    = 0x00
	tagMember = 0x01
	tagNull   = 0x10
	tagFalse  = 0x20
	tagTrue   = 0x21
	tagNeg    = 0x30
	tagZero   = 0x31
	tagPos    = 0x32
	tagString = 0x40
	tagArray  = 0x50
	tagObject = 0x60

	expBias = 1 << 31
)

// Null is the canonical encoding of null: the value of a missing field.
const Null = "\x10"

// Append validates the JSON value at b[i] (no leading space) and appends
// its canonical encoding to dst. It returns the offset after the value.
// depth is the number of containers already open around it. Errors wrap
// jsondoc.ErrInvalidJSON or ErrNumberRange.
func Append(dst, b []byte, i, depth int) ([]byte, int, error) {
	if i >= len(b) {
		return dst, i, jsondoc.SyntaxError(i, "unexpected end of input")
	}
	switch c := b[i]; {
	case c == '{':
		return appendObject(dst, b, i, depth+1)
	case c == '[':
		return appendArray(dst, b, i, depth+1)
	case c == '"':
		end, plain, err := jsondoc.ScanString(b, i)
		if err != nil {
			return dst, end, err
		}
		dst = append(dst, tagString)
		dst = appendStringBody(dst, b[i+1:end-1], plain)
		return dst, end, nil
	case c == '-' || isDigit(c):
		end, err := jsondoc.ScanNumber(b, i)
		if err != nil {
			return dst, end, err
		}
		dst, err = appendNumber(dst, b[i:end])
		return dst, end, err
	case c == 't':
		end, err := jsondoc.ScanLiteral(b, i, "true")
		return append(dst, tagTrue), end, err
	case c == 'f':
		end, err := jsondoc.ScanLiteral(b, i, "false")
		return append(dst, tagFalse), end, err
	case c == 'n':
		end, err := jsondoc.ScanLiteral(b, i, "null")
		return append(dst, tagNull), end, err
	}
	return dst, i, jsondoc.SyntaxError(i, "invalid character")
}

// appendStringBody appends the escaped body and terminator of a string
// whose JSON body (between the quotes) is s.
func appendStringBody(dst, s []byte, plain bool) []byte {
	if plain {
		dst = append(dst, s...) // no escapes: cannot contain 0x00
	} else {
		dst = jsondoc.AppendUnquoted(dst, s, true)
	}
	return append(dst, 0x00, 0x01)
}

func appendArray(dst, b []byte, i, depth int) ([]byte, int, error) {
	if depth > jsondoc.MaxDepth {
		return dst, i, jsondoc.SyntaxError(i, "nested too deep")
	}
	dst = append(dst, tagArray)
	i = jsondoc.SkipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return append(dst, tagEnd), i + 1, nil
	}
	for {
		var err error
		if dst, i, err = Append(dst, b, i, depth); err != nil {
			return dst, i, err
		}
		if i, err = jsondoc.NextMember(b, i, ']'); err != nil {
			return dst, i, err
		}
		if i < 0 {
			return append(dst, tagEnd), -i, nil
		}
	}
}

// member locates one object member inside appendObject's scratch buffer:
// the escaped key body is buf[key:val], the value's encoding buf[val:end].
type member struct{ key, val, end int }

func appendObject(dst, b []byte, i, depth int) ([]byte, int, error) {
	if depth > jsondoc.MaxDepth {
		return dst, i, jsondoc.SyntaxError(i, "nested too deep")
	}
	// Objects inside indexed values are rare: a scratch buffer per object
	// keeps this simple.
	var buf []byte
	var members []member
	i = jsondoc.SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return append(dst, tagObject, tagEnd), i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return dst, i, jsondoc.SyntaxError(i, "expected object key")
		}
		end, plain, err := jsondoc.ScanString(b, i)
		if err != nil {
			return dst, end, err
		}
		m := member{key: len(buf)}
		buf = appendStringBody(buf, b[i+1:end-1], plain)
		m.val = len(buf)
		if i = jsondoc.SkipSpace(b, end); i >= len(b) || b[i] != ':' {
			return dst, i, jsondoc.SyntaxError(i, "expected ':'")
		}
		if buf, i, err = Append(buf, b, jsondoc.SkipSpace(b, i+1), depth); err != nil {
			return dst, i, err
		}
		m.end = len(buf)
		members = append(members, m)
		if i, err = jsondoc.NextMember(b, i, '}'); err != nil {
			return dst, i, err
		}
		if i < 0 {
			i = -i
			break
		}
	}
	// Stable sort by key, then keep the last of each run of equal keys.
	slices.SortStableFunc(members, func(x, y member) int {
		return bytes.Compare(buf[x.key:x.val], buf[y.key:y.val])
	})
	dst = append(dst, tagObject)
	for k, m := range members {
		if k+1 < len(members) && bytes.Equal(buf[m.key:m.val], buf[members[k+1].key:members[k+1].val]) {
			continue
		}
		dst = append(dst, tagMember)
		dst = append(dst, buf[m.key:m.end]...)
	}
	return append(dst, tagEnd), i, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// appendNumber appends the canonical encoding of the valid JSON number s.
func appendNumber(dst, s []byte) ([]byte, error) {
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	// Split into integer digits, fraction digits and exponent.
	intEnd := 0
	for intEnd < len(s) && isDigit(s[intEnd]) {
		intEnd++
	}
	frac, rest := []byte(nil), s[intEnd:]
	if len(rest) > 0 && rest[0] == '.' {
		j := 1
		for j < len(rest) && isDigit(rest[j]) {
			j++
		}
		frac, rest = rest[1:j], rest[j:]
	}
	digits := func(k int) byte { // k-th digit of int ++ frac
		if k < intEnd {
			return s[k]
		}
		return frac[k-intEnd]
	}
	n := intEnd + len(frac)
	lead := 0
	for lead < n && digits(lead) == '0' {
		lead++
	}
	if lead == n {
		return append(dst, tagZero), nil // 0, -0, 0.000, 0e7 …
	}
	last := n
	for digits(last-1) == '0' {
		last--
	}
	var exp int64
	if len(rest) > 0 { // [eE][+-]?digits
		rest = rest[1:]
		expNeg := false
		if rest[0] == '+' || rest[0] == '-' {
			expNeg = rest[0] == '-'
			rest = rest[1:]
		}
		for len(rest) > 1 && rest[0] == '0' {
			rest = rest[1:]
		}
		if len(rest) > 10 {
			return dst, fmt.Errorf("%w: %s", ErrNumberRange, s)
		}
		for _, c := range rest {
			exp = exp*10 + int64(c-'0')
		}
		if expNeg {
			exp = -exp
		}
	}
	e := int64(intEnd-lead) + exp // value = 0.digits[lead:last] × 10^e
	if e <= -expBias || e >= expBias {
		return dst, fmt.Errorf("%w: %s", ErrNumberRange, s)
	}
	start := len(dst)
	dst = append(dst, tagPos)
	dst = binary.BigEndian.AppendUint32(dst, uint32(e+expBias))
	for k := lead; k < last; k++ {
		dst = append(dst, digits(k))
	}
	dst = append(dst, 0x00)
	if neg {
		dst[start] = tagNeg
		for k := start + 1; k < len(dst); k++ {
			dst[k] = ^dst[k]
		}
	}
	return dst, nil
}
