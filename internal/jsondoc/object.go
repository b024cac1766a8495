package jsondoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// AppendString appends s as a JSON string, escaped as encoding/json does
// (without its HTML escaping): quotes, backslashes, control characters,
// U+2028 and U+2029; invalid UTF-8 becomes U+FFFD. It also escapes U+0085
// (NEL), which encoding/json leaves raw: clients that split lines by
// Unicode's rules (Python's str.splitlines) break a line at all three.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigit[c>>4], hexDigit[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' || r == '\u0085' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', hexDigit[r>>12], hexDigit[r>>8&0xf], hexDigit[r>>4&0xf], hexDigit[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const hexDigit = "0123456789abcdef"

// member is one member of a JSON object.
type member struct {
	key string
	val json.RawMessage
}

// ErrNotObject: a document's data (or an update's patch) is not a JSON
// object. Package broker exports it as broker.ErrNotObject, whose name its
// message carries.
var ErrNotObject = errors.New("broker: data is not a JSON object")

// objectMembers returns the members of a JSON object in order. Of
// duplicate keys the last value counts, at the place of the first, as
// encoding/json decides.
func objectMembers(obj []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, ErrNotObject
	}
	var ms []member
	seen := map[string]int{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if i, ok := seen[key]; ok {
			ms[i].val = v
			continue
		}
		seen[key] = len(ms)
		ms = append(ms, member{key, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return ms, nil
}

func appendObject(dst []byte, ms []member) []byte {
	dst = append(dst, '{')
	for i, m := range ms {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, m.key)
		dst = append(dst, ':')
		dst = append(dst, m.val...)
	}
	return append(dst, '}')
}

func isObject(v []byte) bool { return len(v) > 0 && v[0] == '{' }
