package jsondoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestCompactObjectRefusesInvalidText: a string that is not UTF-8 (an
// invalid byte, a surrogate or overlong encoding, a lone surrogate
// escape), in a key or a value at any depth, is refused with
// ErrInvalidJSON, and not with ErrNotObject: the data is an object, only
// not text.
func TestCompactObjectRefusesInvalidText(t *testing.T) {
	for _, in := range []string{
		"{\"a\":\"\xff\xfe\"}",
		"{\"\xff\":1}",
		"{\"a\":{\"b\":[1,{\"c\":\"x\xc3\"}]}}",
		"{\"a\":[{\"\xe2\x80\":1}]}",
		"{\"a\":\"\xed\xa0\x80\"}",     // a surrogate encoded in UTF-8
		"{\"a\":\"\xc0\xaf\"}",         // overlong
		"{\"a\":\"\xf4\x90\x80\x80\"}", // beyond U+10FFFF
		`{"a":"\ud800"}`,
		`{"a":"\udc00\ud800"}`,
		`{"a":"x\ud83dy"}`,
		`{"a":"\ud83d\u0041"}`,
		`{"\uDBFF":1}`,
		`{"a":["\ud83d\ude00","\ude00"]}`,
	} {
		got, err := CompactObject([]byte(in))
		if !errors.Is(err, ErrInvalidJSON) || !IsInvalidText(err) || errors.Is(err, ErrNotObject) {
			t.Errorf("CompactObject(%q) = %q, %v; want an invalid-text ErrInvalidJSON", in, got, err)
		}
		if err := CheckText([]byte(in)); !IsInvalidText(err) {
			t.Errorf("CheckText(%q) = %v; want an invalid-text error", in, err)
		}
	}
}

// TestCompactObjectEscapesLineSeparators: raw U+2028, U+2029 and U+0085
// in keys and values at any depth come out escaped; escaped ones stay as
// they are; and the result is the same JSON value.
func TestCompactObjectEscapesLineSeparators(t *testing.T) {
	for in, want := range map[string]string{
		"{\"a\u2028b\":\"c\u2029d\u0085e\"}":               `{"a\u2028b":"c\u2029d\u0085e"}`,
		"{ \"k\" : [ \"\u0085\" , {\"\u2029\":1} ] }":      `{"k":["\u0085",{"\u2029":1}]}`,
		`{"a":"\u2028\u2029\u0085\u0084\u2027"}`:           `{"a":"\u2028\u2029\u0085\u0084\u2027"}`,
		"{\"a\":\"\u0084\u0086\u2027\u202a\u00c2\u00e2\"}": "{\"a\":\"\u0084\u0086\u2027\u202a\u00c2\u00e2\"}",
		"{\"a\":\"\\\\\u2028\"}":                           `{"a":"\\\u2028"}`,
		"{\"a\":\"\U0001f600\u2028\U0001f600\"}":           "{\"a\":\"\U0001f600\\u2028\U0001f600\"}",
	} {
		b := []byte(in)
		got, err := CompactObject(b)
		if err != nil || string(got) != want {
			t.Errorf("CompactObject(%q) = %q, %v; want %q", in, got, err, want)
			continue
		}
		if bytes.ContainsAny(got, "\u2028\u2029\u0085") || !sameJSON(t, got, []byte(in)) {
			t.Errorf("CompactObject(%q) = %q: not the same value on one line", in, got)
		}
		// The broker stores the result: it must not share the caller's
		// buffer.
		got[0] = 'x'
		if string(b) != in {
			t.Errorf("CompactObject(%q) returned its input, not a copy", in)
		}
	}
}

func TestCheckText(t *testing.T) {
	for _, in := range []string{
		``, `{}`, `{"a":"\ud83d\ude00"}`, "\"\u2028\"", `"\\ud800"`, `{"a":"\u00e9"} trailing`,
		// Not JSON: left to the decoder, which refuses it.
		`"\x"`, "\"\x01\xff\"", `"unterminated`, `"\ud800\uzzzz"`,
	} {
		if err := CheckText([]byte(in)); err != nil {
			t.Errorf("CheckText(%q) = %v", in, err)
		}
	}
	for _, in := range []string{"\xff", "{\xff}", `["\ud800"]`, `{"a":1} "\udfff"`, "\"\xc2\"", "[1, \"\xe2\x80\xa8\xe2\"]"} {
		if err := CheckText([]byte(in)); !errors.Is(err, ErrInvalidJSON) || !IsInvalidText(err) {
			t.Errorf("CheckText(%q) = %v; want an invalid-text error", in, err)
		}
	}
}

// surrogateEscape finds what could be a \u escape of a surrogate, and
// replacementEscape one of U+FFFD.
var (
	surrogateEscape   = regexp.MustCompile(`(?i)\\ud[89a-f]`)
	replacementEscape = regexp.MustCompile(`(?i)\\ufffd`)
)

// decodedStrings returns every key and string of a JSON text as
// encoding/json decodes them, one after the other.
func decodedStrings(t testing.TB, b []byte) []byte {
	t.Helper()
	var out []byte
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v...)
		case []any:
			for _, x := range v {
				walk(x)
			}
		case map[string]any:
			for k, x := range v {
				out = append(out, k...)
				walk(x)
			}
		}
	}
	walk(decodeJSON(t, b))
	return out
}

