package canonical

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidings/tidings/internal/jsondoc"
)

// AppendJSON appends the encoded value enc as canonical JSON text: numbers
// in shortest exact decimal form (1.0 becomes 1), object members sorted by
// key, no space, and U+2028, U+2029 and U+0085 escaped in strings. Parse
// of the result returns enc again.
func AppendJSON(dst []byte, enc string) []byte {
	dst, _ = appendDecoded(dst, enc, 0)
	return dst
}

// Skip returns the offset just after the encoded value at enc[i].
func Skip(enc string, i int) int {
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
			i = Skip(enc, i)
		}
		return i + 1
	case tagObject:
		i++
		for enc[i] == tagMember {
			i = Skip(enc, skipStringBody(enc, i+1))
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
	panic(fmt.Sprintf("canonical: corrupt encoding %q at %d", enc, i))
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

// appendDecodedString writes the string body at enc[i] as a JSON string,
// with U+2028, U+2029 and U+0085 escaped, as every event line has them.
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
			r, size := utf8.DecodeRuneInString(enc[i:])
			if r == '\u2028' || r == '\u2029' || r == '\u0085' {
				// Line ends to Unicode-aware clients: events carry these
				// terms and values, each on one line.
				dst = append(dst, '\\', 'u', hex[r>>12], hex[r>>8&0xF], hex[r>>4&0xF], hex[r&0xF])
			} else {
				dst = append(dst, enc[i:i+size]...)
			}
			i += size
			continue
		}
		i++
	}
}

// TupleLen returns the number of encoded values in t, or -1 if t is not a
// sequence of well-formed encodings. Unlike the decoding functions, which
// trust their input, it checks: it is for encodings read back from
// outside (a checkpoint), before anything decodes them. It checks the
// structure decoding relies on, not that t is canonical (number digits
// trimmed, object keys sorted).
func TupleLen(t string) int {
	n := 0
	for i := 0; i < len(t); n++ {
		if i = check(t, i, 0); i < 0 {
			return -1
		}
	}
	return n
}

// check returns the offset after the well-formed encoding at enc[i], or -1.
func check(enc string, i, depth int) int {
	if i >= len(enc) {
		return -1
	}
	switch enc[i] {
	case tagNull, tagFalse, tagTrue, tagZero:
		return i + 1
	case tagPos, tagNeg:
		end, lo, hi := byte(0x00), byte('0'), byte('9')
		if enc[i] == tagNeg {
			end, lo, hi = 0xFF, ^hi, ^lo
		}
		if i+5 >= len(enc) {
			return -1
		}
		j := strings.IndexByte(enc[i+5:], end)
		if j < 1 {
			return -1 // no end, or no digit
		}
		for _, c := range []byte(enc[i+5 : i+5+j]) {
			if c < lo || c > hi {
				return -1
			}
		}
		return i + 5 + j + 1
	case tagString:
		return checkString(enc, i+1)
	case tagArray, tagObject:
		if depth >= jsondoc.MaxDepth {
			return -1
		}
		obj := enc[i] == tagObject
		for i++; i < len(enc); {
			if enc[i] == tagEnd {
				return i + 1
			}
			if obj {
				if enc[i] != tagMember {
					return -1
				}
				if i = checkString(enc, i+1); i < 0 {
					return -1
				}
			}
			if i = check(enc, i, depth+1); i < 0 {
				return -1
			}
		}
	}
	return -1
}

// checkString returns the offset after the string body at enc[i], or -1.
func checkString(enc string, i int) int {
	for {
		k := strings.IndexByte(enc[i:], 0x00)
		if k < 0 || i+k+1 >= len(enc) {
			return -1
		}
		i += k
		switch enc[i+1] {
		case 0x01:
			return i + 2
		case 0xFF:
			i += 2
		default:
			return -1
		}
	}
}
