package jsondoc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// trickyStrings exercise every branch of AppendString.
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
	"\u0085",
	"a\u0085b\u2028\u0084\u0086",
	"\xc2",         // a truncated U+0085
	"\xc2\x85\xc2", // U+0085 then a truncated one
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
// and with U+0085 escaped, which is what AppendString promises to match
// byte for byte.
func marshalNoHTML(t testing.TB, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	// encoding/json's output is valid UTF-8, where 0xC2 0x85 is U+0085.
	return bytes.ReplaceAll(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\u0085"), []byte(`\u0085`))
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range trickyStrings {
		checkAppendString(t, s)
	}
	for c := range 256 {
		checkAppendString(t, string([]byte{byte(c)}))
		checkAppendString(t, fmt.Sprintf("x%cy", rune(c)))
	}
}

func checkAppendString(t *testing.T, s string) {
	t.Helper()
	got := AppendString([]byte("[1,"), s)
	if !bytes.HasPrefix(got, []byte("[1,")) {
		t.Fatalf("AppendString(%q) did not append: %s", s, got)
	}
	got = got[3:]
	if want := marshalNoHTML(t, s); !bytes.Equal(got, want) {
		t.Errorf("AppendString(%q) = %s, encoding/json gives %s", s, got, want)
	}
	// And it reads back as json.Marshal's encoding does: the string with
	// invalid UTF-8 replaced by U+FFFD.
	var back, viaMarshal string
	m, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("AppendString(%q) = %s: %v", s, got, err)
	}
	if err := json.Unmarshal(m, &viaMarshal); err != nil {
		t.Fatal(err)
	}
	if back != viaMarshal || utf8.ValidString(s) && back != s {
		t.Errorf("AppendString(%q) reads back as %q, json.Marshal's as %q", s, back, viaMarshal)
	}
	if bytes.ContainsAny(got, "\r\n\u2028\u2029\u0085") {
		t.Errorf("AppendString(%q) = %q: a line break left unescaped", s, got)
	}
}
