package jsondoc

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// This file is a validating JSON scanner over raw bytes. It never builds a
// tree: the index extractor walks a document once, descending only into
// the fields some index reads, and skips (while validating) everything
// else. Every function takes the input b and an offset i into it, and
// returns the offset where it stopped.

// MaxDepth is the deepest nesting of arrays and objects accepted, the same
// limit encoding/json applies, so that both agree on which input is valid.
const MaxDepth = 10000

// ErrInvalidJSON: input is not valid JSON (RFC 8259), or is nested deeper
// than MaxDepth. Package index exports it as index.ErrInvalidJSON, whose
// name its message carries.
var ErrInvalidJSON = errors.New("index: invalid JSON")

// SyntaxError returns an error wrapping ErrInvalidJSON for invalid JSON at
// byte offset off.
func SyntaxError(off int, msg string) error {
	return fmt.Errorf("%w: %s at offset %d", ErrInvalidJSON, msg, off)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// SkipSpace returns the offset of the first byte at or after i that is not
// JSON white space.
func SkipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// SkipValue validates the JSON value starting at b[i] (no leading space)
// and returns the offset just after it. depth is the number of containers
// already open around it.
func SkipValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, SyntaxError(i, "unexpected end of input")
	}
	switch c := b[i]; {
	case c == '{':
		return skipObject(b, i, depth+1)
	case c == '[':
		return skipArray(b, i, depth+1)
	case c == '"':
		end, _, err := ScanString(b, i)
		return end, err
	case c == '-' || isDigit(c):
		return ScanNumber(b, i)
	case c == 't':
		return ScanLiteral(b, i, "true")
	case c == 'f':
		return ScanLiteral(b, i, "false")
	case c == 'n':
		return ScanLiteral(b, i, "null")
	}
	return i, SyntaxError(i, "invalid character")
}

// ScanLiteral checks that the literal lit (true, false, null) is at b[i]
// and returns the offset after it.
func ScanLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, SyntaxError(i, "invalid literal")
	}
	return i + len(lit), nil
}

func skipObject(b []byte, i, depth int) (int, error) {
	if depth > MaxDepth {
		return i, SyntaxError(i, "nested too deep")
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		var err error
		if i >= len(b) || b[i] != '"' {
			return i, SyntaxError(i, "expected object key")
		}
		if i, _, err = ScanString(b, i); err != nil {
			return i, err
		}
		if i = SkipSpace(b, i); i >= len(b) || b[i] != ':' {
			return i, SyntaxError(i, "expected ':'")
		}
		if i, err = SkipValue(b, SkipSpace(b, i+1), depth); err != nil {
			return i, err
		}
		if i, err = NextMember(b, i, '}'); err != nil || i < 0 {
			return -i, err
		}
	}
}

func skipArray(b []byte, i, depth int) (int, error) {
	if depth > MaxDepth {
		return i, SyntaxError(i, "nested too deep")
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		var err error
		if i, err = SkipValue(b, i, depth); err != nil {
			return i, err
		}
		if i, err = NextMember(b, i, ']'); err != nil || i < 0 {
			return -i, err
		}
	}
}

// NextMember consumes the space and the ',' or closing byte after a member.
// It returns the offset of the next member, or minus the offset after the
// closing byte when the container ends.
func NextMember(b []byte, i int, closing byte) (int, error) {
	i = SkipSpace(b, i)
	if i >= len(b) {
		return i, SyntaxError(i, "unexpected end of input")
	}
	switch b[i] {
	case ',':
		return SkipSpace(b, i+1), nil
	case closing:
		return -(i + 1), nil
	}
	return i, SyntaxError(i, "expected ',' or '"+string(closing)+"'")
}

// ScanString validates the string starting at b[i] == '"' and returns the
// offset after its closing quote. plain reports that the bytes between the
// quotes are exactly the string's value: no escapes and valid UTF-8.
// Invalid UTF-8 and unpaired surrogate escapes are accepted, read as
// U+FFFD as encoding/json does; scanText is the strict reading.
func ScanString(b []byte, i int) (end int, plain bool, err error) {
	end, plain, _, err = scanString(b, i, false)
	return end, plain, err
}

// scanString is ScanString and scanText in one: strict refuses invalid
// UTF-8 and unpaired surrogate escapes (textError); seps reports a raw
// U+2028, U+2029 or U+0085.
func scanString(b []byte, i int, strict bool) (end int, plain, seps bool, err error) {
	plain = true
	i++
	for i < len(b) {
		// Runs of printable ASCII, most of any string, a lookup a byte.
		for i < len(b) && plainByte[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, plain, seps, nil
		case c == '\\':
			plain = false
			if i+1 >= len(b) {
				return i, false, false, SyntaxError(i, "unexpected end of input")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r := hex4(b, i+2)
				if r < 0 {
					return i, false, false, SyntaxError(i, "invalid \\u escape")
				}
				if !strict || r < 0xD800 || r >= 0xE000 {
					i += 6
					continue
				}
				if r >= 0xDC00 || len(b)-i < 8 || b[i+6] != '\\' || b[i+7] != 'u' {
					return i, false, false, textError(i, "an unpaired surrogate escape")
				}
				r2 := hex4(b, i+8)
				if r2 < 0 {
					return i + 6, false, false, SyntaxError(i+6, "invalid \\u escape")
				}
				if r2 < 0xDC00 || r2 >= 0xE000 {
					return i, false, false, textError(i, "an unpaired surrogate escape")
				}
				i += 12
			default:
				return i, false, false, SyntaxError(i, "invalid escape")
			}
		case c < 0x20:
			return i, false, false, SyntaxError(i, "control character in string")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				if strict {
					return i, false, false, textError(i, "an invalid byte in a string")
				}
				plain = false // replaced by U+FFFD, as encoding/json does
			}
			seps = seps || r == '\u2028' || r == '\u2029' || r == '\u0085'
			i += size
		}
	}
	return i, false, false, SyntaxError(i, "unterminated string")
}

// plainByte tells the bytes a string holds as they are: printable ASCII
// but for the quote and the backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hex4 decodes the four hex digits at b[i:], or returns -1.
func hex4(b []byte, i int) rune {
	if len(b)-i < 4 {
		return -1
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// ScanNumber validates the number starting at b[i] and returns its end:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func ScanNumber(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && isDigit(b[i]):
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return i, SyntaxError(start, "invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return i, SyntaxError(start, "invalid number")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, SyntaxError(start, "invalid number")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, nil
}

// AppendUnquoted appends the value of the JSON string body s (the bytes
// between the quotes, already validated) to dst, decoding escapes exactly
// as encoding/json does: invalid UTF-8 bytes and unpaired surrogates become
// U+FFFD. If canonical, a 0x00 byte of the value (only \u0000 yields one)
// is written as 0x00 0xFF, the escape of the canonical string encoding.
func AppendUnquoted(dst, s []byte, canonical bool) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			switch s[i+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(s, i+2)
				i += 6
				if 0xD800 <= r && r < 0xE000 {
					r2 := rune(-1)
					if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
						r2 = hex4(s, i+2)
					}
					if r < 0xDC00 && 0xDC00 <= r2 && r2 < 0xE000 {
						r = (r-0xD800)<<10 | (r2 - 0xDC00) + 0x10000
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				if r == 0 && canonical {
					dst = append(dst, 0x00, 0xFF)
				} else {
					dst = utf8.AppendRune(dst, r)
				}
				continue
			default: // '"', '\\', '/'
				dst = append(dst, s[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}
