package jsondoc

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// This file holds the strict reading of JSON text that comes from outside
// (a document's data, a request body): strings must be valid UTF-8, and a
// \u escape of a surrogate must be one half of a pair. encoding/json does
// not refuse either: it replaces them with U+FFFD, and a store that kept
// the bytes verbatim would send every strict client a poison event.

// errInvalidText marks the errors of text that is not UTF-8, as opposed to
// JSON syntax errors.
var errInvalidText = errors.New("invalid UTF-8")

func textError(off int, msg string) error {
	return fmt.Errorf("%w: %w: %s at offset %d", ErrInvalidJSON, errInvalidText, msg, off)
}

// IsInvalidText reports whether err is about text that is not UTF-8
// (invalid bytes, or an unpaired surrogate escape), not about JSON syntax.
func IsInvalidText(err error) bool { return errors.Is(err, errInvalidText) }

// scanText validates the string starting at b[i] == '"' strictly and
// returns the offset after its closing quote. seps reports a raw U+2028,
// U+2029 or U+0085 in it, which clients that split lines by Unicode's
// rules take for a line end.
func scanText(b []byte, i int) (end int, seps bool, err error) {
	end, _, seps, err = scanString(b, i, true)
	return end, seps, err
}

// appendText appends the JSON string s (quotes included, validated by
// scanText) with every raw U+2028, U+2029 and U+0085 escaped: the same
// string, on one line by every rule.
func appendText(dst, s []byte, seps bool) []byte {
	if !seps {
		return append(dst, s...)
	}
	start := 0
	for i := 0; i < len(s); i++ {
		// In valid UTF-8, 0xC2 and 0xE2 only ever lead a rune.
		switch {
		case s[i] == 0xC2 && s[i+1] == 0x85:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\u0085`...)
			i++
		case s[i] == 0xE2 && s[i+1] == 0x80 && (s[i+2] == 0xA8 || s[i+2] == 0xA9):
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigit[s[i+2]-0xA8+8])
			i += 2
		default:
			continue
		}
		start = i + 1
	}
	return append(dst, s[start:]...)
}

// appendCompact appends the JSON value at b[i] (no leading space)
// compacted, its strings read strictly and their line separators escaped,
// and returns the offset just after it. depth is the number of containers
// already open around it.
func appendCompact(dst, b []byte, i, depth int) ([]byte, int, error) {
	if i >= len(b) {
		return dst, i, SyntaxError(i, "unexpected end of input")
	}
	var end int
	var err error
	switch c := b[i]; {
	case c == '{' || c == '[':
		return appendContainer(dst, b, i, depth+1)
	case c == '"':
		var seps bool
		if end, seps, err = scanText(b, i); err == nil {
			dst = appendText(dst, b[i:end], seps)
		}
		return dst, end, err
	case c == '-' || isDigit(c):
		end, err = ScanNumber(b, i)
	case c == 't':
		end, err = ScanLiteral(b, i, "true")
	case c == 'f':
		end, err = ScanLiteral(b, i, "false")
	case c == 'n':
		end, err = ScanLiteral(b, i, "null")
	default:
		return dst, i, SyntaxError(i, "invalid character")
	}
	if err == nil {
		dst = append(dst, b[i:end]...)
	}
	return dst, end, err
}

// appendContainer is appendCompact for the object or array at b[i].
func appendContainer(dst, b []byte, i, depth int) ([]byte, int, error) {
	if depth > MaxDepth {
		return dst, i, SyntaxError(i, "nested too deep")
	}
	object := b[i] == '{'
	closing := byte(']')
	if object {
		closing = '}'
	}
	dst = append(dst, b[i])
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == closing {
		return append(dst, closing), i + 1, nil
	}
	for {
		var err error
		if object {
			if i >= len(b) || b[i] != '"' {
				return dst, i, SyntaxError(i, "expected object key")
			}
			if dst, i, err = appendCompact(dst, b, i, depth); err != nil {
				return dst, i, err
			}
			if i = SkipSpace(b, i); i >= len(b) || b[i] != ':' {
				return dst, i, SyntaxError(i, "expected ':'")
			}
			dst = append(dst, ':')
			i = SkipSpace(b, i+1)
		}
		if dst, i, err = appendCompact(dst, b, i, depth); err != nil {
			return dst, i, err
		}
		if i, err = NextMember(b, i, closing); err != nil {
			return dst, i, err
		}
		if i < 0 {
			return append(dst, closing), -i, nil
		}
		dst = append(dst, ',')
	}
}

// CompactObject checks that data is one JSON object and returns it
// compacted onto one line, as events carry it, in a new slice.
//
// Its strings must be valid UTF-8, with no unpaired surrogate escape:
// anything else is refused with an error wrapping ErrInvalidJSON (alone:
// such data is an object, only not text). Every raw U+2028, U+2029 and
// U+0085 in a string (a key or a value) is escaped: the same JSON value,
// which no client's line splitting cuts in two, whatever front or replay
// later copies it out. Data that is not a JSON object is refused with an
// error wrapping ErrNotObject (and, when it is not JSON at all,
// ErrInvalidJSON too).
func CompactObject(data []byte) ([]byte, error) {
	i := SkipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, ErrNotObject
	}
	c, end, err := appendCompact(make([]byte, 0, len(data)), data, i, 0)
	if err == nil && SkipSpace(data, end) != len(data) {
		err = SyntaxError(end, "data after the object")
	}
	switch {
	case err == nil:
		return c, nil
	case IsInvalidText(err):
		return nil, err
	}
	return nil, fmt.Errorf("%w: %w", ErrNotObject, err)
}

// CheckText checks that b, a JSON text from outside, is text a decoder
// reads without replacing anything: valid UTF-8 throughout, and no \u
// escape in a string that stands for half a surrogate pair. The error
// wraps ErrInvalidJSON. It does not check the rest of the syntax (a
// string it cannot read is left to the decoder, which refuses it).
func CheckText(b []byte) error {
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			end, _, err := scanText(b, i)
			if err != nil {
				if IsInvalidText(err) {
					return err
				}
				return nil // invalid JSON: the decoder refuses it
			}
			i = end
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return textError(i, "an invalid byte")
			}
			i += size
		}
	}
	return nil
}
