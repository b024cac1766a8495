package subscription

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// Helpers that the tests of several files use: comparing JSON, and the
// strings that JSON encoding must get right. A helper that one file's
// tests use stays in that file.

// sameJSON reports whether two JSON texts are the same value as
// encoding/json reads them: objects compared as maps (so member order and
// duplicate keys do not matter, the last of duplicates counting), numbers
// by their text.
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	va, vb := decodeJSON(t, a), decodeJSON(t, b)
	return reflect.DeepEqual(va, vb)
}

// decodeJSON decodes one JSON text, numbers as json.Number, failing the
// test unless b is exactly one JSON value.
func decodeJSON(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	if dec.More() {
		t.Fatalf("trailing data after %s", b)
	}
	return v
}

// trickyStrings exercise every branch of appendString.
var trickyStrings = []string{
	"",
	"plain ascii",
	`"quoted"`,
	`back\slash`,
	"\n\r\t",
	"\b\f",
	"\x00\x01\x07\x0b\x0e\x1b\x1f",
	"\x7f",
	"<html>&amp;</html>",
	"\u2028\u2029",
	"a\u2028b\u2029c",
	"\u2027\u202a",
	"\xff",
	"a\xffb\xfe",
	"\xc3",             // truncated two-byte sequence
	"\xe2\x80",         // truncated U+2028
	"\xed\xa0\x80",     // a surrogate, invalid in UTF-8
	"\xf4\x90\x80\x80", // beyond U+10FFFF
	"\xc0\xaf",         // overlong
	"\ufffd",
	"héllo wörld ✓ 😀",
	"\U0010ffff",
	strings.Repeat("a\"", 100),
}

// marshalNoHTML is encoding/json's encoding of s without HTML escaping,
// which is what appendString promises to match byte for byte.
func marshalNoHTML(t testing.TB, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