// FuzzCompactObject checks CompactObject, the reading of every document's
// data, on arbitrary bytes:
//
//  1. What it accepts is a JSON object (json.Valid) in valid UTF-8, and
//     what it returns is compact, the same JSON value, valid UTF-8, with
//     no line end by any rule (no raw CR, LF, U+2028, U+2029, U+0085), and
//     CompactObject returns it unchanged.
//  2. A string that encoding/json would read with a U+FFFD the input does
//     not spell out (a lone surrogate) is never accepted.
//  3. It refuses only with ErrNotObject or ErrInvalidJSON; a JSON object
//     in valid UTF-8 is refused only for a surrogate escape.
//  4. CheckText agrees on JSON objects: it refuses exactly what
//     CompactObject refuses as invalid text.
func FuzzCompactObject(f *testing.F) {
	for _, s := range []string{
		`{}`, ` {"a" : [1, 2.5e3, true, false, null, {}]} `, `{"a":"b","a":"c"}`,
		"{\"a\u2028\":\"\u2029\u0085\"}", `{"a":"\u2028\u0085"}`, "{\"a\":\"\u0084\u0086\"}",
		"{\"a\":\"\xff\"}", "{\"\xc2\":1}", "{\"a\":\"\xe2\x80\"}", "{\"a\":\"\xed\xa0\x80\"}",
		`{"a":"\ud800"}`, `{"a":"\ud83d\ude00"}`, `{"a":"\ude00\ud83d"}`, `{"a":"\\ud800"}`, `{"a":"\ufffd"}`, "{\"a\":\"\ufffd\"}",
		`[]`, `"x"`, `{`, `{"a":}`, `{} {}`, "{\"a\":\"\x01\"}", "{\"a\":1\xff}", ``,
		strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		got, err := CompactObject(b)
		if !bytes.Equal(b, orig) {
			t.Fatalf("CompactObject modified its input %q", orig)
		}
		i := SkipSpace(b, 0)
		isObject := json.Valid(b) && i < len(b) && b[i] == '{'
		if err != nil {
			if !errors.Is(err, ErrNotObject) && !errors.Is(err, ErrInvalidJSON) {
				t.Fatalf("CompactObject(%q): %v, neither ErrNotObject nor ErrInvalidJSON", b, err)
			}
			if isObject && (!IsInvalidText(err) || utf8.Valid(b) && !surrogateEscape.Match(b)) {
				t.Fatalf("CompactObject(%q) refuses a JSON object in UTF-8: %v", b, err)
			}
			if isObject && IsInvalidText(CheckText(b)) != IsInvalidText(err) {
				t.Fatalf("CompactObject(%q): %v; CheckText: %v", b, err, CheckText(b))
			}
			return
		}
		if !isObject || !utf8.Valid(b) {
			t.Fatalf("CompactObject(%q) accepts what is not a JSON object in UTF-8", b)
		}
		if err := CheckText(b); err != nil {
			t.Fatalf("CompactObject(%q) accepts what CheckText refuses: %v", b, err)
		}
		if !utf8.Valid(got) || bytes.ContainsAny(got, "\r\n\u2028\u2029\u0085") {
			t.Fatalf("CompactObject(%q) = %q: not UTF-8 on one line", b, got)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, got); err != nil || !bytes.Equal(buf.Bytes(), got) {
			t.Fatalf("CompactObject(%q) = %q: not compact", b, got)
		}
		if !sameJSON(t, got, b) {
			t.Fatalf("CompactObject(%q) = %q: not the same value", b, got)
		}
		if again, err := CompactObject(got); err != nil || !bytes.Equal(again, got) {
			t.Fatalf("CompactObject(%q) = %q, %v: not a fixed point", got, again, err)
		}
		// encoding/json reads a lone surrogate as U+FFFD: accepted data
		// has one only where the input spells it out.
		if n := bytes.Count(decodedStrings(t, got), []byte("\ufffd")); n > 0 &&
			n > bytes.Count(b, []byte("\ufffd"))+len(replacementEscape.FindAll(b, -1)) {
			t.Fatalf("CompactObject(%q) = %q: accepted a lone surrogate", b, got)
		}
	})
}
