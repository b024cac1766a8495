// Package canonical encodes JSON values into their canonical form: one
// byte string per value, equal exactly for equal JSON values (1, 1.0 and
// 1e0 are one value; member order does not matter) and ordered bytewise as
// the total order over JSON values that package index documents. Index
// entries, set keys and index.Value are built from it; Tuple is a sequence
// of encoded values, the terms or values of an entry.
//
// The layout is described in encoding.go. Encoding validates its input as
// JSON (errors wrap jsondoc.ErrInvalidJSON); decoding (AppendJSON) writes
// canonical JSON text back and trusts its input, which only this package
// makes.
package canonical

import (
	"errors"

	"github.com/tidings/tidings/internal/jsondoc"
)

// ErrNumberRange: a number has a decimal exponent outside the range the
// encoding holds (about ±2^31), such as 1e9999999999. Package index
// exports it as index.ErrNumberRange, whose name its message carries.
var ErrNumberRange = errors.New("index: number out of range")

// Parse returns the canonical encoding of one JSON text. Leading and
// trailing white space is allowed. Errors wrap jsondoc.ErrInvalidJSON or
// ErrNumberRange; where both apply, invalid JSON is reported.
func Parse(text []byte) (string, error) {
	i := jsondoc.SkipSpace(text, 0)
	enc, end, err := Append(nil, text, i, 0)
	if err != nil && !errors.Is(err, ErrNumberRange) {
		return "", err
	}
	if err != nil {
		// Encoding stopped at a number out of range: invalid JSON after
		// it is the error to report.
		var serr error
		if end, serr = jsondoc.SkipValue(text, i, 0); serr != nil {
			return "", serr
		}
	}
	if end = jsondoc.SkipSpace(text, end); end != len(text) {
		return "", jsondoc.SyntaxError(end, "data after the value")
	}
	if err != nil {
		return "", err
	}
	return string(enc), nil
}
